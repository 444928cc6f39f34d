import hashlib
import http.server
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import http_server
from localdigest.cli import main
from localdigest.testing.tiny_model import write_tiny_gguf


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_models_list_shows_registry_and_disk_state(tiny_registry):
    result = run("models", "list")
    assert result.exit_code == 0
    for name in ("gemma-3-270m", "qwen2.5-1.5b", "qwen3-4b-instruct", "gemma-3-1b", "gemma-3-4b", "llama-3.2-3b",
                 "tiny (default)"):
        assert name in result.stdout


def test_models_info_reads_the_gguf_header(tiny_gguf):
    result = run("models", "info", str(tiny_gguf))
    assert result.exit_code == 0
    info = dict(line.split(None, 1) for line in result.stdout.replace("chat template", "chat_template")
                .replace("context length", "context_length").replace("registry n_ctx", "registry_n_ctx").splitlines())
    assert info["architecture"] == "llama" and info["chat_template"] == "yes" and info["context_length"] == "32768"
    vocab, embedding, ffn, layers = 259, 64, 128, 2
    expected = 2 * vocab * embedding + embedding + layers * (2 * embedding + 4 * embedding**2 + 3 * embedding * ffn)
    assert info["parameters"] == f"{expected / 1e6:.0f}M"


def test_models_info_on_a_corrupt_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 20)
    result = run("models", "info", str(bad))
    assert result.exit_code == 1 and "is not a readable GGUF file" in result.stderr


def test_add_from_a_usb_stick_then_run_verify_and_rm(tmp_path, tiny_gguf):
    stick = tmp_path / "usb" / "model.gguf"
    stick.parent.mkdir()
    stick.write_bytes(tiny_gguf.read_bytes())
    added = run("models", "add", str(stick), "--name", "usb-model")
    assert added.exit_code == 0, added.stderr
    copied = tmp_path / "data" / "models" / "usb-model.gguf"
    assert copied.read_bytes() == stick.read_bytes()
    stick.unlink()  # the stick is gone; the copy stays
    assert "usb-model" in run("models", "list").stdout
    verified = run("models", "verify", "usb-model")
    assert verified.exit_code == 0 and verified.stdout.splitlines()[1] == "OK"
    assert hashlib.sha256(copied.read_bytes()).hexdigest() in verified.stdout
    assert run("models", "add", str(copied), "--name", "usb-model").exit_code == 1  # name taken

    copied.write_bytes(copied.read_bytes()[:-1] + b"\x01")
    broken = run("models", "verify", "usb-model")
    assert broken.exit_code == 1 and "expected" in broken.stderr and "models rm usb-model" in broken.stderr
    assert run("models", "rm", "usb-model").exit_code == 0 and not copied.exists()


@pytest.mark.parametrize("name", ["../../victim/important", "a/b", "my model", "..", ".hidden", ""])
def test_add_refuses_names_that_are_not_names(tmp_path, tiny_gguf, name):
    victim = tmp_path / "victim" / "important.gguf"
    victim.parent.mkdir()
    victim.write_text("precious")
    refused = run("models", "add", str(tiny_gguf), "--name", name)
    assert refused.exit_code == 1 and "is not a valid model name" in refused.stderr
    assert victim.read_text() == "precious"
    assert not (tmp_path / "config" / "models.toml").exists() and not (tmp_path / "data").exists()


def test_rm_keeps_a_file_added_in_place_and_always_drops_the_entry(tmp_path, tiny_gguf):
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(tiny_gguf.read_bytes())
    assert run("models", "add", str(mine), "--name", "mine", "--no-copy").exit_code == 0
    assert run("models", "add", str(tiny_gguf), "--name", "copied").exit_code == 0
    removed = run("models", "rm", "mine")
    assert removed.exit_code == 0 and "Removed the entry 'mine'" in removed.stderr
    assert mine.read_bytes() == tiny_gguf.read_bytes()  # the user's own file is never deleted
    models = run("models", "list").stdout
    assert "mine" not in models and "copied" in models
    copy = tmp_path / "data" / "models" / "copied.gguf"
    assert copy.exists() and run("models", "rm", "copied").exit_code == 0
    assert not copy.exists() and "copied" not in run("models", "list").stdout
    assert run("models", "rm", "copied").exit_code == 1  # gone: an unknown model now


