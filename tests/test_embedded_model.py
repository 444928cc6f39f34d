"""The real embedded default model (Qwen2.5-Coder-1.5B) on real abstracts (minutes on a 2-core CPU)."""

import json
import re

import pytest
from click.testing import CliRunner

from conftest import BENCH_DATA
from localdigest.cli import main
from localdigest.review.checks import cjk_share

TITLES = ("LongLoRA", "LMSYS-Chat-1M")  # a method and a dataset, far from the worked examples' fields


def bench_feed(tmp_path, day: str, titles: tuple[str, ...]):
    """An HF-shaped feed of the bench papers of `day` whose titles start with `titles`, and those papers."""
    papers = [p for p in json.loads((BENCH_DATA / "papers" / f"{day}.json").read_text(encoding="utf-8"))
              if p["title"].startswith(titles)]
    feed = tmp_path / f"{day}.json"
    feed.write_text(json.dumps([{"paper": {"id": p["arxiv_id"], "title": p["title"], "summary": p["abstract"],
                                           "authors": [{"name": a} for a in p["authors"]]}} for p in papers]))
    return feed, papers


@pytest.mark.slow
def test_embedded_default_model_writes_a_chinese_digest_worth_reading(tmp_path, no_network):
    feed, papers = bench_feed(tmp_path, "2023-09-22", TITLES)
    out = tmp_path / "digest.md"
    args = ["run", "--feed", str(feed), "--date", "2023-09-22", "--out", str(out), "--format", "json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    digest = json.loads(out.read_text(encoding="utf-8"))
    assert digest["model"].startswith("qwen2.5-coder-1.5b")
    assert [p["title"] for p in digest["papers"]] == [p["title"] for p in papers]
    for paper in digest["papers"]:
        review = paper["review"]
        assert review is not None, paper["error"]  # both papers reviewed, none dropped
        main_work, highlights = review["main_work"], review["highlights"]
        assert re.match("[\u4e00-\u9fff]", main_work) and cjk_share(main_work) > 0.5, main_work
        assert not re.search("我们|笔者", main_work + highlights)
        assert 60 <= len(main_work) <= 400 and main_work.endswith(("。", "！", "？"))
        reasons = [s["reason"] for s in review["scores"].values()]
        assert all(r.endswith(("。", "！", "？")) for r in reasons)
        # Identical reasons are not asked again (a retry did not fix them): they must carry the flag.
        assert len(set(reasons)) == 3 or "two score reasons are identical" in paper["flags"], reasons
        assert len({k["en"].casefold() for k in review["keywords"]}) == 5
    rerun = CliRunner().invoke(main, args)
    assert "2 from cache" in rerun.stderr and "0 generated" in rerun.stderr
    assert no_network == []  # assembling the packaged model and the whole run stayed offline


@pytest.mark.slow
def test_embedded_model_ranks_by_interests_and_writes_an_overview_of_the_day(tmp_path, no_network):
    """Three papers of 2023-09-21; a speech researcher's profile must put the speech paper first, and
    the overview may name only papers of the day (or be left out with a warning, never invented)."""
    feed, _papers = bench_feed(tmp_path, "2023-09-21", ("End-to-End Speech Recognition", "Chain-of-Verification",
                                                         "FreeU"))
    out = tmp_path / "digest.json"
    args = ["run", "--feed", str(feed), "--date", "2023-09-21", "--out", str(out), "--format", "json", "--top", "2",
            "--interests", "speech recognition and audio-language models", "--overview"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    digest = json.loads(out.read_text(encoding="utf-8"))
    assert len(digest["papers"]) == 2 and digest["papers"][0]["title"].startswith("End-to-End Speech Recognition")
    assert digest["papers"][0]["relevance"] > digest["papers"][1]["relevance"]
    overview = digest.get("overview")
    if overview is None:
        assert "Warning: no 今日速览" in result.stderr
    else:
        from localdigest.review.overview import problems
        from localdigest.review.pipeline import PaperResult
        from localdigest.review.schema import Review
        from localdigest.sources.papers import Paper

        shown = [PaperResult(Paper(p["arxiv_id"], p["title"], p["abstract"]), Review.from_dict(p["review"]))
                 for p in digest["papers"]]
        assert problems(overview, shown) == [] and cjk_share(overview) > 0.5, overview
