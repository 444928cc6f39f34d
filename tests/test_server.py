"""The server backend against a real llama_cpp.server on 127.0.0.1 serving the tiny model."""

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from localdigest.llm.choose import open_model
from localdigest.review.cache import ReviewCache
from localdigest.cli import main
from localdigest.review.pipeline import Reviewer
from localdigest.errors import ModelError
from localdigest.llm.base import AnswerFormat
from localdigest.review.schema import REVIEW_SCHEMA
from localdigest.sources.feeds import load_feeds
from localdigest.llm.registry import ModelSpec, load_registry
from localdigest.review.prompts import load_prompt
from localdigest.llm.server import ServerError, ServerModel, normalize_url
from conftest import HF_FEED
from localdigest.testing.local_server import LocalServer
from localdigest.testing.tiny_model import write_tiny_gguf

pytestmark = pytest.mark.server
DATE = ["--date", "2023-09-22"]
# The tiny model writes random text until the grammar lets a string end: give it room.
ROOMY = {"max_tokens": 4096}


@pytest.fixture(scope="module")
def server(tiny_gguf, tmp_path_factory):
    with LocalServer(tiny_gguf, log=tmp_path_factory.mktemp("server") / "server.log") as running:
        yield running


def write_registry(path, monkeypatch, url, **settings):
    """A user models file whose default is a `server` entry named 'lab'."""
    entry = {"server": url, **ROOMY, **settings}
    lines = ['default = "lab"', "", "[models.lab]"] + [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("LOCALDIGEST_MODELS_FILE", str(path))
    return path


def served(url, **options) -> ServerModel:
    return ServerModel(ModelSpec("lab", {"server": url}, generation=ROOMY), url, **options)


def test_digest_through_a_server_keeps_feed_order_and_caches(server, tmp_path, monkeypatch):
    write_registry(tmp_path / "models.toml", monkeypatch, server.url)
    out = tmp_path / "digest.md"
    args = ["run", "--feed", str(HF_FEED), *DATE, "--limit", "4", "--parallel", "3", "--out", str(out)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    text = out.read_text(encoding="utf-8")
    assert f"使用推理服务器 `{server.url}/v1` 上的模型 {server.model}" in text
    titles = [p.title for p in load_feeds([str(HF_FEED)]).papers[:4]]
    positions = [text.index(f"## {title}") for title in titles]
    assert positions == sorted(positions)  # feed order, whichever request finished first
    assert text.count("### 1. 介绍本文的主要工作") == 4 and "生成失败" not in text  # flags on random text are fine
    assert "4 generated, 0 from cache" in first.output

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 generated, 4 from cache" in again.output
    assert out.read_text(encoding="utf-8") == text


def test_server_flag_names_the_served_model_and_lists_the_choices(server, tmp_path, monkeypatch):
    write_registry(tmp_path / "models.toml", monkeypatch, "http://127.0.0.1:9/v1")  # overridden by --server
    runner = CliRunner()
    ok = runner.invoke(main, ["run", "--feed", str(HF_FEED), *DATE, "--limit", "1", "--server", server.url,
                              "--model", "lab", "--format", "json"])
    assert ok.exit_code == 0, ok.output
    digest = json.loads(ok.stdout)
    assert digest["server"] == f"{server.url}/v1" and digest["papers"][0]["review"]["keywords"]

    wrong = runner.invoke(main, ["run", "--feed", str(HF_FEED), *DATE, "--server", server.url, "--model", "qwen"])
    assert wrong.exit_code == 1
    assert f"has no model 'qwen' (it serves: {server.model})" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1


def test_cache_is_keyed_by_the_served_model(server, tiny_gguf, tmp_path):
    paper = load_feeds([str(HF_FEED)]).papers[0]
    prompt = load_prompt()
    same_model = Reviewer(served(server.url), prompt, None).key(paper)
    named = Reviewer(served(server.url, served_model=server.model), prompt, None).key(paper)
    assert named == same_model  # naming the one model it serves changes nothing
    assert Reviewer(served(server.url), load_prompt("concise"), None).key(paper) != same_model
    other_gguf = write_tiny_gguf(tmp_path / "other.gguf", seed=1)
    with LocalServer(other_gguf) as other:
        assert Reviewer(served(other.url), prompt, None).key(paper) != same_model
    with LocalServer(tiny_gguf) as restarted:  # another port, same model: the cached reviews still apply
        assert Reviewer(served(restarted.url), prompt, None).key(paper) == same_model


def test_server_stopped_mid_run_keeps_finished_reviews(tiny_gguf, tmp_path, monkeypatch):
    papers = load_feeds([str(HF_FEED)]).papers[:5]
    cache = ReviewCache(tmp_path / "cache")
    server = LocalServer(tiny_gguf).start()
    reviewer = Reviewer(served(server.url, retries=2, backoff=0.1, parallel=2), load_prompt(), cache)
    finished = []
    with pytest.raises(ServerError, match="no answer to POST /chat/completions after 3 tries") as failure:
        for index, result in reviewer.review_many(papers, parallel=2):
            finished.append(index)
            server.stop()  # after the first review: the one in flight may still finish
    assert "finished reviews are cached, rerun to go on" in failure.value.fix
    done = len(cache)
    assert finished and len(finished) <= done < len(papers)

    out = tmp_path / "digest.md"
    out.write_text("yesterday's digest", encoding="utf-8")
    write_registry(tmp_path / "models.toml", monkeypatch, server.url, retries=0)
    args = ["run", "--feed", str(HF_FEED), *DATE, "--limit", "5", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(out)]
    down = CliRunner().invoke(main, args)
    assert down.exit_code == 1 and f"server {server.url}/v1 gave no answer to GET /models after 1 try" in down.output
    assert out.read_text(encoding="utf-8") == "yesterday's digest"

    with LocalServer(tiny_gguf) as back:  # the same model on a new port: the finished reviews are reused
        write_registry(tmp_path / "models.toml", monkeypatch, back.url)
        resumed = CliRunner().invoke(main, args + ["--parallel", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert f"5 papers: {5 - done} generated, {done} from cache, 0 failed" in resumed.output


def test_requests_are_retried_until_a_starting_server_answers(tiny_gguf):
    server = LocalServer(tiny_gguf)
    model = served(server.url, retries=8, backoff=0.25)
    starter = threading.Thread(target=server.start)
    starter.start()  # the first requests are refused while it loads
    try:
        assert model.model_id() == str(tiny_gguf)
        review = Reviewer(model, load_prompt(), None).review(load_feeds([str(HF_FEED)]).papers[0])
        assert review.review is not None
    finally:
        starter.join()
        server.stop()


def test_api_key_from_the_entry_environment_variable(tiny_gguf, tmp_path, monkeypatch):
    with LocalServer(tiny_gguf, api_key="s3cret") as server:
        write_registry(tmp_path / "models.toml", monkeypatch, server.url, api_key_env="LAB_KEY")
        spec = load_registry().get("lab")
        with pytest.raises(ModelError, match="LAB_KEY is not set"):
            open_model(spec)
        monkeypatch.setenv("LAB_KEY", "wrong")
        with pytest.raises(ServerError, match="refused GET /models .HTTP 401: Invalid API key") as refused:
            open_model(spec).model_id()
        assert "--api-key" in refused.value.one_line(spell=lambda name: "--" + name.replace("_", "-"))
        monkeypatch.setenv("LAB_KEY", "s3cret")
        assert open_model(spec).model_id() == str(tiny_gguf)
        assert served(server.url, api_key="s3cret").model_id() == str(tiny_gguf)  # what --api-key passes


def test_a_schema_mode_the_server_lacks_is_one_clear_error(server, tmp_path, monkeypatch):
    write_registry(tmp_path / "models.toml", monkeypatch, server.url, structured_output="json_schema")
    result = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), *DATE, "--limit", "1"])
    assert result.exit_code == 1
    assert "does not take this structured output request" in result.output and "structured_output" in result.output


def test_json_object_mode_is_sent_as_llama_cpp_python_expects(server):
    # Accepted, but llama-cpp-python's own schema grammar lets control characters into strings:
    # that is why `auto` sends the llama.cpp family our GBNF instead.
    model = served(server.url, structured_output="json_object")
    prompt = load_prompt().messages(load_feeds([str(HF_FEED)]).papers[1])
    # llama-cpp-python's own converter is what turns the schema into a grammar here, and it cannot take
    # the prose patterns (the server dies on them): the shape alone shows how the request is sent.
    shape = json.loads(json.dumps(REVIEW_SCHEMA).replace('"pattern"', '"x-pattern"'))
    completion = model.complete(prompt, AnswerFormat("root ::= unused", shape), seed=42)
    assert completion.text.startswith("{") and completion.completion_tokens > 0


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1"),
    ("https://gpu.lab.example/openai/v1/", "https://gpu.lab.example/openai/v1"),
])
def test_server_urls_are_normalized(url, expected):
    assert normalize_url(url) == expected