def test_a_failed_add_writes_nothing(tmp_path, tiny_gguf):
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(tiny_gguf.read_bytes()[:1000])
    refused = run("models", "add", str(bad), "--name", "cut")
    assert refused.exit_code == 1 and "not a readable GGUF" in refused.stderr
    assert not (tmp_path / "config" / "models.toml").exists()
    assert not any(path.is_file() for path in (tmp_path / "data").glob("**/*"))


def test_add_needs_a_chat_format_when_the_gguf_has_none(tmp_path):
    bare = write_tiny_gguf(tmp_path / "bare.gguf", chat_template=None)
    refused = run("models", "add", str(bare), "--name", "bare", "--no-copy")
    assert refused.exit_code == 1 and "has no chat template" in refused.stderr and "--chat-format" in refused.stderr
    accepted = run("models", "add", str(bare), "--name", "bare", "--no-copy", "--chat-format", "chatml")
    assert accepted.exit_code == 0 and bare.exists()
    assert 'chat_format = "chatml"' in (tmp_path / "config" / "models.toml").read_text()
    removed = run("models", "rm", "bare")
    assert removed.exit_code == 0 and "Removed the entry 'bare'" in removed.stderr
    assert bare.exists() and "Removed " + str(bare) not in removed.stderr  # a file localdigest did not create stays


class FakeHub(http.server.BaseHTTPRequestHandler):
    """Answers huggingface-hub's resolve requests for one file, like the Hub does."""

    body = b""
    commit = "c" * 40

    def _headers(self):
        etag = hashlib.sha256(self.body).hexdigest()
        self.send_response(200)
        self.send_header("X-Repo-Commit", self.commit)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()

    def do_HEAD(self):
        if self.path.startswith("/org/tiny-GGUF/resolve/main/tiny.gguf"):
            self._headers()
        else:
            self.send_error(404)

    def do_GET(self):
        if self.path.startswith("/org/tiny-GGUF/resolve/"):
            self._headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(tmp_path, tiny_gguf, monkeypatch):
    import huggingface_hub.constants

    FakeHub.body = tiny_gguf.read_bytes()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    models = tmp_path / "config" / "models.toml"
    models.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(FakeHub.body).hexdigest()
    models.write_text(f'[models.hubtiny]\nhf_repo = "org/tiny-GGUF"\nfile = "tiny.gguf"\nsha256 = "{sha}"\n'
                      '[models.missing]\nhf_repo = "org/missing-GGUF"\nfile = "x.gguf"\n')
    with http_server(FakeHub, monkeypatch):
        yield tmp_path / "hub"


def on_disk(name: str) -> str:
    """The "on disk" cell of a model's row in `models list`."""
    row = next(line for line in run("models", "list").stdout.splitlines() if f"│ {name} " in line)
    return row.split("│")[5].strip()


def test_pull_downloads_into_the_hub_cache_and_runs_offline_after(hub, monkeypatch):
    assert on_disk("hubtiny") == "no"
    pulled = run("models", "pull", "hubtiny")
    assert pulled.exit_code == 0, pulled.stderr
    path = pulled.stdout.strip()
    assert path.startswith(str(hub / "models--org--tiny-GGUF" / "snapshots"))
    assert Path(path).read_bytes() == FakeHub.body and on_disk("hubtiny") == "yes"
    assert run("models", "verify", "hubtiny").stdout.splitlines()[1] == "OK"
    assert run("models", "pull", "hubtiny").stdout.strip() == path  # already there: nothing fetched

    failed = run("models", "pull", "missing")
    assert failed.exit_code == 1 and "could not download org/missing-GGUF/x.gguf" in failed.stderr
    assert run("models", "rm", "hubtiny").exit_code == 0
    assert not Path(path).exists() and on_disk("hubtiny") == "no"  # a shipped/hand-written entry stays


def test_gpu_layers_on_a_cpu_build_is_a_clear_error(tiny_registry):
    from conftest import HF_FEED

    result = run("run", "--feed", str(HF_FEED), "--limit", "1", "--gpu-layers", "-1")
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        assert result.exit_code == 0
    else:
        assert result.exit_code == 1 and "has no GPU support" in result.stderr


def test_too_small_context_trims_the_abstract_with_a_warning(tiny_registry):
    from conftest import HF_FEED

    result = run("run", "--feed", str(HF_FEED), "--limit", "1", "--ctx", "7400", "--no-cache")
    assert result.exit_code == 0, result.stderr
    assert "abstract trimmed to" in result.stderr and "raise --ctx" in result.stderr
