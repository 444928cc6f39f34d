"""Reading papers from feeds: Hugging Face daily-papers JSON, and RSS/Atom (arXiv or any) via feedparser."""

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import feedparser

from localdigest.errors import FeedError
from localdigest.papers import Paper

ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(v\d+)?")
ARXIV_RSS_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*Abstract:\s*", re.IGNORECASE)


@dataclass
class FeedResult:
    papers: list[Paper] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_feeds(sources: list[str]) -> FeedResult:
    """Papers from every source, in order, deduplicated by arXiv id (the longer abstract wins)."""
    result = FeedResult()
    by_id: dict[str, int] = {}
    for source in sources:
        for paper in _load_one(source, result.warnings):
            if paper.arxiv_id in by_id:
                index = by_id[paper.arxiv_id]
                if len(paper.abstract) > len(result.papers[index].abstract):
                    result.papers[index] = paper
                continue
            by_id[paper.arxiv_id] = len(result.papers)
            result.papers.append(paper)
    return result


def _load_one(source: str, warnings: list[str]) -> list[Paper]:
    data = _read(source)
    if not data.strip():
        raise FeedError(f"{source}: feed is empty", "check the file, or fetch the feed again")
    if data.lstrip()[:1] in (b"[", b"{"):
        return _papers_from_json(source, data, warnings)
    return _papers_from_xml(source, data, warnings)


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source).expanduser()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FeedError(f"{source}: no such file", "check the path given to --feed") from None
    except IsADirectoryError:
        raise FeedError(f"{source}: is a directory", "give one feed file per --feed") from None
    except OSError as exc:
        raise FeedError(f"{source}: cannot read: {exc.strerror}", "check the file's permissions") from None


def _papers_from_json(source: str, data: bytes, warnings: list[str]) -> list[Paper]:
    try:
        items = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FeedError(f"{source}: not UTF-8 (byte {exc.start})", "re-save the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise FeedError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                        "re-download the feed or fix the file") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise FeedError(f"{source}: expected a JSON list of papers", "give a Hugging Face daily_papers JSON file")
    papers = []
    for i, item in enumerate(items):
        # Hugging Face daily_papers items wrap the paper; plain paper lists do not.
        record = item.get("paper", item) if isinstance(item, dict) else None
        paper = _paper_from_record(record) if isinstance(record, dict) else None
        if paper is None:
            warnings.append(f"{source}: item {i} skipped: no arXiv id, title or abstract")
        else:
            papers.append(paper)
    return papers


def _paper_from_record(record: dict) -> Paper | None:
    match = ARXIV_ID.search(str(record.get("id") or record.get("arxiv_id") or ""))
    title = _clean(record.get("title"))
    abstract = _clean(record.get("summary") or record.get("abstract"))
    if not (match and title and abstract):
        return None
    authors = tuple(
        _clean(a.get("name") if isinstance(a, dict) else a) for a in record.get("authors") or []
    )
    upvotes = record.get("upvotes")
    return Paper(
        arxiv_id=match.group(1),
        title=title,
        abstract=abstract,
        authors=tuple(a for a in authors if a),
        published=record.get("publishedAt") or record.get("published"),
        upvotes=upvotes if isinstance(upvotes, int) else None,
        url=record.get("url"),
    )


def _papers_from_xml(source: str, data: bytes, warnings: list[str]) -> list[Paper]:
    parsed = feedparser.parse(data, sanitize_html=False)
    if not parsed.entries:
        problem = f"not a feed ({parsed.bozo_exception})" if parsed.bozo else "feed has no entries"
        raise FeedError(f"{source}: {problem}", "give an RSS/Atom file or Hugging Face daily_papers JSON")
    papers = []
    for i, entry in enumerate(parsed.entries):
        match = ARXIV_ID.search(" ".join(str(entry.get(k, "")) for k in ("id", "link")))
        title = _clean(entry.get("title"))
        abstract = _clean(ARXIV_RSS_PREFIX.sub("", entry.get("summary", "")))
        if not (match and title and abstract):
            warnings.append(f"{source}: entry {i} ({title or 'untitled'}) skipped: no arXiv id, title or abstract")
            continue
        authors = [a.get("name", "") for a in entry.get("authors", [])]
        if len(authors) == 1 and "," in authors[0]:  # arXiv RSS: one comma-joined dc:creator
            authors = authors[0].split(",")
        papers.append(
            Paper(
                arxiv_id=match.group(1),
                title=title,
                abstract=abstract,
                authors=tuple(a for a in map(_clean, authors) if a),
                published=entry.get("published"),
                url=entry.get("link"),
            )
        )
    if not papers and parsed.bozo:
        raise FeedError(f"{source}: malformed feed ({parsed.bozo_exception})", "re-download the feed or fix the file")
    return papers


def _clean(text) -> str:
    """Collapse hard-wrapped whitespace without gluing words."""
    return " ".join(str(text).split()) if text else ""
