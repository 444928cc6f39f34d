"""Unattended and air-gapped use: no network, interruptions, bad environments, nothing lost."""

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import diskcache
import pytest
from click.testing import CliRunner

from conftest import BENCH_DATA, HF_FEED, interruptible
from localdigest import paths
from localdigest.review.cache import ReviewCache
from localdigest.cli import main
from localdigest.cli.common import megabytes

ALL_PAPERS = [str(BENCH_DATA / "papers" / f"2023-09-{day}.json") for day in (20, 22)]
TOTAL = sum(len(json.loads(Path(f).read_text(encoding="utf-8"))) for f in ALL_PAPERS)  # 17 real papers


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_full_digest_never_touches_the_network(tiny_registry, tmp_path, no_network):
    out = tmp_path / "digest.md"
    result = run("run", "--feed", str(HF_FEED), "--out", str(out), "--date", "2023-09-22")
    assert result.exit_code == 0, result.stderr
    assert "8 generated" in result.stderr and out.read_text(encoding="utf-8").count("### 4. 评分") == 8
    assert run("models", "list").exit_code == 0
    assert run("feeds", "show", "--feed", str(HF_FEED)).exit_code == 0
    assert no_network == []


def test_offline_flag_makes_network_sources_fail_at_once(tiny_registry, no_network):
    started = time.monotonic()
    result = run("run", "--offline", "--feed", "hf", "--date", "2023-09-22")
    assert result.exit_code == 1 and "offline mode is on, not fetching" in result.stderr
    assert time.monotonic() - started < 5 and no_network == []
    shown = run("feeds", "show", "--offline", "--feed", "https://rss.arxiv.org/rss/cs.CL")
    assert shown.exit_code == 1 and "offline mode is on" in shown.stderr


def digest_process(tiny_registry, tmp_path, *extra, preexec_fn=None):
    env = {**os.environ, "LOCALDIGEST_MODELS_FILE": str(tiny_registry)}
    args = [sys.executable, "-m", "localdigest", "run", *sum((["--feed", f] for f in ALL_PAPERS), []),
            "--cache-dir", str(tmp_path / "cache"), "--date", "2023-09-22", *extra]
    def prepare():
        interruptible()
        if preexec_fn:
            preexec_fn()

    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=prepare)


def cached_reviews(tmp_path) -> int:
    with diskcache.Cache(str(tmp_path / "cache")) as store:
        return len(store)


def wait_for_reviews(process, tmp_path, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (tmp_path / "cache").exists() and cached_reviews(tmp_path) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run ended or stalled before {count} reviews were cached")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_keeps_finished_reviews_and_the_old_digest(tiny_registry, tmp_path, sig):
    out = tmp_path / "digest.md"
    out.write_text("the previous complete digest\n", encoding="utf-8")
    process = digest_process(tiny_registry, tmp_path, "--out", str(out))
    try:
        wait_for_reviews(process, tmp_path, 2)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()  # never left running after a failed assertion
    if sig == signal.SIGINT:
        assert process.returncode == 130 and "Interrupted; reviews finished so far are cached" in stderr
        assert "Traceback" not in stderr
    else:
        assert process.returncode == -signal.SIGKILL
    assert out.read_text(encoding="utf-8") == "the previous complete digest\n"  # never half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".digest.md.")]
    finished = cached_reviews(tmp_path)
    assert 2 <= finished < TOTAL

    rerun = digest_process(tiny_registry, tmp_path, "--out", str(out))
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    # Every finished review is reused and nothing else is: the rest are generated (the random test
    # model's answer for a paper may still fail its validation; that paper is then a ⚠️ line).
    summary = re.search(r"(\d+) papers: (\d+) generated, (\d+) from cache, (\d+) failed", stderr).groups()
    total, generated, cached, failed = map(int, summary)
    assert (total, cached, generated + failed) == (TOTAL, finished, TOTAL - finished), stderr
    digest = out.read_text(encoding="utf-8")
    assert digest.count("### 4. 评分") == TOTAL - failed and digest.count("\n## ") == TOTAL


def test_partial_digest_is_complete_markdown_after_a_kill(tiny_registry, tmp_path):
    out = tmp_path / "digest.md"
    process = digest_process(tiny_registry, tmp_path, "--out", str(out), "--partial")
    # Wait on the digest file itself: with batches, several reviews reach the cache a moment
    # before the file is rewritten for each of them.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_text(encoding="utf-8").count("### 4. 评分") >= 2:
            break
        time.sleep(0.05)
    process.kill()  # also when the wait above ran out
    process.communicate(timeout=60)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# 【2023-09-22】arXiv 每日论文速览") and f"共推荐 {TOTAL} 篇论文。" in text  # plain lists
    reviewed, pending = text.count("### 4. 评分"), text.count("⏳ 本文速览尚未生成")
    assert reviewed >= 2 and reviewed + pending == TOTAL and pending > 0
    assert text.count("[到 arXiv 查看详情]") == TOTAL


def test_partial_needs_an_output_file(tiny_registry):
    result = run("run", "--feed", str(HF_FEED), "--partial")
    assert result.exit_code == 1 and "--partial needs --out FILE" in result.stderr


def test_disk_full_on_output_keeps_the_cache_and_says_so(tiny_registry, tmp_path):
    out = tmp_path / "digest.md"

    def small_files():  # every file this process writes is capped at 1 MB, like a nearly full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    env = {**os.environ, "LOCALDIGEST_MODELS_FILE": str(tiny_registry)}
    cache = tmp_path / "cache"
    ReviewCache(cache).close()  # the cache database exists before the limit applies
    args = [sys.executable, "-m", "localdigest", "run", "--feed", str(HF_FEED), "--limit", "2", "--out", str(out),
            "--cache-dir", str(cache), "--format", "json"]
    padded = tmp_path / "padded.json"  # a very long abstract (trimmed for the model) makes the JSON digest too big
    items = json.loads(HF_FEED.read_text(encoding="utf-8"))[:2]
    items[0]["paper"]["summary"] += " padding" * 200_000
    padded.write_text(json.dumps(items), encoding="utf-8")
    args[args.index(str(HF_FEED))] = str(padded)
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert result.returncode == 1
    assert f"Error: cannot write {out}" in result.stderr and "the cached reviews are kept" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".digest.md.")]
    assert cached_reviews(tmp_path) == 2


