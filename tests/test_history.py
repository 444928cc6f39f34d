"""History: papers already in an earlier day's saved digest are marked with that day, or left out
with --new-only (by arXiv id, any version), before any model work."""

import json
import os
from pathlib import Path

from click.testing import CliRunner

from conftest import HF_FEED
from localdigest.cli import main


def run(tmp_path, date, *args):
    out = tmp_path / f"{date}.json"
    result = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), "--date", date, "--format", "json",
                                       "--out", str(out), *args])
    return result, (json.loads(out.read_text(encoding="utf-8")) if result.exit_code == 0 else None)


def test_papers_seen_on_an_earlier_day_are_marked_or_left_out(tiny_registry, tmp_path):
    result, earlier = run(tmp_path, "2023-09-21", "--limit", "2")
    assert result.exit_code == 0, result.stderr
    seen = [p["arxiv_id"] for p in earlier["papers"]]

    result, today = run(tmp_path, "2023-09-22", "--limit", "3")
    assert result.exit_code == 0, result.stderr
    assert [p["first_seen"] for p in today["papers"]] == ["2023-09-21", "2023-09-21", None]
    markdown = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), "--date", "2023-09-22", "--limit", "3",
                                         "--no-archive"])
    assert markdown.stdout.count("> 🔁 已收录于 2023-09-21 的速览") == 2

    # --new-only: the two seen papers go before --limit, so the digest still has two new papers.
    result, new = run(tmp_path, "2023-09-23", "--limit", "2", "--new-only")
    assert result.exit_code == 0, result.stderr
    assert "Left out 3 papers already in an earlier digest" in result.stderr
    assert not {p["arxiv_id"] for p in new["papers"]} & set(seen + [today["papers"][2]["arxiv_id"]])
    assert len(new["papers"]) == 2 and all(p["first_seen"] is None for p in new["papers"])


def test_every_paper_seen_and_unreadable_history(tiny_registry, tmp_path):
    feed = json.loads(HF_FEED.read_text(encoding="utf-8"))
    ids = [entry["paper"]["id"] + "v2" for entry in feed]  # a revised version is the same paper
    saved = Path(os.environ["LOCALDIGEST_DATA_DIR"]) / "digests"
    saved.mkdir(parents=True)
    (saved / "2023-09-20.json").write_text(json.dumps({"papers": [{"arxiv_id": i} for i in ids]}), encoding="utf-8")
    (saved / "2023-09-19.json").write_text("{broken", encoding="utf-8")
    (saved / "2023-09-30.json").write_text(json.dumps({"papers": [{"arxiv_id": "2309.99999"}]}), encoding="utf-8")

    result, _ = run(tmp_path, "2023-09-22", "--new-only")
    assert result.exit_code == 1
    assert "every paper in the feeds was already in an earlier digest (--new-only)" in result.stderr
    assert "2023-09-19.json: skipped for --new-only and first-seen dates (JSONDecodeError)" in result.stderr

    result, digest = run(tmp_path, "2023-09-22", "--limit", "1")
    assert result.exit_code == 0 and digest["papers"][0]["first_seen"] == "2023-09-20"  # a later day does not count
