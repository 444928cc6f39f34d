"""llama-cpp-python's OpenAI-compatible server (the `server` extra) on 127.0.0.1, for tests and
benchmarks. It never listens on or talks to any other address."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# The server loads the GGUF itself, so it needs the same AMX guard as localdigest's engine.
SERVER_MAIN = """
import runpy, llama_cpp
from localdigest.llm.local import safe_buffer_types
with safe_buffer_types(llama_cpp):
    runpy.run_module("llama_cpp.server", run_name="__main__")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalServer:
    def __init__(self, model_path: Path, n_ctx: int = 16384, threads: int = 2, api_key: str | None = None,
                 log: Path | None = None):
        self.model_path = model_path
        self.model = str(model_path)  # the id llama_cpp.server gives the model in /v1/models
        self.api_key = api_key
        self.n_ctx = n_ctx
        self.threads = threads
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> "LocalServer":
        args = [sys.executable, "-c", SERVER_MAIN, "--model", self.model, "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
                "--n_threads_batch", str(self.threads)] + (["--api_key", self.api_key] if self.api_key else [])
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode} (log: {self.log})")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code in (200, 401):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
