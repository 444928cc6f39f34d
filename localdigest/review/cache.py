"""Reviews cached on disk (diskcache), keyed by everything that shapes the answer.

A cache folder may be shared (a lab's network folder), so what is in it is data from others:
entries are stored as JSON text, and anything diskcache would unpickle (a key or value that
another program stored as a pickle) is never loaded: it is skipped and counted as foreign.
"""

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import diskcache

from localdigest.errors import LocaldigestError, ReviewInvalid, option
from localdigest.review.schema import REVIEW_SCHEMA_VERSION, Review


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes_on_disk: int
    oldest: float | None
    newest: float | None
    by_model: dict[str, int]


@dataclass(frozen=True)
class CachedReview:
    review: Review
    cost: dict


def review_key(paper_content: dict, prompt_fingerprint: str, model_fingerprint: str, generation: dict) -> str:
    """Paper text + prompt text + model file identity + sampling settings + review shape."""
    material = {
        "paper": paper_content,
        "prompt": prompt_fingerprint,
        "model": model_fingerprint,
        "generation": generation,
        "schema": REVIEW_SCHEMA_VERSION,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


NOT_DATA = object()  # what a pickled value reads as: never unpickled


class _ForeignKey(bytes):
    """A key stored as a pickle: kept as its raw bytes so it can be deleted, never unpickled."""


class DataOnlyDisk(diskcache.Disk):
    """diskcache's storage with pickle taken out: str keys and str values only."""

    def put(self, key):
        if isinstance(key, _ForeignKey):
            return sqlite3.Binary(key), False
        if type(key) is not str:
            raise TypeError("cache keys are strings")
        return super().put(key)

    def get(self, key, raw):
        return super().get(key, raw) if raw else _ForeignKey(key)

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if type(value) is not str:
            raise TypeError("cache values are JSON text")
        return super().store(value, read, key=key)

    def fetch(self, mode, filename, value, read):
        if mode == diskcache.core.MODE_PICKLE:
            return NOT_DATA
        return super().fetch(mode, filename, value, read)


class ReviewCache:
    def __init__(self, directory: Path):
        self.directory = directory
        self.foreign = 0  # entries that were not review JSON, ignored
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(str(directory), disk=DataOnlyDisk)
        except (OSError, sqlite3.Error) as exc:
            raise LocaldigestError(
                f"cache directory {directory} cannot be used: {exc}",
                f"pass {option('cache_dir')} to a writable folder, set LOCALDIGEST_CACHE_DIR, or use {option('no_cache')}",
            ) from None

    def get(self, key: str) -> CachedReview | None:
        entry = self._current(key)
        if entry is None:
            return None
        try:
            review = Review.from_dict(entry["review"])
        except (ReviewInvalid, KeyError, TypeError):
            self.foreign += 1
            return None  # an entry of another shape is a miss, never a wrong answer
        cost = entry.get("cost")
        return CachedReview(review, cost if isinstance(cost, dict) else {})

    def _current(self, key: str) -> dict | None:
        """The entry, if it is readable and of today's schema; anything else is a miss."""
        try:
            entry = self._read(key)
        except (sqlite3.Error, OSError):
            return None  # an unreadable entry is regenerated, not fatal
        return entry if entry is not None and entry.get("schema") == REVIEW_SCHEMA_VERSION else None

    def _read(self, key) -> dict | None:
        """The entry as a JSON object; None (counted as foreign) for anything else."""
        value = self._cache.get(key)
        if value is None:
            return None
        try:
            entry = json.loads(value) if isinstance(value, str) else None
        except (ValueError, RecursionError):
            entry = None
        if not isinstance(entry, dict):
            self.foreign += 1
            return None
        return entry

    def put(self, key: str, review: Review, cost: dict, model: str = "", prompt: str = "") -> str | None:
        """Store a review; returns why it could not be stored (the run goes on without caching it)."""
        return self._write(key, {"review": review.to_dict(), "model": model, "prompt": prompt, "cost": cost})

    def get_text(self, key: str) -> str | None:
        """A text entry (a 今日速览, a relevance), or None."""
        entry = self._current(key)
        text = entry.get("text") if entry is not None else None
        return text if isinstance(text, str) else None

    def put_text(self, key: str, text: str, model: str = "") -> str | None:
        return self._write(key, {"text": text, "model": model})

    def _write(self, key: str, fields: dict) -> str | None:
        entry = {"schema": REVIEW_SCHEMA_VERSION, **fields, "created": time.time()}
        try:
            self._cache.set(key, json.dumps(entry, ensure_ascii=False))
        except (sqlite3.Error, OSError) as exc:
            return f"could not write the review cache in {self.directory}: {exc}"
        return None

    def _entries(self):
        for key in list(self._cache.iterkeys()):
            entry = None if isinstance(key, _ForeignKey) else self._read(key)
            yield key, entry if entry is not None else {}

    def stats(self) -> CacheStats:
        created = []
        by_model: dict[str, int] = {}
        for _key, entry in self._entries():
            if _created(entry):
                created.append(_created(entry))
            model = entry.get("model") if isinstance(entry.get("model"), str) and entry["model"] else "unknown"
            by_model[model] = by_model.get(model, 0) + 1
        return CacheStats(len(self._cache), self._cache.volume(), min(created, default=None),
                          max(created, default=None), by_model)

    def prune(self, older_than_seconds: float) -> int:
        """Delete entries created longer ago than that (and entries of unknown age)."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for key, entry in self._entries():
            if _created(entry) < cutoff:
                removed += self._cache.delete(key)
        return removed

    def clear(self) -> int:
        return self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()


def _created(entry: dict) -> float:
    """When the entry was written; 0 for an entry that does not say (or says nonsense)."""
    value = entry.get("created")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