def test_offline_refuses_a_server_on_the_network_before_connecting(tiny_registry, no_network):
    result = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), *DATE, "--offline",
                                       "--server", "http://gpu.lab.example:8000"])
    assert result.exit_code == 1 and "--offline: the server http://gpu.lab.example:8000/v1 is on the network" \
        in result.output
    assert no_network == []


@pytest.mark.parametrize("args, message", [
    (["--parallel", "2"], "--parallel needs a model on an inference server"),
    (["--server", "gpu-box:8000"], "--server 'gpu-box:8000' is not an http(s) URL"),
])
def test_server_option_errors(tiny_registry, args, message):
    result = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), *DATE, *args])
    assert result.exit_code == 1 and message in result.output


def test_a_prompt_too_long_for_the_server_fails_that_paper_only(tiny_gguf, tmp_path, monkeypatch):
    out = tmp_path / "digest.md"
    with LocalServer(tiny_gguf, n_ctx=1024) as small:  # every prompt is longer than that
        write_registry(tmp_path / "models.toml", monkeypatch, small.url)
        result = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), *DATE, "--limit", "2", "--out", str(out)])
    assert result.exit_code == 1 and "no paper could be reviewed" in result.output
    assert result.output.count("rejected the prompt (HTTP 400") == 2
    assert "the existing digest was left as it was" in result.output and not out.exists()  # no digest of ⚠️ lines


def test_throughput_benchmark_runs_against_a_local_server():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "server_throughput.py"
    result = subprocess.run([sys.executable, str(script), "--papers", "2", "--parallel", "1", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "2 papers, 1 repeat(s), server http://127.0.0.1:" in result.stdout
    for level in (1, 2):
        assert re.search(rf"^\s+{level}\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+100%$", result.stdout, re.M), result.stdout
