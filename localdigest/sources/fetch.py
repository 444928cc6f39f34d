"""Fetching feeds over the network, keeping a local copy of each so a day can be replayed offline."""

import json
import os
import re
import urllib.parse
from pathlib import Path

from localdigest import paths
from localdigest.errors import FeedError, option

TIMEOUT_SECONDS = 30
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


def fetch_url(url: str, offline: bool = False) -> tuple[bytes, Path]:
    """The body of a feed URL, also saved under the data folder; returns (body, saved path)."""
    import urllib.error
    import urllib.request  # with http.client: 12 ms that runs from files never need

    saved = saved_copy_path(_slug(url))
    if offline:
        raise _offline_error(url, saved)
    request = urllib.request.Request(url, headers={"User-Agent": "localdigest"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            body = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise FeedError(f"{url}: the server answered HTTP {exc.code}", "check the URL") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _unreachable_error(url, reason, saved) from None
    check_size(url, len(body))
    _save(saved, body)
    return body, saved


def fetch_hf_daily(date: str, offline: bool = False) -> tuple[bytes, Path]:
    """Hugging Face daily papers for a UTC submission date, as the API's JSON list.

    huggingface-hub's list_daily_papers parses the answer into objects; the same endpoint
    is read here through huggingface-hub's HTTP session so the raw JSON can be kept.
    """
    saved = saved_copy_path(f"hf-daily-papers-{date}.json")
    if offline:
        raise _offline_error(f"Hugging Face daily papers for {date}", saved)
    from huggingface_hub.utils import get_session

    url = f"{paths.hub_endpoint()}/api/daily_papers"
    items: list = []
    try:
        for page in range(HF_MAX_PAGES):
            response = get_session().get(url, params={"date": date, "limit": HF_PAGE_SIZE, "p": page},
                                         timeout=TIMEOUT_SECONDS)
            if response.status_code != 200:
                raise FeedError(f"{url}?date={date}: the server answered HTTP {response.status_code}",
                                f"check {option('date')} (YYYY-MM-DD, not in the future)")
            batch = response.json()
            items.extend(batch)
            if len(batch) < HF_PAGE_SIZE:
                break
    except FeedError:
        raise
    except Exception as exc:  # the HTTP client's connection errors differ between huggingface-hub versions
        raise _unreachable_error(url, exc, saved) from None
    body = json.dumps(items, ensure_ascii=False, indent=1).encode("utf-8")
    _save(saved, body)
    return body, saved


def _save(path: Path, body: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".partial")
        temp.write_bytes(body)
        temp.replace(path)
    except OSError:
        pass  # a copy for later replay is a convenience; the digest does not depend on it


def _slug(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    name = re.sub(r"[^A-Za-z0-9.]+", "_", f"{parts.netloc}{parts.path}?{parts.query}".rstrip("?")).strip("_")
    return name[:150] + ".feed"


def _offline_error(what: str, saved: Path) -> FeedError:
    replay = f"replay the saved copy with {option('feed')} {saved}" if saved.is_file() else "pass a saved feed file instead"
    return FeedError(f"{what}: offline mode is on, not fetching", replay)


def _unreachable_error(url: str, reason, saved: Path) -> FeedError:
    replay = f"replay the saved copy with {option('feed')} {saved}" if saved.is_file() else \
        "you may be offline: save the feed on a connected machine and pass the file"
    return FeedError(f"cannot reach {urllib.parse.urlsplit(url).netloc or url}: {reason}", replay)
