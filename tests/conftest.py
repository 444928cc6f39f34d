import http.server
import json
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from localdigest.testing.tiny_bert import write_tiny_bert_gguf
from localdigest.testing.tiny_model import write_tiny_gguf

FIXTURES = Path(__file__).parent / "fixtures"
BENCH_DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"  # copied in: tests never read the workplace data outside the repo
HF_FEED = FIXTURES / "hf_daily_papers_2023-09-22.json"


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random-weight sentence-embedding GGUF, through the real conversion."""
    return write_tiny_bert_gguf(tmp_path_factory.mktemp("models") / "tiny-bert.gguf")


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own cache and data folders, never the user's."""
    monkeypatch.setenv("LOCALDIGEST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LOCALDIGEST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOCALDIGEST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("LOCALDIGEST_MODELS_FILE", raising=False)
    monkeypatch.delenv("LOCALDIGEST_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_registry(tiny_gguf, tiny_bert, tmp_path, monkeypatch) -> Path:
    """A user models file that adds the tiny model and makes it the default, and the tiny embedding model."""
    path = tmp_path / "models.toml"
    path.write_text(
        f'default = "tiny"\nembedding = "tiny-bert"\n\n[models.tiny-bert]\npath = {json.dumps(str(tiny_bert))}\n'
        f'\n[models.tiny]\npath = {json.dumps(str(tiny_gguf))}\nchat_format = "gguf"\nn_ctx = 16384\n'
        'max_tokens = 4096\nattempts = 1\n',  # tiny last: tests append settings to it
        encoding="utf-8",
    )
    monkeypatch.setenv("LOCALDIGEST_MODELS_FILE", str(path))
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Every way Python opens a connection or resolves a name fails and is recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def interruptible():
    """preexec_fn for a child that a test Ctrl-Cs: a shell that runs the tests in the background
    starts them with SIGINT ignored, children inherit that, and Python then installs no handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class LocalHTTP:
    """A real HTTP server on 127.0.0.1 answering with `handler` (a BaseHTTPRequestHandler class)."""

    def __init__(self, handler):
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True  # a handler that hangs on purpose never holds up the test
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._httpd.shutdown()
            self._httpd.server_close()


@contextmanager
def http_server(handler, monkeypatch=None):
    """A LocalHTTP for the test's duration; with monkeypatch it is also the Hugging Face endpoint,
    with offline mode off (conftest turns it on for every other test)."""
    server = LocalHTTP(handler)
    if monkeypatch is not None:
        import huggingface_hub.constants

        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("HF_ENDPOINT", server.base)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    try:
        yield server
    finally:
        server.stop()
