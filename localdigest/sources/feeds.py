"""Reading papers from feeds into Paper records.

Sources: Hugging Face daily-papers JSON (file, or `hf` to fetch --date), arXiv RSS, arXiv
API Atom, any RSS/Atom feed linking to arXiv (via feedparser), a directory of saved
feeds, a URL, or `-` for stdin.
"""

import datetime
import html
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from localdigest.sources import fetch, keywords
from localdigest.errors import FeedError, option
from localdigest.sources.papers import HF, Paper

ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(v\d+)?")
ARXIV_RSS_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*Abstract:\s*", re.IGNORECASE)
# Only tags feeds really put in abstracts: a bare "a<b" in LaTeX must survive.
HTML_TAG = re.compile(r"</?(?:p|br|i|em|b|strong|sub|sup|a|span|div|ul|ol|li|code|tt)(?:\s[^<>]*)?/?>", re.IGNORECASE)
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")  # CSI, OSC, 2-byte
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # C0/C1, bidi overrides
FEED_SUFFIXES = {".json", ".xml", ".rss", ".atom", ".feed"}
HF_DAILY = "hf"
REPLACED = {"replace", "replace-cross"}


@dataclass
class FeedResult:
    papers: list[Paper] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. where a fetched feed was saved


@dataclass(frozen=True)
class FeedOptions:
    date: str | None = None  # the UTC submission day, for `hf`
    include_replaced: bool = False  # arXiv RSS re-announcements of updated papers
    min_upvotes: int | None = None
    limit: int | None = None
    skip_ids: frozenset[str] = frozenset()  # arXiv ids (no version) to leave out before --limit: --new-only
    include: tuple[str, ...] = ()  # keep only papers with one of these words (sources.keywords)
    exclude: tuple[str, ...] = ()  # leave out papers with one of these words
    offline: bool | None = None  # never fetch; None: as the environment says (LOCALDIGEST_OFFLINE, HF_HUB_OFFLINE)

    def is_offline(self) -> bool:
        return fetch.offline_by_environment() if self.offline is None else self.offline


def load_feeds(sources: list[str], options: FeedOptions = FeedOptions()) -> FeedResult:
    """Papers from every source, deduplicated by arXiv id (richest record wins), most upvoted first."""
    result = FeedResult()
    by_id: dict[str, int] = {}
    for source in sources:
        for paper in _load_source(source, options, result):
            if paper.arxiv_id in by_id:
                index = by_id[paper.arxiv_id]
                result.papers[index] = _richer(result.papers[index], paper)
                continue
            by_id[paper.arxiv_id] = len(result.papers)
            result.papers.append(paper)
    papers = result.papers
    if any(p.upvotes for p in papers):
        papers = sorted(papers, key=lambda p: -(p.upvotes or 0))  # stable: feed order among equals
    if options.min_upvotes is not None:
        papers = [p for p in papers if p.upvotes is None or p.upvotes >= options.min_upvotes]
    if options.include or options.exclude:
        papers, excluded, not_included = keywords.keep(papers, options.include, options.exclude)
        if excluded or not_included:
            result.notes.append(f"Left out {excluded} papers with an excluded keyword and {not_included} with no "
                                "included keyword")
    if options.skip_ids:
        skipped = sum(p.arxiv_id in options.skip_ids for p in papers)
        papers = [p for p in papers if p.arxiv_id not in options.skip_ids]
        if skipped:
            result.notes.append(f"Left out {skipped} papers already in an earlier digest")
    result.papers = papers[: options.limit] if options.limit else papers
    return result


def _richer(kept: Paper, new: Paper) -> Paper:
    """Merge two records of one paper: the longer abstract, and whatever either one knows."""
    base, other = (new, kept) if len(new.abstract) > len(kept.abstract) else (kept, new)
    return Paper(
        arxiv_id=base.arxiv_id,
        title=base.title,
        abstract=base.abstract,
        authors=base.authors or other.authors,
        published=base.published or other.published,
        upvotes=max((u for u in (base.upvotes, other.upvotes) if u is not None), default=None),
        url=base.url or other.url,
        source=HF if HF in (base.source, other.source) else base.source,
        comments=base.comments if base.comments is not None else other.comments,
        code_url=base.code_url or other.code_url,
        stars=base.stars if base.stars is not None else other.stars,
        ai_keywords=base.ai_keywords or other.ai_keywords,
    )


