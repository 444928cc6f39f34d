"""The digests localdigest wrote, kept as JSON, one file per day: what `site build` publishes.

Every `run` saves its digest here (`<data folder>/digests/YYYY-MM-DD.json`, the same JSON as
`--format json` plus the time it was saved); the latest run of a day replaces that day's file.
The files are data from a folder other people may write to (a lab's shared disk), so reading
one checks every field it uses and names the first bad one.
"""

import datetime
import json
import re
from dataclasses import dataclass
from pathlib import Path

from localdigest import paths
from localdigest.atomic import replace_file
from localdigest.errors import LocaldigestError, ReviewInvalid, option
from localdigest.review.schema import Review

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ARXIV_ID = re.compile(r"^[A-Za-z0-9.\-/]{1,64}$")  # new-style 2309.12307 and old-style cs/0112017
VERSION = re.compile(r"v\d+$")


def archive_dir() -> Path:
    return paths.data_dir() / "digests"


@dataclass(frozen=True)
class SavedPaper:
    arxiv_id: str
    title: str
    authors: tuple[str, ...]
    source: str
    links: dict[str, str]  # arxiv, pdf, huggingface, code: http(s) URLs only
    upvotes: int | None
    stars: int | None
    comments: int | None
    review: Review | None
    flags: tuple[str, ...]
    error: str | None
    notes: tuple[str, ...] = ()  # the flags as the reader is told them (none in a digest saved before them)
    first_seen: str | None = None  # the earlier day whose digest had this paper already
    relevance: float | None = None  # to the reader's interests, 0-1


@dataclass(frozen=True)
class SavedDigest:
    date: str
    saved: str  # ISO 8601 time, UTC
    model: str
    prompt: str
    papers: tuple[SavedPaper, ...]
    total: int  # papers reviewed that day, before any --min-score cut
    arranged: str | None
    path: Path
    overview: str | None = None  # 今日速览


def save(digest_json: str, date: str, directory: Path | None = None) -> Path:
    """Keep `digest_json` (render_json's output) as the digest of `date`; returns the file."""
    data = json.loads(digest_json)
    data["saved"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    path = (directory or archive_dir()) / f"{date}.json"
    replace_file(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return path


def first_seen(before: str, directory: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """History: each arXiv id (no version) in a saved digest of a day before `before`, with the
    first such day; and a warning for each saved file that could not be read (it is skipped)."""
    seen: dict[str, str] = {}
    warnings = []
    folder = directory or archive_dir()
    files = sorted(f for f in folder.glob("*.json") if DATE.match(f.stem) and f.stem < before) if folder.is_dir() else []
    for file in files:
        try:
            papers = json.loads(file.read_text(encoding="utf-8"))["papers"]
            ids = [paper["arxiv_id"] for paper in papers]
        except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError) as exc:
            warnings.append(f"{file}: skipped for --new-only and first-seen dates ({type(exc).__name__})")
            continue
        for arxiv_id in ids:
            if isinstance(arxiv_id, str):
                seen.setdefault(VERSION.sub("", arxiv_id), file.stem)  # files are read oldest first
    return seen, warnings


def load_all(sources: list[Path]) -> list[SavedDigest]:
    """Every digest in `sources` (JSON files, or folders of them), one per day (a later source
    wins), newest day first."""
    by_date: dict[str, SavedDigest] = {}
    for source in sources:
        files = sorted(source.glob("*.json")) if source.is_dir() else [source]
        for file in files:
            digest = load(file)
            by_date[digest.date] = digest
    return sorted(by_date.values(), key=lambda d: d.date, reverse=True)


def load(path: Path) -> SavedDigest:
    fix = f"write that day again with `localdigest run` ({option('date')} YYYY-MM-DD), or move {path.name} out of the folder"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocaldigestError(f"cannot read {path}: {exc.strerror}", "check the path and its permissions") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise LocaldigestError(f"{path}: not a localdigest JSON digest ({exc})", fix) from None
    try:
        return _digest(data, path)
    except _Bad as exc:
        raise LocaldigestError(f"{path}: {exc}", fix) from None


class _Bad(Exception):
    pass


def _digest(data, path: Path) -> SavedDigest:
    if not isinstance(data, dict):
        raise _Bad("expected a JSON object")
    date = _str(data, "date")
    if not DATE.match(date):
        raise _Bad(f"date: '{date}' is not YYYY-MM-DD")
    papers = data.get("papers")
    if not isinstance(papers, list):
        raise _Bad("papers: expected a list")
    parsed = tuple(_paper(entry, f"papers[{i}]") for i, entry in enumerate(papers))
    saved = data.get("saved")
    if not isinstance(saved, str) or not _is_time(saved):  # a --format json file: when it was written
        saved = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC).isoformat(timespec="seconds")
    total = data.get("total")
    return SavedDigest(date=date, saved=saved, model=_str(data, "model"), prompt=_str(data, "prompt"),
                       papers=parsed, total=total if _is_count(total) else len(parsed),
                       arranged=data["arranged"] if isinstance(data.get("arranged"), str) else None, path=path,
                       overview=data["overview"] if isinstance(data.get("overview"), str) else None)


def _paper(entry, where: str) -> SavedPaper:
    if not isinstance(entry, dict):
        raise _Bad(f"{where}: expected an object")
    arxiv_id = _str(entry, "arxiv_id", where)
    if not ARXIV_ID.match(arxiv_id):
        raise _Bad(f"{where}.arxiv_id: '{arxiv_id[:40]}' is not an arXiv id")
    review = None
    if entry.get("review") is not None:
        try:
            review = Review.from_dict(entry["review"])
        except ReviewInvalid as exc:
            raise _Bad(f"{where}.review: {exc.message}") from None
    links = entry.get("links") if isinstance(entry.get("links"), dict) else {}
    authors = entry.get("authors") if isinstance(entry.get("authors"), list) else []
    flags = entry.get("flags") if isinstance(entry.get("flags"), list) else []
    notes = entry.get("notes") if isinstance(entry.get("notes"), list) else []
    return SavedPaper(
        arxiv_id=arxiv_id,
        title=_str(entry, "title", where),
        authors=tuple(a for a in authors if isinstance(a, str)),
        source=entry.get("source") if entry.get("source") in ("hf", "arxiv") else "arxiv",
        # Only web links: a "javascript:" or "file:" URL in a shared file must not become a link.
        links={k: v for k, v in links.items() if isinstance(v, str) and re.match(r"(?i)^https?://[^\s]+$", v)},
        upvotes=entry.get("upvotes") if _is_count(entry.get("upvotes")) else None,
        stars=entry.get("stars") if _is_count(entry.get("stars")) else None,
        comments=entry.get("comments") if _is_count(entry.get("comments")) else None,
        review=review,
        flags=tuple(f for f in flags if isinstance(f, str)),
        notes=tuple(note for note in notes if isinstance(note, str)),
        error=entry.get("error") if isinstance(entry.get("error"), str) else None,
        first_seen=entry["first_seen"] if isinstance(entry.get("first_seen"), str) and DATE.match(entry["first_seen"])
        else None,
        relevance=float(entry["relevance"]) if isinstance(entry.get("relevance"), (int, float))
        and not isinstance(entry["relevance"], bool) and 0 <= entry["relevance"] <= 1 else None,
    )


def _str(data: dict, key: str, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{where + '.' if where else ''}{key}: expected text")
    return value


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12


def _is_time(value: str) -> bool:
    try:
        return datetime.datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
