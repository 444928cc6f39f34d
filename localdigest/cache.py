"""Reviews cached on disk (diskcache), keyed by everything that shapes the answer."""

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import diskcache

from localdigest.errors import LocaldigestError, ReviewInvalid
from localdigest.reviews import REVIEW_SCHEMA_VERSION, Review


@dataclass(frozen=True)
class CachedReview:
    review: Review
    completion_tokens: int
    seconds: float


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
                "pass --cache-dir to a writable folder, set LOCALDIGEST_CACHE_DIR, or use --no-cache",
            ) from None

    def get(self, key: str) -> CachedReview | None:
        entry = self._cache.get(key)
        if not isinstance(entry, dict):
            return None
        try:
            review = Review.from_dict(entry["review"])
        except (ReviewInvalid, KeyError):
            return None  # an entry of another shape is a miss, never a wrong answer
        return CachedReview(review, entry.get("completion_tokens", 0), entry.get("seconds", 0.0))

    def put(self, key: str, review: Review, completion_tokens: int, seconds: float) -> None:
        self._cache.set(
            key,
            {
                "review": review.to_dict(),
                "completion_tokens": completion_tokens,
                "seconds": seconds,
                "created": time.time(),
            },
        )

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()