def _load_source(source: str, options: FeedOptions, result: FeedResult) -> list[Paper]:
    warnings = result.warnings
    if source == HF_DAILY:
        if not options.date:
            raise FeedError(f"{option('feed')} hf needs a day", f"pass {option('date')} YYYY-MM-DD")
        data, saved = fetch.fetch_hf_daily(options.date, options.is_offline())
        _note_saved(result, saved)
        if data.strip() == b"[]":
            warnings.append(f"hf:{options.date}: Hugging Face lists no papers that day (weekends are often empty)")
            return []
        return _parse(f"hf:{options.date}", data, options, warnings)
    if fetch.is_url(source):
        data, saved = fetch.fetch_url(source, options.is_offline())
        _note_saved(result, saved)
        return _parse(source, data, options, warnings)
    path = Path(source).expanduser()
    if source != "-" and path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FEED_SUFFIXES and p.is_file())
        if not files:
            raise FeedError(f"{source}: no feed files in this directory",
                            f"put files ending in {', '.join(sorted(FEED_SUFFIXES))} there")
        papers = []
        for file in files:  # one broken file in a folder of feeds costs that file, not the folder
            try:
                papers += _parse(str(file), _read(str(file)), options, warnings)
            except FeedError as exc:
                warnings.append(f"{exc.message}: file skipped ({exc.fix})")
        return papers
    return _parse(source, _read(source), options, warnings)


def _note_saved(result: FeedResult, saved: Path | None) -> None:
    if saved is not None:  # only a copy that was really written is announced
        result.notes.append(f"saved a copy of the feed to {saved}; replay it offline with {option('feed')} {saved}")


def _parse(source: str, data: bytes, options: FeedOptions, warnings: list[str]) -> list[Paper]:
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as Windows editors save
    if not data.strip():
        raise FeedError(f"{source}: feed is empty", "check the file, or fetch the feed again")
    if data.lstrip()[:1] in (b"[", b"{"):
        return _papers_from_json(source, data, warnings)
    return _papers_from_xml(source, data, options, warnings)


def _read(source: str) -> bytes:
    if source == "-":
        data = sys.stdin.buffer.read(fetch.MAX_BYTES + 1)
        fetch.check_size(source, len(data))
        return data
    path = Path(source).expanduser()
    try:
        fetch.check_size(source, path.stat().st_size)  # before reading, so a huge file costs nothing
        with path.open("rb") as handle:  # and a bounded read: /dev/zero or a FIFO has no size
            data = handle.read(fetch.MAX_BYTES + 1)
        fetch.check_size(source, len(data))
        return data
    except FileNotFoundError:
        raise FeedError(f"{source}: no such file", f"check the path given to {option('feed')}") from None
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
    except RecursionError:
        raise FeedError(f"{source}: JSON nested too deeply to be a feed", "re-download the feed or fix the file") from None
    except ValueError:  # Python refuses integers of thousands of digits
        raise FeedError(f"{source}: invalid JSON: a number too long to be a feed's", "re-download the feed or fix the file") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise FeedError(f"{source}: expected a JSON list of papers", "give a Hugging Face daily_papers JSON file")
    papers = []
    for i, item in enumerate(items):
        try:
            papers.append(_paper_from_record(item))
        except ValueError as exc:
            warnings.append(f"{source}: item {i} skipped: {exc}")
    return papers


def _paper_from_record(item) -> Paper:
    """A paper from one JSON item; ValueError naming the field when the item cannot be one."""
    if not isinstance(item, dict):
        raise ValueError(f"a {type(item).__name__}, not an object")
    # Hugging Face daily_papers items wrap the paper object; plain paper lists do not.
    record = item.get("paper", item)
    if not isinstance(record, dict):
        raise ValueError("'paper' is not an object")
    match = ARXIV_ID.search(_text(record, "id") or _text(record, "arxiv_id"))
    title = _text(record, "title") or _text(item, "title")
    abstract = _text(record, "summary") or _text(record, "abstract") or _text(item, "summary")
    missing = [what for what, value in (("arXiv id ('id')", match), ("title ('title')", title),
                                        ("abstract ('summary')", abstract)) if not value]
    if missing:
        raise ValueError(f"no {', no '.join(missing)} as text")
    submitted = record.get("submittedOnDailyAt") or item.get("publishedAt") or record.get("publishedAt") \
        or record.get("published")
    code = _text(record, "githubRepo")
    return Paper(
        arxiv_id=match.group(1),
        title=title,
        abstract=abstract,
        authors=_authors(record.get("authors")),
        published=_iso_day(submitted),
        upvotes=_count(record.get("upvotes")),
        url=record.get("url") if isinstance(record.get("url"), str) else None,
        # The daily-papers API wraps each paper ({"paper": {...}, "numComments": ...}); so do saved copies.
        source=HF if "paper" in item or "submittedOnDailyAt" in record else "arxiv",
        comments=_count(item.get("numComments")),
        code_url=code if code.startswith(("https://", "http://")) else None,
        stars=_count(record.get("githubStars")),
        ai_keywords=_strings(record.get("ai_keywords"))[:10],
    )


