import json

import pytest

from conftest import FIXTURES, HF_FEED, SHARED_DATA
from localdigest.errors import FeedError
from localdigest.feeds import load_feeds


def test_hf_daily_papers_json_gives_all_papers_in_order():
    papers = load_feeds([str(HF_FEED)]).papers
    expected = json.loads((SHARED_DATA / "papers" / "2023-09-22.json").read_text(encoding="utf-8"))
    assert [p.arxiv_id for p in papers] == [e["arxiv_id"] for e in expected]
    assert papers[0].title.startswith("LongLoRA")
    assert papers[0].authors[:2] == ("Yukang Chen", "Shengju Qian")
    assert papers[0].abstract == " ".join(expected[0]["abstract"].split())


def test_real_hf_paper_object_unwraps_and_collapses_hard_wraps(tmp_path):
    source = json.loads((SHARED_DATA / "feeds" / "hf_daily_papers_paper_object_2509.04664.json").read_text())
    feed = tmp_path / "daily.json"
    feed.write_text(json.dumps([{"paper": source["paper"]}]), encoding="utf-8")
    (paper,) = load_feeds([str(feed)]).papers
    assert paper.arxiv_id == "2509.04664" and paper.upvotes == 26
    assert "\n" not in paper.abstract and "models sometimes guess when uncertain" in paper.abstract
    assert paper.page_url == "https://huggingface.co/papers/2509.04664"


def test_arxiv_rss_item():
    (paper,) = load_feeds([str(FIXTURES / "arxiv_rss_item_from_official_spec.xml")]).papers
    assert paper.arxiv_id == "2203.01250"  # version stripped
    assert paper.abstract.startswith("We consider first order local minimization problems")
    assert r"$\min \int_{\mathbb{R}^N}f(u,\nabla u)$" in paper.abstract  # LaTeX intact
    assert paper.authors == ("Antonin Monteil", "Paul Pegon")


def test_arxiv_api_atom_entry():
    (paper,) = load_feeds([str(FIXTURES / "arxiv_api_atom_response_from_manual.xml")]).papers
    assert paper.arxiv_id == "hep-ex/0307015"
    assert paper.title == "Multi-Electron Production at High Transverse Momenta in ep Collisions at HERA"
    assert paper.abstract.startswith("Multi-electron production is studied") and "  " not in paper.abstract
    assert paper.authors == ("H1 Collaboration",)


def test_duplicates_across_feeds_keep_the_richer_record(tmp_path):
    short = tmp_path / "short.json"
    short.write_text(json.dumps([{"paper": {"id": "2309.12307v2", "title": "LongLoRA", "summary": "Short."}}]))
    papers = load_feeds([str(short), str(HF_FEED)]).papers
    assert len(papers) == 8
    assert papers[0].arxiv_id == "2309.12307" and len(papers[0].abstract) > 100


def test_items_without_abstract_are_skipped_with_a_warning(tmp_path):
    feed = tmp_path / "partial.json"
    feed.write_text(json.dumps([{"paper": {"id": "2309.1", "title": "No abstract"}},
                                {"paper": {"id": "2309.12307", "title": "T", "summary": "A"}}]))
    result = load_feeds([str(feed)])
    assert [p.arxiv_id for p in result.papers] == ["2309.12307"]
    assert result.warnings == [f"{feed}: item 0 skipped: no arXiv id, title or abstract"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "feed is empty"),
        (b"[{\"paper\": ", "invalid JSON at line 1"),
        (b"[{\"paper\": {\"title\": \"caf\xe9\"}}]", "not UTF-8 (byte 25)"),
        (b"<html><body>not a feed</body></html>", "feed has no entries"),
        (b"<rss><channel><item><title>x</ti", "malformed feed"),
        (b'{"a": 1}', None),
    ],
)
def test_bad_feeds_name_the_file(tmp_path, content, message):
    feed = tmp_path / "bad.feed"
    feed.write_bytes(content)
    if message is None:  # a JSON object with no paper in it: a warning, not a crash
        assert load_feeds([str(feed)]).papers == []
        return
    with pytest.raises(FeedError) as caught:
        load_feeds([str(feed)])
    assert str(feed) in caught.value.message and message in caught.value.message


def test_missing_feed_file(tmp_path):
    with pytest.raises(FeedError, match="no such file"):
        load_feeds([str(tmp_path / "nope.json")])
