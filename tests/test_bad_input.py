"""Bad input of every kind gets one line naming the file or setting and the fix: never a
traceback, never "unexpected", never a silently wrong result."""

import json

import pytest
from click.testing import CliRunner

from conftest import FIXTURES, HF_FEED
from localdigest.cli import main
from localdigest.sources.feeds import load_feeds


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_line_error(result, message):
    assert result.exit_code == 1, result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0] and "unexpected" not in errors[0], result.stderr


@pytest.mark.parametrize("content, message", [
    (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply to be a feed"),
    (b'[{"id": "2309.12307", "title": "T", "summary": "A", "upvotes": ' + b"9" * 5000 + b"}]",
     "a number too long to be a feed's"),
])
def test_json_that_would_crash_a_parser(tmp_path, content, message):
    feed = tmp_path / "feed.json"
    feed.write_bytes(content)
    one_line_error(run("feeds", "show", "--feed", str(feed)), f"{feed}: {message}" if "nested" in message else message)


def test_non_regular_files_are_read_only_up_to_the_limit():
    one_line_error(run("feeds", "show", "--feed", "/dev/zero"), "/dev/zero: larger than 32 MB")


def test_odd_field_types_in_json_items(tmp_path):
    feed = tmp_path / "feed.json"
    feed.write_bytes(b"\xef\xbb\xbf" + json.dumps([  # with the UTF-8 byte-order mark Windows editors write
        {"id": "2309.00001", "title": "Numbers", "summary": "A.", "authors": 5, "upvotes": "many", "url": 7},
        {"id": "2309.00002", "title": "One string", "summary": "A.", "authors": "Alice Smith, Bob Jones and Carol Li"},
        {"id": "2309.00003", "title": {"en": "an object"}, "summary": "A."},
        {"id": 2309.00004, "title": "A number id", "summary": "A."},
        "just a string",
    ]).encode())
    result = load_feeds([str(feed)])
    by_id = {p.arxiv_id: p for p in result.papers}
    assert list(by_id) == ["2309.00001", "2309.00002"]
    assert by_id["2309.00001"].authors == () and by_id["2309.00001"].upvotes is None and by_id["2309.00001"].url is None
    assert by_id["2309.00002"].authors == ("Alice Smith", "Bob Jones", "Carol Li")
    assert result.warnings == [f"{feed}: item 2 skipped: no title ('title') as text",
                               f"{feed}: item 3 skipped: no arXiv id ('id') as text",
                               f"{feed}: item 4 skipped: a str, not an object"]


def test_a_truncated_rss_file_warns_that_papers_are_missing(tmp_path):
    whole = (FIXTURES / "arxiv_rss_cs_cl_new.xml").read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(whole[: whole.rindex(b"<item") + 40])
    result = run("feeds", "show", "--feed", str(cut))
    assert result.exit_code == 0
    assert f"{cut}: the feed is malformed" in result.stderr and "re-download it for the rest" in result.stderr


@pytest.mark.parametrize("setting, message", [
    ("temperature = nan", "[models.bad]: 'temperature' must be a non-negative number"),
    ("top_p = 50", "[models.bad]: generation setting top_p = 50 is out of range"),
    ("n_ctx = 0", "[models.bad]: 'n_ctx' = 0 is too small"),
    ("max_tokens = inf", "[models.bad]: 'max_tokens' must be a non-negative number"),
    ("repeat_penalty = -inf", "[models.bad]: 'repeat_penalty' must be a non-negative number"),
])
def test_generation_settings_out_of_range(tiny_registry, tiny_gguf, setting, message):
    with tiny_registry.open("a") as registry:
        registry.write(f'\n[models.bad]\npath = {json.dumps(str(tiny_gguf))}\n{setting}\n')
    one_line_error(run("models", "list"), message)


def test_a_registry_whose_models_is_not_a_table(tmp_path, monkeypatch):
    registry = tmp_path / "m.toml"
    registry.write_text("models = 5\n")
    monkeypatch.setenv("LOCALDIGEST_MODELS_FILE", str(registry))
    one_line_error(run("models", "list"), f"{registry}: 'models' must be a table of entries")


def test_a_registry_entry_whose_name_is_a_path(tmp_path, monkeypatch):
    registry = tmp_path / "m.toml"
    registry.write_text('[models."../../x"]\npath = "/tmp/x.gguf"\n')
    monkeypatch.setenv("LOCALDIGEST_MODELS_FILE", str(registry))
    one_line_error(run("models", "list"), "'../../x' is not a valid model name")


@pytest.mark.parametrize("examples", ["examples = 5", 'examples = ["a"]', "[[examples]]\nuser = 1\nassistant = 2"])
def test_prompt_examples_of_the_wrong_shape(tiny_registry, tmp_path, examples):
    prompt = tmp_path / "p.toml"
    prompt.write_text(f'system = "s"\nuser = "$title"\n{examples}\n')
    one_line_error(run("run", "--feed", str(HF_FEED), "--prompt", str(prompt)), f"{prompt}: ")


@pytest.mark.parametrize("args, message", [
    (["--server", "http://[::1"], "--server 'http://[::1' is not an http(s) URL"),
    (["--date", "20230922"], "--date '20230922' is not a date"),
    (["--date", "2023-W38"], "--date '2023-W38' is not a date"),
])
def test_malformed_options(tiny_registry, args, message):
    one_line_error(run("run", "--feed", str(HF_FEED), *args), message)


def test_a_batch_larger_than_the_papers_is_lowered_to_them(tiny_registry, tmp_path):
    result = run("run", "--feed", str(HF_FEED), "--limit", "2", "--batch-size", "1000", "--date", "2023-09-22",
                 "--out", str(tmp_path / "d.md"))
    assert result.exit_code == 0, result.stderr  # not "could not create a context for 1000 papers"
    assert "2 papers: " in result.stderr and (tmp_path / "d.md").read_text(encoding="utf-8").count("\n## ") == 2