def _strings(value) -> tuple[str, ...]:
    return tuple(_clean(v) for v in value if isinstance(v, str) and v.strip()) if isinstance(value, list) else ()


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(record: dict, key: str) -> str:
    """A text field, or "" when it is missing or not text (a number, a list, an object)."""
    value = record.get(key)
    return _clean(value) if isinstance(value, str) else ""


def _authors(value) -> tuple[str, ...]:
    """Names from a list of strings or {"name": …} objects, or one comma-separated string."""
    if isinstance(value, str):
        value = value.replace(" and ", ",").split(",")
    if not isinstance(value, list):
        return ()
    names = (_clean(a.get("name")) if isinstance(a, dict) and isinstance(a.get("name"), str)
             else _clean(a) if isinstance(a, str) else "" for a in value)
    return tuple(name for name in names if name)


def _papers_from_xml(source: str, data: bytes, options: FeedOptions, warnings: list[str]) -> list[Paper]:
    import feedparser  # imported here: JSON feeds (and cached runs) do not pay for it

    # No sanitising or URI resolving: both run an HTML parser over abstracts and eat LaTeX like "a<b".
    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    if not parsed.entries:
        problem = f"not a feed ({parsed.bozo_exception})" if parsed.bozo else "feed has no entries"
        raise FeedError(f"{source}: {problem}", "give an RSS/Atom file or Hugging Face daily_papers JSON")
    papers = []
    replaced = 0
    for i, entry in enumerate(parsed.entries):
        if entry.get("arxiv_announce_type", "").strip() in REPLACED and not options.include_replaced:
            replaced += 1
            continue
        match = ARXIV_ID.search(" ".join(str(entry.get(k, "")) for k in ("id", "link")))
        title = _entry_text(entry, "title")
        abstract = ARXIV_RSS_PREFIX.sub("", _entry_text(entry, "summary"))
        if not (match and title and abstract):
            warnings.append(f"{source}: entry {i} ({title[:60] or 'untitled'}) skipped: no arXiv id, title or abstract")
            continue
        authors = [a.get("name", "") for a in entry.get("authors", [])]
        if len(authors) == 1 and "," in authors[0]:  # arXiv RSS: one comma-joined dc:creator
            authors = authors[0].split(",")
        published = entry.get("published_parsed") or entry.get("updated_parsed")
        papers.append(
            Paper(
                arxiv_id=match.group(1),
                title=title,
                abstract=abstract,
                authors=tuple(a for a in map(_clean, authors) if a),
                published=time.strftime("%Y-%m-%d", published) if published else None,
                url=entry.get("link"),
            )
        )
    if replaced:
        warnings.append(f"{source}: skipped {replaced} re-announced (replace) entries; {option('include_replaced')} keeps them")
    if not papers and parsed.bozo:
        raise FeedError(f"{source}: malformed feed ({parsed.bozo_exception})", "re-download the feed or fix the file")
    if parsed.bozo and not isinstance(parsed.bozo_exception, feedparser.CharacterEncodingOverride):
        # feedparser read what it could: a cut-off download gives the papers before the cut
        warnings.append(f"{source}: the feed is malformed ({parsed.bozo_exception}); read {len(papers)} paper(s) "
                        "up to the damage, re-download it for the rest")
    return papers


def _entry_text(entry, key: str) -> str:
    text = entry.get(key, "")
    detail = entry.get(f"{key}_detail") or {}
    if "html" in detail.get("type", ""):
        text = html.unescape(HTML_TAG.sub("", text))
    return _clean(text)


def _iso_day(value) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)[:10] or None
    if moment.tzinfo is None:
        return moment.date().isoformat()
    return moment.astimezone(datetime.UTC).date().isoformat()


def _clean(text) -> str:
    """Collapse hard-wrapped whitespace without gluing words, and drop control characters (an
    ANSI escape in a title must not reach a terminal)."""
    if not text:
        return ""
    return " ".join(CONTROL.sub(" ", ANSI_ESCAPE.sub("", str(text))).split())
