"""Fetching feeds over the network, keeping a local copy of each so a day can be replayed offline."""

import json
import os
import re
import time
import urllib.parse
from pathlib import Path

from localdigest import paths
from localdigest.atomic import replace_file
from localdigest.errors import FeedError, option
from localdigest.net import TooLarge, printable, read_bounded

TIMEOUT_SECONDS = 60  # for a whole feed (all pages of a day), not for each read
MAX_BYTES = 32 * 1024 * 1024  # a day of arXiv cs.* RSS is a few MB; 32 MB is no feed
HF_PAGE_SIZE = 100
HF_MAX_PAGES = 20


def check_size(source: str, size: int) -> None:
    """One limit for files, stdin and downloads: anything bigger is not a day's feed."""
    if size > MAX_BYTES:
        raise FeedError(f"{source}: larger than {MAX_BYTES // 2**20} MB", "split the feed and pass the parts")


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def offline_by_environment() -> bool:
    """What a caller that says nothing about the network gets: LOCALDIGEST_OFFLINE=1 or HF_HUB_OFFLINE=1."""
    return os.environ.get("LOCALDIGEST_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"


def saved_copy_path(name: str) -> Path:
    return paths.data_dir() / "feeds" / name


def fetch_url(url: str, offline: bool = False, timeout: float | None = None) -> tuple[bytes, Path | None]:
    """The body of a feed URL, also saved under the data folder; returns (body, saved path, or
    None when the copy could not be saved)."""
    saved = saved_copy_path(_slug(url))
    if offline:
        raise _offline_error(url, saved)
    body = _get(url, {}, saved, timeout or TIMEOUT_SECONDS)
    return body, _save(saved, body)


def fetch_hf_daily(date: str, offline: bool = False, timeout: float | None = None) -> tuple[bytes, Path | None]:
    """Hugging Face daily papers for a UTC submission date, as the API's JSON list, page by page.

    Only a parsed, non-empty list replaces the saved copy of the day: an error object, an HTML
    page or an empty day never overwrites a good copy (b"[]" is returned for an empty day).
    """
    saved = saved_copy_path(f"hf-daily-papers-{date}.json")
    if offline:
        raise _offline_error(f"Hugging Face daily papers for {date}", saved)
    url = f"{paths.hub_endpoint()}/api/daily_papers"
    timeout = timeout or TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    items: list = []
    for page in range(HF_MAX_PAGES):
        body = _get(url, {"date": date, "limit": HF_PAGE_SIZE, "p": page}, saved, timeout, deadline)
        try:
            batch = json.loads(body)
        except (ValueError, RecursionError):
            kind = "an HTML page" if body.lstrip()[:1] == b"<" else "something that is not JSON"
            raise FeedError(f"{url}?date={date}: Hugging Face answered with {kind}",
                            "a proxy or captive portal may be in the way; " + _replay_hint(saved)) from None
        if not isinstance(batch, list):
            detail = batch.get("error") if isinstance(batch, dict) else None
            raise FeedError(f"{url}?date={date}: Hugging Face answered with an error"
                            + (f" ({printable(str(detail))[:200]})" if detail else " instead of a list of papers"),
                            f"check {option('date')} (YYYY-MM-DD, not in the future); " + _replay_hint(saved))
        items.extend(batch)
        if len(batch) < HF_PAGE_SIZE:
            break
    if not items:
        return b"[]", None
    body = json.dumps(items, ensure_ascii=False, indent=1).encode("utf-8")
    return body, _save(saved, body)


def _get(url: str, params: dict, saved: Path, timeout: float, deadline: float | None = None) -> bytes:
    """One GET, bounded in time (`timeout` s from now, or the shared `deadline` of several) and
    size (localdigest.net); HTTP errors and unreachable hosts become FeedErrors."""
    import httpx

    try:
        with httpx.Client(headers={"User-Agent": "localdigest"}, follow_redirects=True) as client:
            status, _headers, body = read_bounded(client, "GET", url, params=params, max_bytes=MAX_BYTES,
                                                  deadline=deadline or time.monotonic() + timeout)
    except TooLarge:
        check_size(url, MAX_BYTES + 1)
    except httpx.TimeoutException:
        raise FeedError(f"{url}: no complete answer within {timeout:g} s", _replay_hint(saved)) from None
    except (httpx.HTTPError, OSError) as exc:
        raise _unreachable_error(url, exc, saved) from None
    if status != 200:
        raise FeedError(f"{url}: the server answered HTTP {status}", "check the URL; " + _replay_hint(saved))
    return body


def _save(path: Path, body: bytes) -> Path | None:
    """Keep a copy for offline replay (atomically: a reader never sees half of one); None if that failed."""
    try:
        replace_file(path, body)
        return path
    except OSError:
        return None  # a copy for later replay is a convenience; the digest does not depend on it


def _slug(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    name = re.sub(r"[^A-Za-z0-9.]+", "_", f"{parts.netloc}{parts.path}?{parts.query}".rstrip("?")).strip("_")
    return name[:150] + ".feed"


def _replay_hint(saved: Path) -> str:
    return f"replay the saved copy with {option('feed')} {saved}" if saved.is_file() else \
        "save the feed on a connected machine and pass the file"


def _offline_error(what: str, saved: Path) -> FeedError:
    return FeedError(f"{what}: offline mode is on, not fetching", _replay_hint(saved))


def _unreachable_error(url: str, reason, saved: Path) -> FeedError:
    return FeedError(f"cannot reach {urllib.parse.urlsplit(url).netloc or url}: {printable(str(reason))}",
                     _replay_hint(saved) if saved.is_file() else
                     "you may be offline: save the feed on a connected machine and pass the file")