@pytest.mark.parametrize("damage", ["file_in_the_way", "corrupt_database"])
def test_unusable_cache_directory_is_a_clear_error(tiny_registry, tmp_path, damage):
    cache = tmp_path / "cache"
    if damage == "file_in_the_way":
        cache.write_text("not a folder")
    else:
        cache.mkdir()
        (cache / "cache.db").write_bytes(b"this is not sqlite" * 100)
    result = run("run", "--feed", str(HF_FEED), "--limit", "1", "--cache-dir", str(cache))
    assert result.exit_code == 1 and f"cache directory {cache} cannot be used" in result.stderr
    assert "--no-cache" in result.stderr and "Traceback" not in result.stderr
    assert run("run", "--feed", str(HF_FEED), "--limit", "1", "--no-cache").exit_code == 0


def test_cache_entries_of_another_schema_version_are_never_served(tiny_registry, tmp_path):
    cache = tmp_path / "cache"
    assert run("run", "--feed", str(HF_FEED), "--limit", "1", "--cache-dir", str(cache)).exit_code == 0
    with diskcache.Cache(str(cache)) as store:
        (key,) = list(store.iterkeys())
        entry = json.loads(store[key])  # entries are JSON text
        store[key] = json.dumps({**entry, "schema": 0, "review": {"old": "shape"}})
    result = run("run", "--feed", str(HF_FEED), "--limit", "1", "--cache-dir", str(cache))
    assert "1 generated, 0 from cache" in result.stderr


def test_cache_stats_prune_and_clear(tiny_registry, tmp_path):
    cache = tmp_path / "cache"
    assert run("run", "--feed", str(HF_FEED), "--limit", "3", "--cache-dir", str(cache)).exit_code == 0
    stats = run("cache", "stats", "--cache-dir", str(cache)).stdout
    assert "reviews  3" in stats and "model    tiny: 3" in stats
    # and the prompt's shared beginning the run kept in the data folder (llm.prefix_states), with a
    # partial file a killed run left
    prefixes = paths.data_dir() / "prefix-states"
    [kept] = prefixes.iterdir()
    assert f"prefixes 1 files, {megabytes(kept.stat().st_size)} in {prefixes} " in stats
    (prefixes / f"{kept.name}.123.partial").write_bytes(b"half")
    assert "prefixes 2 files" in run("cache", "stats", "--cache-dir", str(cache)).stdout
    with diskcache.Cache(str(cache)) as store:
        key = next(iter(store.iterkeys()))
        store[key] = json.dumps({**json.loads(store[key]), "created": time.time() - 40 * 86400})
    assert "Removed 1 cached reviews older than 30d" in run("cache", "prune", "--older-than", "30d",
                                                             "--cache-dir", str(cache)).stderr
    assert "Removed 2 cached reviews and 2 prompt-prefix files" in run("cache", "clear", "--cache-dir", str(cache)).stderr
    assert list(prefixes.iterdir()) == [] and "prefixes 0 files" in run("cache", "stats", "--cache-dir", str(cache)).stdout
    assert run("cache", "prune", "--older-than", "soon", "--cache-dir", str(cache)).exit_code == 1
