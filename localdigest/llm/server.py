"""A model served by an OpenAI-compatible inference server: llama.cpp's llama-server,
vLLM, Ollama or llama-cpp-python's own `llama_cpp.server`.

It answers the same calls as the in-process LocalModel, so prompts, validation, the
cache and rendering stay the same. Requests are thread-safe: `--parallel N` shares one
ServerModel (and its connection pool) among N worker threads.
"""

import hashlib
import ipaddress
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable

import httpx

from localdigest.errors import ModelError, PromptRejected, option
from localdigest.llm.base import AnswerFormat, Completion, GenerationSettings, as_format
from localdigest.llm.registry import STRUCTURED_MODES, ModelSpec

# How each server family takes schema-constrained output. The llama.cpp family gets our own
# GBNF (it forbids raw control characters, which their JSON-schema converters let through).
GRAMMAR_SERVERS = {"me", "llamacpp"}  # /v1/models owned_by of llama_cpp.server and llama-server
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Fields that change between identical deployments (timestamps, random permission ids).
VOLATILE_MODEL_FIELDS = {"created", "permission", "permissions", "status"}


class ServerError(ModelError):
    pass


def normalize_url(url: str) -> str:
    """The API base: 'http://host:8080' and 'http://host:8080/' become 'http://host:8080/v1'."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"{option('server')} '{url}' is not an http(s) URL", "write it as http://HOST:PORT (e.g. "
                          "http://127.0.0.1:8080)")
    path = parts.path.rstrip("/") or "/v1"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerModel:
    """One served model. Settings come from a models.toml entry (`server = URL`) or `--server`."""

    def __init__(self, spec: ModelSpec, url: str, api_key: str | None = None, served_model: str | None = None,
                 structured_output: str = "auto", timeout: float = 600.0, retries: int = 4, backoff: float = 1.0,
                 parallel: int = 1):
        if structured_output not in STRUCTURED_MODES:
            raise ModelError(f"model '{spec.name}': unknown structured_output '{structured_output}'",
                             f"use one of: {', '.join(STRUCTURED_MODES)}")
        self.spec = spec
        self.url = normalize_url(url)
        self.served_model = served_model
        self.structured_output = structured_output
        self.retries = retries
        self.backoff = backoff
        self.generation = GenerationSettings.with_overrides(spec.generation)
        self.n_ctx = None  # the server owns the context; a prompt it cannot fit fails that paper only
        self.batch_size = 1  # requests are one paper each; --parallel overlaps them
        self.loaded = True  # nothing to load here; kept for the LocalModel interface
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=10.0),
                                    limits=httpx.Limits(max_connections=max(parallel, 1) + 2))
        self._lock = threading.Lock()
        self._model_entry: dict | None = None

    def describe(self) -> str:
        return self.model_id()

    def model_id(self) -> str:
        return self._entry()["id"]

    def identity(self) -> str:
        """The served model as the server describes it: its id plus whatever metadata it reports
        (llama-server: parameter count, size, vocabulary; vLLM: root and max_model_len)."""
        stable = {k: v for k, v in self._entry().items() if k not in VOLATILE_MODEL_FIELDS}
        return "server:" + hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()

    def complete(self, messages: list[dict], answer_format: AnswerFormat | str | None, seed: int,
                 on_token: Callable[[], None] | None = None) -> Completion:
        answer_format = as_format(answer_format)
        params = self.generation
        body = {
            "model": self.model_id(),
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "seed": seed,
            # llama.cpp's name and vLLM's name; servers ignore the one they do not know.
            "repeat_penalty": params.repeat_penalty,
            "repetition_penalty": params.repeat_penalty,
        }
        if answer_format is not None:
            mode = self._structured_mode()
            if mode != "grammar" and answer_format.json_schema is None:
                raise ModelError(f"server {self.url} takes JSON schema, and this answer format has only a grammar",
                                 "set structured_output = \"grammar\" for a llama.cpp server")
            body.update({"grammar": answer_format.gbnf} if mode == "grammar"
                        else _response_format(mode, answer_format.json_schema))
        started = time.perf_counter()
        answer = self._request("POST", "/chat/completions", body)
        try:
            text = answer["choices"][0]["message"]["content"] or ""
            usage = answer.get("usage") or {}
        except (KeyError, IndexError, TypeError):
            raise ServerError(f"server {self.url} sent an answer without choices[0].message.content",
                              "check that it is an OpenAI-compatible chat completions server") from None
        return Completion(text=text, prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0),
                          seconds=time.perf_counter() - started)

    def complete_many(self, conversations: list[list[dict]], answer_format: AnswerFormat | str, seed: int,
                      on_token: Callable[[], None] | None = None) -> list[Completion]:
        """One request after another: overlapping requests is what --parallel (threads) is for."""
        return [self.complete(messages, answer_format, seed, on_token) for messages in conversations]

    def close(self) -> None:
        self._client.close()

    def _structured_mode(self) -> str:
        if self.structured_output != "auto":
            return self.structured_output
        return "grammar" if self._entry().get("owned_by") in GRAMMAR_SERVERS else "json_schema"

    def _entry(self) -> dict:
        with self._lock:
            if self._model_entry is None:
                self._model_entry = self._find_model(self._request("GET", "/models", None))
            return self._model_entry

    def _find_model(self, listing: dict) -> dict:
        entries = [e for e in (listing.get("data") or []) if isinstance(e, dict) and "id" in e]
        ids = [e["id"] for e in entries]
        if self.served_model is None:
            if len(entries) == 1:
                return entries[0]
            raise ServerError(f"server {self.url} serves {len(entries)} models ({', '.join(ids) or 'none'})",
                              f"choose one with {option('model')} NAME")
        for entry in entries:
            if entry["id"] == self.served_model:
                return entry
        raise ServerError(f"server {self.url} has no model '{self.served_model}'",
                          f"it serves: {', '.join(ids) or 'nothing'}")

    def _request(self, method: str, path: str, body: dict | None) -> dict:
        """One request, retried with exponential backoff on connection errors, timeouts and 5xx/429."""
        url = self.url + path
        problem, retry_after = "", None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, retry_after))
                retry_after = None
            try:
                response = self._client.request(method, url, json=body)
            except httpx.TimeoutException:
                problem = f"no answer within {self._client.timeout.read:.0f} s"
                continue
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.status_code < 400:
                try:
                    return response.json()
                except ValueError:
                    raise ServerError(f"server {self.url} answered {method} {path} with something that is not JSON",
                                      f"check that {option('server')} points at the OpenAI-compatible API") from None
            message = _error_message(response)
            if response.status_code in (401, 403):
                raise ServerError(f"server {self.url} refused {method} {path} (HTTP {response.status_code}: {message})",
                                  f"pass the right key with {option('api_key')} or LOCALDIGEST_API_KEY")
            if "response_format" in message or "grammar" in message:
                raise ServerError(f"server {self.url} does not take this structured output request "
                                  f"(HTTP {response.status_code}: {message})",
                                  "set structured_output in the model's models.toml entry to grammar, json_schema "
                                  "or json_object, whichever the server supports")
            if response.status_code in (400, 413, 422) and method == "POST":
                raise PromptRejected(f"server {self.url} rejected the prompt (HTTP {response.status_code}: {message})",
                                     "serve the model with a longer context, or use a shorter prompt template")
            if response.status_code not in RETRYABLE_STATUS:
                raise ServerError(f"server {self.url} rejected {method} {path} (HTTP {response.status_code}: {message})",
                                  "check the server's log; the request is not worth retrying")
            problem = f"HTTP {response.status_code}: {message}"
            retry_after = response.headers.get("retry-after")
        tries = self.retries + 1
        raise ServerError(f"server {self.url} gave no answer to {method} {path} after {tries} "
                          f"{'try' if tries == 1 else 'tries'}: {problem}",
                          "check that the server is running; finished reviews are cached, rerun to go on")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.isdigit():  # a busy server (429/503) that says when to come back
            return min(float(retry_after), 60.0)
        # Jitter keeps N parallel workers from hammering a recovering server in lockstep.
        return self.backoff * 2 ** (attempt - 1) * random.uniform(0.75, 1.25)


def _response_format(mode: str, schema: dict) -> dict:
    if mode == "json_object":  # llama-cpp-python's extension of the OpenAI field
        return {"response_format": {"type": "json_object", "schema": schema}}
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "review", "strict": True, "schema": schema}}}


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error") or body.get("detail") or response.text  # OpenAI style, FastAPI style
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = response.text
    return " ".join(message.split())[:300] or response.reason_phrase
