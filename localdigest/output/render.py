"""Turning reviewed papers into the Markdown digest or JSON."""

import json
import re
from dataclasses import dataclass, field

from localdigest.review.checks import HIGHLIGHTS_LEFT_OUT, PROSE_FIELDS, highlights_repeat
from localdigest.review.pipeline import PaperResult
from localdigest.review.schema import SCORE_DIMENSIONS, Review
from localdigest.sources.papers import HF

HIGHLIGHTS_OMITTED = "（本地模型写的亮点只是重复了主要工作，从略。）"  # in 亮点's place (checks.HIGHLIGHTS_LEFT_OUT)
PENDING = "pending"  # the error text of a paper a --partial digest has not reached yet
# Text from feeds, models and servers is data: in the digest it must read as the text it is,
# never as Markdown or HTML (a title "<script>…" or "[link](http://evil…)" stays literal).
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~!&$])")
LINE_START = re.compile(r"^(\s*)([-+=>])|^(\s*\d+)([.)])")  # list items (- 1. 1\)), quotes, setext underlines
BARE_LINK = re.compile(r"(?i)(?<=[a-z])(://)|\b(www)(\.)")  # what GitHub-style renderers turn into links


@dataclass(frozen=True)
class DigestInfo:
    date: str
    model: str
    prompt: str
    server: str | None = None  # the inference server's URL, when the model was not run in-process
    arranged: str | None = None  # how the papers were sorted or cut (output.arrange), for the count line
    total: int | None = None  # papers reviewed, when some were cut
    first_seen: dict[str, str] = field(default_factory=dict)  # arXiv id -> the earlier digest's day (history)
    overview: str | None = None  # 今日速览 (review.overview)
    relevance: dict[str, float] = field(default_factory=dict)  # arXiv id -> relevance to the reader's interests


def render_markdown(info: DigestInfo, results: list[PaperResult]) -> str:
    # The reference layout names Hugging Face; a digest of arXiv feeds names arXiv instead.
    from_hf = sum(r.paper.source == HF for r in results)
    hf = bool(results) and from_hf == len(results)
    source = "Huggingface Daily Papers" if hf else "Huggingface Daily Papers 与 arXiv" if from_hf else "arXiv"
    count = f"共推荐 {info.total if info.total is not None else len(results)} 篇论文" + \
        (f"（{text(info.arranged)}）。" if info.arranged else "。")
    lines = [
        f"# 【{text(info.date)}】{'Huggingface ' if hf else 'arXiv ' if not from_hf else ''}每日论文速览",
        "",
        (f"- [Huggingface Daily Papers {info.date}](https://huggingface.co/papers?date={info.date}) " if hf
         else f"- 来自 {source} 的论文，") + count,
        "",
        "> 💡说明：",
        ">",
        f"> - 本文对 {source} 的论文从：主要工作、主要亮点、关键词和评估四个方面进行速览。",
        ">",
        "> - 论文的速览内容基于论文的摘要，"
        + (f"使用推理服务器 {code(info.server)} 上的模型 {text(info.model)}" if info.server
           else f"使用本地模型 {text(info.model)}（llama.cpp，离线运行）") +
        f"与提示词模板 {text(info.prompt)} 进行内容生成，然后使用程序将内容整合，并以 Markdown 文本呈现。",
        "",
    ]
    if info.overview:
        lines += ["## 今日速览", "", text(info.overview), ""]
    for result in results:
        lines += _paper_section(result, info.first_seen.get(result.paper.arxiv_id),
                                info.relevance.get(result.paper.arxiv_id))
    return "\n".join(lines)


def text(value: str) -> str:
    """`value` as literal Markdown text on one line: every character that could start markup is
    backslash-escaped (CommonMark allows this for any ASCII punctuation), newlines become spaces."""
    value = " ".join(value.split())
    value = MARKDOWN_SPECIAL.sub(r"\\\1", value)
    value = BARE_LINK.sub(lambda m: "\\://" if m.group(1) else f"{m.group(2)}\\.", value)
    return LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}",
                          value)


