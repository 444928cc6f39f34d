"""Parsing the GPT-4 reference digests (Markdown whose layout varies from paper to paper).

Each paper section is split at the heading lines that name its four parts (…工作…, 亮点,
关键词, 评分/打分/评价 …) however they are marked up: ###, **bold**, numbered, indented,
or with the text on the heading line after "：".
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from localdigest.review.schema import SCORE_DIMENSIONS

PAGE_LINK = re.compile(r"huggingface\.co/papers/(\d{4}\.\d{4,5})")
SCORE_HEADING = re.compile(r"评分|打分|评价|评估|评级|得分")
QUOTED_KEYWORD = re.compile(r"^`([^`]+)`\s*[（(]\s*`([^`]+)`\s*[)）]$")
KEYWORD = re.compile(r"^(.+?)\s*[（(]([^()（）]+)[)）]$")  # else the last parenthesised part is the Chinese
SCORE = re.compile(r"(实用性|创新性|推荐度)[^0-9\n]{0,12}?(\d(?:\.\d+)?)\s*\**\s*(?:/\s*5|分|$)", re.M)
LABEL_BY_NAME = {label: name for name, label in SCORE_DIMENSIONS.items()}


@dataclass
class ReferenceReview:
    arxiv_id: str
    title: str
    main_work: str = ""
    highlights: str = ""
    keywords: list[tuple[str, str]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


def parse_reference(path: Path) -> list[ReferenceReview]:
    text = path.read_text(encoding="utf-8")
    reviews = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        link = PAGE_LINK.search(body)
        if not link:
            continue
        review = ReferenceReview(arxiv_id=link.group(1), title=title.strip())
        parts = _split_parts(body)
        review.main_work = _prose(parts.get("main_work", ""))
        review.highlights = _prose(parts.get("highlights", ""))
        review.keywords = _keywords(parts.get("keywords", ""))
        for label, value in SCORE.findall(parts.get("scores", body)):
            review.scores.setdefault(LABEL_BY_NAME[label], float(value))
        reviews.append(review)
    return reviews


def load_references(directory: Path) -> dict[str, ReferenceReview]:
    """All reference reviews in a folder, by arXiv id."""
    return {r.arxiv_id: r for path in sorted(directory.glob("*.md")) for r in parse_reference(path)}


def _keywords(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        if "](" in line:  # the paper-page link after the last part
            continue
        item = re.sub(r"^\s*(\d+[.、]|[-*])\s*", "", line).strip()
        # Some digests list all five on one line: `A` (a), `B` (b), ...
        for piece in re.split(r"(?<=[)）])\s*[,，、]\s*", item):
            piece = piece.strip().lstrip("*").strip().rstrip("。.；;")
            match = QUOTED_KEYWORD.match(piece) or KEYWORD.match(piece)
            if match:
                en, zh = (part.strip().strip("`").strip() for part in match.groups())
                if en and zh:
                    pairs.append((en, zh))
    return pairs


def _split_parts(body: str) -> dict[str, str]:
    """Text of each part, keyed by part name; a part's heading line may also carry its text."""
    parts: dict[str, list[str]] = {}
    current = None
    for line in body.splitlines():
        name = _heading(line)
        if name and name not in parts:
            current = name
            parts[current] = [_after_heading(line)]
            continue
        if current:
            parts[current].append(line)
    return {name: "\n".join(lines) for name, lines in parts.items()}


def _heading(line: str) -> str | None:
    """The part a heading line opens, whatever its markup; None for ordinary lines and list items."""
    if line.lstrip().startswith(("- ", "* ", "+ ")):
        return None  # list items are content, even when they mention 评估 or 工作
    core = re.sub(r"^\s*(#+|\d+[.、]|[一二三四五]、)?\s*", "", line).strip()
    core = core.split("：")[0].split(":")[0].strip("* ").strip()
    if not core or len(core) > 40 or SCORE.search(line):
        return None
    if "亮点" in core:
        return "highlights"
    if "关键词" in core:
        return "keywords"
    if "工作" in core:
        return "main_work"
    if SCORE_HEADING.search(core):
        return "scores"
    return None


def _after_heading(line: str) -> str:
    """Text on the heading line itself, after '：' (e.g. '3. 核心关键词：`A` (a), `B` (b)')."""
    return line.split("：", 1)[1] if "：" in line else ""


def _prose(text: str) -> str:
    lines = [re.sub(r"^[\s>*\-]*", "", line).strip() for line in text.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("#"))
