import json

import pytest

from conftest import FIXTURES, HF_FEED, BENCH_DATA
from localdigest.errors import FeedError
from localdigest.sources.feeds import FeedOptions, load_feeds


def test_hf_daily_papers_json_gives_all_papers_in_order():
    papers = load_feeds([str(HF_FEED)]).papers
    expected = json.loads((BENCH_DATA / "papers" / "2023-09-22.json").read_text(encoding="utf-8"))
    assert [p.arxiv_id for p in papers] == [e["arxiv_id"] for e in expected]
    assert papers[0].title.startswith("LongLoRA")
    assert papers[0].authors[:2] == ("Yukang Chen", "Shengju Qian")
    assert papers[0].abstract == " ".join(expected[0]["abstract"].split())


def test_real_hf_paper_object_unwraps_and_collapses_hard_wraps(tmp_path):
    source = json.loads((FIXTURES / "hf_daily_papers_paper_object_2509.04664.json").read_text())
    feed = tmp_path / "daily.json"
    feed.write_text(json.dumps([{"paper": source["paper"]}]), encoding="utf-8")
    (paper,) = load_feeds([str(feed)]).papers
    assert paper.arxiv_id == "2509.04664" and paper.upvotes == 26
    assert "\n" not in paper.abstract and "models sometimes guess when uncertain" in paper.abstract
    assert paper.page_url == "https://huggingface.co/papers/2509.04664"


def test_arxiv_rss_replace_items_are_skipped_unless_asked():
    skipped = load_feeds([str(FIXTURES / "arxiv_rss_item_from_official_spec.xml")])
    assert skipped.papers == [] and "skipped 1 re-announced (replace) entries" in skipped.warnings[0]
    (paper,) = load_feeds([str(FIXTURES / "arxiv_rss_item_from_official_spec.xml")],
                          FeedOptions(include_replaced=True)).papers
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
    assert result.warnings == [f"{feed}: item 0 skipped: no arXiv id ('id'), no abstract ('summary') as text"]


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
        result = load_feeds([str(feed)])
        assert result.papers == [] and result.warnings == [f"{feed}: item 0 skipped: no arXiv id ('id'), no title "
                                                           "('title'), no abstract ('summary') as text"]
        return
    with pytest.raises(FeedError) as caught:
        load_feeds([str(feed)])
    assert str(feed) in caught.value.message and message in caught.value.message


def test_missing_feed_file(tmp_path):
    with pytest.raises(FeedError, match="no such file"):
        load_feeds([str(tmp_path / "nope.json")])


def test_arxiv_rss_keeps_latex_and_strips_html():
    result = load_feeds([str(FIXTURES / "arxiv_rss_cs_cl_new.xml")])
    assert [p.arxiv_id for p in result.papers] == ["2309.12207", "2309.12307"]  # the replace item is skipped
    boolformer = result.papers[0]
    assert boolformer.abstract.startswith("In this work, we introduce Boolformer, the first Transformer architecture")
    assert "trained to perform end-to-end" in boolformer.abstract  # hard wrap collapsed, words not glued
    assert "when $a<b$ and $n < 10^3$, keeps noise robustness for p>0.5 & more." in boolformer.abstract
    assert boolformer.authors == (r"St\'ephane d'Ascoli", "Samy Bengio", "Josh Susskind", r"Emmanuel Abb\'e")
    assert boolformer.published == "2023-09-22"


def test_order_by_upvotes_min_upvotes_and_limit(tmp_path):
    feed = tmp_path / "daily.json"
    feed.write_text(json.dumps([{"paper": {"id": f"2309.0000{i}", "title": f"P{i}", "summary": "A.", "upvotes": u}}
                                for i, u in enumerate([3, 10, 0, 7])]))
    ordered = load_feeds([str(feed)]).papers
    assert [p.upvotes for p in ordered] == [10, 7, 3, 0]
    assert [p.upvotes for p in load_feeds([str(feed)], FeedOptions(min_upvotes=5)).papers] == [10, 7]
    assert [p.title for p in load_feeds([str(feed)], FeedOptions(limit=2)).papers] == ["P1", "P3"]


def test_merged_duplicate_keeps_what_either_record_knows(tmp_path):
    hf = tmp_path / "hf.json"
    hf.write_text(json.dumps([{"paper": {"id": "2309.12207", "title": "Boolformer", "summary": "Short.", "upvotes": 12}}]))
    (paper,) = load_feeds([str(hf), str(FIXTURES / "arxiv_rss_cs_cl_new.xml")], FeedOptions(limit=1)).papers
    assert paper.upvotes == 12 and paper.abstract.startswith("In this work") and len(paper.authors) == 4


def test_a_directory_of_saved_feeds(tmp_path):
    for name in ("a.json", "b.xml", "notes.txt"):
        source = HF_FEED if name.endswith("json") else FIXTURES / "arxiv_rss_cs_cl_new.xml"
        (tmp_path / name).write_bytes(source.read_bytes() if name != "notes.txt" else b"not a feed")
    (tmp_path / "c.json").write_bytes(b"[{\"paper\": ")  # a download cut short: that file is skipped, not the folder
    result = load_feeds([str(tmp_path)])
    assert len(result.papers) == 8  # Boolformer and LongLoRA from b.xml are already in a.json
    assert result.warnings[1:] == [f"{tmp_path / 'c.json'}: invalid JSON at line 1 column 12: Expecting value: file "
                               "skipped (re-download the feed or fix the file)"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeedError, match="no feed files in this directory"):
        load_feeds([str(tmp_path / "empty")])


def test_five_thousand_items_and_a_feed_too_large(tmp_path):
    items = "".join(
        f"<item><title>Paper {i}</title><link>https://arxiv.org/abs/2401.{i:05d}</link>"
        f"<description>arXiv:2401.{i:05d}v1 Announce Type: new Abstract: Abstract {i}.</description></item>"
        for i in range(5000)
    )
    big = tmp_path / "big.xml"
    big.write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>')
    papers = load_feeds([str(big)]).papers
    assert len(papers) == 5000 and papers[-1].abstract == "Abstract 4999."
    huge = tmp_path / "huge.xml"
    with huge.open("wb") as handle:
        handle.truncate(50 * 2**20)
    with pytest.raises(FeedError, match="larger than 32 MB"):
        load_feeds([str(huge)])


def test_xml_with_undeclared_latin1_bytes_does_not_crash(tmp_path):
    feed = tmp_path / "latin1.xml"
    feed.write_bytes(
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>Caf\xe9 paper</title><link>https://arxiv.org/abs/2401.00001</link>"
        b"<description>R\xe9sum\xe9 of the work.</description></item></channel></rss>"
    )
    papers = load_feeds([str(feed)]).papers  # feedparser falls back to a one-byte encoding: read, not refused
    assert papers[0].arxiv_id == "2401.00001" and papers[0].title == "Café paper"
    assert papers[0].abstract == "Résumé of the work."