def code(value: str) -> str:
    """`value` as an inline code span that no backtick in it can close early."""
    value = " ".join(value.split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _paper_section(result: PaperResult, first_seen: str | None = None, relevance: float | None = None) -> list[str]:
    paper, review = result.paper, result.review
    lines = [f"## {text(paper.title)}", ""]
    if relevance is not None:
        lines += [f"> 🎯 与你的研究兴趣的相关度：{relevance:.0%}", ""]
    if first_seen:  # arXiv re-announces revised papers; HF lists a paper again on later days
        lines += [f"> 🔁 已收录于 {text(first_seen)} 的速览", ""]
    if review is None and result.error == PENDING:
        lines += ["> ⏳ 本文速览尚未生成（--partial 摘要，运行仍在进行或已中断）", ""]
    elif review is None:
        lines += [f"> ⚠️ 本文速览生成失败：{text(result.error)}", ""]
    else:
        lines += ["### 1. 介绍本文的主要工作", "", text(review.main_work), ""]
        lines += ["### 2. 本文工作的主要亮点", "", text(shown_highlights(review)), ""]
        lines += ["### 3. 核心关键词", ""]
        for keyword in review.keywords:
            lines += [f"- {code(keyword.en)} ({code(keyword.zh)})", ""]
        lines += ["### 4. 评分", ""]
        for name, label in SCORE_DIMENSIONS.items():
            score = getattr(review, name)
            lines += [f"- {label}：{score.score:g}/5。 {text(score.reason)}", ""]
        if notes := reader_notes(result.notes, result.flags):  # the checks still found these after the retries
            lines += [f"> ⚠️ 自动检查提示：{text(notes)}", ""]
    lines += [_links(paper), ""]
    return lines


def shown_highlights(review: Review) -> str:
    """亮点 as the digest shows it: left out where it only repeats 主要工作 (checks.highlights_repeat)."""
    return HIGHLIGHTS_OMITTED if highlights_repeat(review) else review.highlights


def reader_notes(notes: tuple[str, ...], flags: tuple[str, ...]) -> str:
    """What the checks found, as the reader is told it: the notes (Chinese), else the flags (a JSON
    digest saved before the notes existed has flags only). A 亮点 left out is said where it was, and
    nothing else found in it is said (every note on a field opens with the field's name, 亮点…):
    the reader was told of a figure in a 亮点 they were not shown (BTLM-3B-8K, seed 1). The JSON keeps all."""
    if not notes:
        return "；".join(flags)
    if HIGHLIGHTS_LEFT_OUT in notes:
        notes = tuple(note for note in notes if not note.startswith(PROSE_FIELDS["highlights"]))
    return "；".join(notes)


def _links(paper) -> str:
    """The paper's links line: its page (Hugging Face's for an HF paper, as in the reference
    layout), arXiv and the PDF, the code the feed names, and the HF counts it gives."""
    links = [f"[到 Huggingface 论文主页查看详情]({paper.hf_url})" if paper.source == HF
             else f"[到 arXiv 查看详情]({paper.abs_url})"]
    if paper.source == HF:
        links.append(f"[arXiv]({paper.abs_url})")
    links.append(f"[PDF]({paper.pdf_url})")
    if paper.code_url:
        links.append(f"[代码](<{_url(paper.code_url)}>)" + (f" ⭐ {paper.stars}" if paper.stars is not None else ""))
    if paper.upvotes is not None:
        links.append(f"👍 {paper.upvotes}")
    if paper.comments:
        links.append(f"💬 {paper.comments}")
    return " · ".join(links)


def _url(value: str) -> str:
    """A feed's URL inside <…>: percent-encode what could end the link or open markup."""
    return "".join(f"%{ord(c):02X}" if c in "<> \\`\"'()[]" or not c.isprintable() else c for c in value)


def render_json(info: DigestInfo, results: list[PaperResult]) -> str:
    papers = [
        {
            "arxiv_id": r.paper.arxiv_id,
            "title": r.paper.title,
            "authors": list(r.paper.authors),
            "published": r.paper.published,
            "upvotes": r.paper.upvotes,
            "url": r.paper.page_url,
            "source": r.paper.source,
            "links": {"arxiv": r.paper.abs_url, "pdf": r.paper.pdf_url,
                      **({"huggingface": r.paper.hf_url} if r.paper.source == HF else {}),
                      **({"code": r.paper.code_url} if r.paper.code_url else {})},
            "stars": r.paper.stars,
            "comments": r.paper.comments,
            "ai_keywords": list(r.paper.ai_keywords),
            "abstract": r.paper.abstract,
            "review": r.review.to_dict() if r.review else None,
            "flags": list(r.flags),
            "notes": list(r.notes),
            "error": r.error,
            "first_seen": info.first_seen.get(r.paper.arxiv_id),
            "relevance": info.relevance.get(r.paper.arxiv_id),
        }
        for r in results
    ]
    return json.dumps(
        {"date": info.date, "model": info.model, **({"server": info.server} if info.server else {}),
         "prompt": info.prompt, **({"arranged": info.arranged, "total": info.total} if info.arranged else {}),
         **({"overview": info.overview} if info.overview else {}),
         "papers": papers},
        ensure_ascii=False,
        indent=2,
    ) + "\n"
