"""Online sources against a real HTTP server on 127.0.0.1 (no other address is ever contacted)."""

import http.server
import json
import urllib.parse

import pytest
from click.testing import CliRunner

from conftest import FIXTURES, HF_FEED, http_server
from localdigest.cli import main
from localdigest.errors import FeedError, option
from localdigest.sources.feeds import FeedOptions, load_feeds


class FeedServer(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):
        FeedServer.requests.append(self.path)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/daily_papers":
            query = urllib.parse.parse_qs(url.query)
            body = HF_FEED.read_bytes() if query.get("date") == ["2023-09-22"] and query.get("p") == ["0"] else b"[]"
        elif url.path == "/rss/cs.CL":
            body = (FIXTURES / "arxiv_rss_cs_cl_new.xml").read_bytes()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    FeedServer.requests = []
    with http_server(FeedServer, monkeypatch) as local:
        yield local


def test_hf_daily_papers_for_a_date_are_fetched_and_saved(server, tmp_path):
    result = load_feeds(["hf"], FeedOptions(date="2023-09-22"))
    assert len(result.papers) == 8
    assert FeedServer.requests[0].startswith("/api/daily_papers?") and "date=2023-09-22" in FeedServer.requests[0]
    saved = tmp_path / "data" / "feeds" / "hf-daily-papers-2023-09-22.json"
    assert f"{option('feed')} {saved}" in result.notes[0]  # the CLI spells it --feed
    replay = load_feeds([str(saved)]).papers  # the same day, later, without the network
    assert replay == result.papers
    weekend = load_feeds(["hf"], FeedOptions(date="2023-09-23"))
    assert weekend.papers == [] and "lists no papers that day" in weekend.warnings[0]


def test_feed_url_is_fetched_saved_and_replayable(server):
    url = f"{server.base}/rss/cs.CL"
    result = load_feeds([url])
    assert [p.arxiv_id for p in result.papers] == ["2309.12207", "2309.12307"]
    saved = result.notes[0].split(f"{option('feed')} ")[1]
    assert [p.arxiv_id for p in load_feeds([saved]).papers] == ["2309.12207", "2309.12307"]


def test_unreachable_server_says_so_and_points_at_the_saved_copy(server):
    with pytest.raises(FeedError, match="HTTP 404"):
        load_feeds([f"{server.base}/nothing"])
    url = f"{server.base}/rss/cs.CL"
    load_feeds([url])
    server.stop()
    with pytest.raises(FeedError) as caught:
        load_feeds([url])
    assert caught.value.message.startswith(f"cannot reach {url.split('/')[2]}")
    assert caught.value.fix.startswith(f"replay the saved copy with {option('feed')} ")
    with pytest.raises(FeedError) as caught:
        load_feeds(["hf"], FeedOptions(date="2023-09-23"))
    assert "cannot reach" in caught.value.message and "you may be offline" in caught.value.fix


def test_offline_mode_refuses_to_fetch(server, monkeypatch):
    load_feeds(["hf"], FeedOptions(date="2023-09-22"))
    count = len(FeedServer.requests)
    monkeypatch.setenv("LOCALDIGEST_OFFLINE", "1")
    with pytest.raises(FeedError) as caught:
        load_feeds(["hf"], FeedOptions(date="2023-09-22"))
    assert "offline mode is on" in caught.value.message and "replay the saved copy" in caught.value.fix
    assert len(FeedServer.requests) == count


def test_feeds_show_from_stdin_and_as_json():
    result = CliRunner().invoke(main, ["feeds", "show", "--feed", "-", "--json", "--limit", "2"],
                                input=HF_FEED.read_text(encoding="utf-8"))
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [p["arxiv_id"] for p in shown] == ["2309.12307", "2309.11523"]
    table = CliRunner().invoke(main, ["feeds", "show", "--feed", str(FIXTURES / "arxiv_rss_cs_cl_new.xml"),
                                      "--include-replaced"])
    assert table.exit_code == 0 and "3 papers" in table.stdout and "2203.01250" in table.stdout
