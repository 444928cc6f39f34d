"""Hostile input: a shared cache folder someone else can write to."""

import json
import os

import diskcache
from click.testing import CliRunner

from localdigest.cli import main
from localdigest.review.cache import ReviewCache
from test_reviews import valid_dict


class Payload:
    """Unpickling this runs code: what an attacker with write access to a shared cache folder stores."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickled_entry_in_a_shared_cache_is_never_loaded(tmp_path):
    folder, marker = tmp_path / "shared-cache", tmp_path / "pwned"
    ReviewCache(folder).close()
    with diskcache.Cache(str(folder)) as attacker:  # diskcache's default disk pickles
        attacker.set("k" * 64, Payload(str(marker)))
        attacker.set(("tuple", "key"), Payload(str(marker) + "2"))
    store = ReviewCache(folder)
    assert store.get("k" * 64) is None and store.foreign == 1
    stats = CliRunner().invoke(main, ["cache", "stats", "--cache-dir", str(folder)])
    assert stats.exit_code == 0 and "reviews  2" in stats.output
    assert not marker.exists() and not (tmp_path / "pwned2").exists()  # nothing ran
    cleared = CliRunner().invoke(main, ["cache", "prune", "--older-than", "1d", "--cache-dir", str(folder)])
    assert "Removed 2" in cleared.output and len(ReviewCache(folder)) == 0


def test_entries_are_json_and_a_malformed_one_is_a_miss(tmp_path):
    from localdigest.review.schema import Review

    store = ReviewCache(tmp_path / "cache")
    review = Review.from_dict(valid_dict())
    store.put("good", review, {"completion_tokens": 3})
    raw = diskcache.Cache(str(tmp_path / "cache"))
    assert json.loads(raw.get("good"))["review"] == review.to_dict()  # plain JSON text on disk
    too_long = {**valid_dict(), "highlights": "长" * 5000}
    raw.set("long", json.dumps({"schema": 2, "review": too_long}))
    raw.set("deep", "[" * 100_000)
    raw.set("control", json.dumps({"schema": 2, "review": {**valid_dict(), "main_work": "## x\n<script>"}}))
    assert store.get("good").review == review
    assert [store.get(k) for k in ("long", "deep", "control")] == [None, None, None] and store.foreign == 3
