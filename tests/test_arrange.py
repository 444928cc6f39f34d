"""--sort and --min-score: which reviewed papers the digest shows, in what order."""

import json

import pytest
from click.testing import CliRunner

from conftest import HF_FEED
from localdigest.cli import main
from localdigest.output.arrange import arrange
from localdigest.output.render import DigestInfo, render_markdown
from localdigest.review.pipeline import PaperResult
from localdigest.review.schema import Review
from localdigest.sources.papers import Paper
from test_reviews import valid_dict


def result(arxiv_id, upvotes, scores=None):
    paper = Paper(arxiv_id, f"Paper {arxiv_id}", "An abstract.", upvotes=upvotes)
    if scores is None:
        return PaperResult(paper, None, error="the model failed")
    names = ("practicality", "innovation", "recommendation")
    review = Review.from_dict({**valid_dict(), "scores": {n: {"score": s, "reason": f"理由{n}。"}
                                                          for n, s in zip(names, scores)}})
    return PaperResult(paper, review)


RESULTS = [result("2309.00001", 5, (3, 3, 3.5)), result("2309.00002", None, (5, 5, 4.5)), result("2309.00003", 40),
           result("2309.00004", 12, (4, 2, 4.5)), result("2309.00005", 7, (1, 1, 2))]


def ids(arranged):
    return [r.paper.arxiv_id[-1] for r in arranged.results]


def test_feed_order_and_no_cut_change_nothing():
    arranged = arrange(RESULTS)
    assert ids(arranged) == ["1", "2", "3", "4", "5"] and arranged.note is None and arranged.dropped == 0


@pytest.mark.parametrize("order, expected", [
    ("upvotes", ["3", "4", "5", "1", "2"]),  # unknown upvotes last
    ("score", ["2", "4", "1", "5", "3"]),  # 推荐度, then 实用性 + 创新性 (5+5 before 4+2), a failed review last
])
def test_sorting(order, expected):
    assert ids(arrange(RESULTS, order)) == expected


def test_min_score_drops_reviewed_papers_below_it_and_keeps_failed_ones():
    arranged = arrange(RESULTS, "score", min_score=3.5)
    assert ids(arranged) == ["2", "4", "1", "3"] and arranged.dropped == 1
    markdown = render_markdown(DigestInfo("2023-09-22", "m", "p", arranged=arranged.note, total=len(RESULTS)),
                               arranged.results)
    assert "共推荐 5 篇论文（按推荐度排序，只保留推荐度 ≥ 3.5 的论文，略去 1 篇）。" in markdown
    assert markdown.count("\n## ") == 4


def test_sort_and_min_score_on_a_real_run(tiny_registry, tmp_path):
    out = tmp_path / "d.json"
    args = ["run", "--feed", str(HF_FEED), "--limit", "4", "--date", "2023-09-22", "--format", "json", "--out",
            str(out), "--sort", "score", "--min-score", "2"]
    result_ = CliRunner().invoke(main, args)
    assert result_.exit_code == 0, result_.stderr
    digest = json.loads(out.read_text(encoding="utf-8"))
    shown = [p["review"]["scores"]["recommendation"]["score"] for p in digest["papers"] if p["review"]]
    assert shown == sorted(shown, reverse=True) and all(score >= 2 for score in shown)
    assert digest["total"] == 4 and "略去 " in digest["arranged"]
    assert len(digest["papers"]) == 4 - int(digest["arranged"].split("略去 ")[1].split(" ")[0])
    bad = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), "--min-score", "6"])
    assert bad.exit_code == 2 and "6" in bad.stderr
