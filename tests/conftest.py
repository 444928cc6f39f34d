import json
import signal
import socket
from pathlib import Path

import pytest

from localdigest.testing.tiny_model import write_tiny_gguf

FIXTURES = Path(__file__).parent / "fixtures"
BENCH_DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"  # copied in: tests never read ../shared
HF_FEED = FIXTURES / "hf_daily_papers_2023-09-22.json"


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny.gguf")


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
def tiny_registry(tiny_gguf, tmp_path, monkeypatch) -> Path:
    """A user models file that adds the tiny model and makes it the default."""
    path = tmp_path / "models.toml"
    path.write_text(
        'default = "tiny"\n\n[models.tiny]\n'
        f'path = {json.dumps(str(tiny_gguf))}\nchat_format = "gguf"\nn_ctx = 16384\nmax_tokens = 4096\nattempts = 1\n',
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
