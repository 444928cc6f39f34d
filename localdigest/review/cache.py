"""Reviews cached on disk (diskcache), keyed by everything that shapes the answer."""

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


class ReviewCache:
    def __init__(self, directory: Path):
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(str(directory))
        except (OSError, sqlite3.Error) as exc:
            raise LocaldigestError(
                f"cache directory {directory} cannot be used: {exc}",
                f"pass {option('cache_dir')} to a writable folder, set LOCALDIGEST_CACHE_DIR, or use {option('no_cache')}",
            ) from None

    def get(self, key: str) -> CachedReview | None:
        try:
            entry = self._cache.get(key)
        except (sqlite3.Error, OSError):
            return None  # an unreadable entry is regenerated, not fatal
        if not isinstance(entry, dict) or entry.get("schema") != REVIEW_SCHEMA_VERSION:
            return None
        try:
            review = Review.from_dict(entry["review"])
        except (ReviewInvalid, KeyError):
            return None  # an entry of another shape is a miss, never a wrong answer
        return CachedReview(review, entry.get("cost") or {})

    def put(self, key: str, review: Review, cost: dict, model: str = "", prompt: str = "") -> str | None:
        """Store a review; returns why it could not be stored (the run goes on without caching it)."""
        entry = {
            "schema": REVIEW_SCHEMA_VERSION,
            "review": review.to_dict(),
            "model": model,
            "prompt": prompt,
            "cost": cost,
            "created": time.time(),
        }
        try:
            self._cache.set(key, entry)
        except (sqlite3.Error, OSError) as exc:
            return f"could not write the review cache in {self.directory}: {exc}"
        return None

    def _entries(self):
        for key in list(self._cache.iterkeys()):
            entry = self._cache.get(key)
            yield key, entry if isinstance(entry, dict) else {}

    def stats(self) -> CacheStats:
        created = []
        by_model: dict[str, int] = {}
        for _key, entry in self._entries():
            if "created" in entry:
                created.append(entry["created"])
            model = entry.get("model") or "unknown"
            by_model[model] = by_model.get(model, 0) + 1
        return CacheStats(len(self._cache), self._cache.volume(), min(created, default=None),
                          max(created, default=None), by_model)

    def prune(self, older_than_seconds: float) -> int:
        """Delete entries created longer ago than that (and entries of unknown age)."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for key, entry in self._entries():
            if entry.get("created", 0) < cutoff:
                removed += self._cache.delete(key)
        return removed

    def clear(self) -> int:
        return self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()
