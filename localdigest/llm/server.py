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
from localdigest.llm.chat_formats import defuse
from localdigest.llm.registry import STRUCTURED_MODES, ModelSpec
from localdigest.net import TooLarge, printable, read_bounded

# How each server family takes schema-constrained output. The llama.cpp family gets our own
# GBNF (it forbids raw control characters, which their JSON-schema converters let through).
GRAMMAR_SERVERS = {"me", "llamacpp"}  # /v1/models owned_by of llama_cpp.server and llama-server
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Fields that change between identical deployments (timestamps, random permission ids).
VOLATILE_MODEL_FIELDS = {"created", "permission", "permissions", "status"}
MAX_ANSWER_BYTES = 8 * 2**20  # one review is a few kB; a bigger answer is a broken or hostile server


class ServerError(ModelError):
    pass


def normalize_url(url: str) -> str:
    """The API base: 'http://host:8080' and 'http://host:8080/' become 'http://host:8080/v1'."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # 'http://[::1' (an unclosed IPv6 bracket) or a port that is not a number
        valid = False
    if not valid:
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
        """timeout: seconds one paper may wait for its answer in all, retries included; a server that
        trickles bytes or hangs is given up on then."""
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
        self.timeout = timeout
        self._client = httpx.Client(headers=headers,
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
            # The server renders its chat template and tokenizes it with special tokens on: a paper
            # that spells "<|im_end|>" must not close its turn there either.
            "messages": [{**m, "content": defuse(m["content"])} for m in messages],
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
            if not isinstance(text, str) or not isinstance(usage, dict):
                raise TypeError
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ServerError(f"server {self.url} sent an answer without choices[0].message.content",
                              "check that it is an OpenAI-compatible chat completions server") from None
        return Completion(text=text, prompt_tokens=_count(usage.get("prompt_tokens")),
                          completion_tokens=_count(usage.get("completion_tokens")),
                          seconds=time.perf_counter() - started)

    def complete_many(self, conversations: list[list[dict]], answer_format: AnswerFormat | str, seed: int,
                      on_token: Callable[[], None] | None = None, starts: list[str] | None = None) -> list[Completion]:
        """One request after another: overlapping requests is what --parallel (threads) is for. `starts`
        are not used: a server's grammar or JSON schema begins at the answer's start, so it cannot
        go on from the middle of one; it writes whole answers."""
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

    def _find_model(self, listing) -> dict:
        data = listing.get("data") if isinstance(listing, dict) else None
        entries = [e for e in (data if isinstance(data, list) else []) if isinstance(e, dict) and isinstance(e.get("id"), str)]
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
        """One request, retried with exponential backoff on connection errors, timeouts and 5xx/429,
        all within `timeout` seconds from now: the wait for one answer has an end."""
        url = self.url + path
        deadline = time.monotonic() + self.timeout
        problem, retry_after, tries = "", None, 0
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self._delay(attempt, retry_after)
                if time.monotonic() + delay >= deadline:
                    break
                time.sleep(delay)
                retry_after = None
            tries += 1
            try:
                status, headers, content = read_bounded(self._client, method, url, json=body, deadline=deadline,
                                                        max_bytes=MAX_ANSWER_BYTES)
            except TooLarge:
                raise ServerError(f"server {self.url} sent more than {MAX_ANSWER_BYTES // 2**20} MB for {method} {path}",
                                  "check that it is an OpenAI-compatible server") from None
            except httpx.TimeoutException:
                problem = f"no complete answer within {self.timeout:g} s ({option('timeout')})"
                break  # the time is spent: a retry would only wait again
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if status < 400:
                try:
                    return json.loads(content)
                except (ValueError, RecursionError):
                    raise ServerError(f"server {self.url} answered {method} {path} with something that is not JSON",
                                      f"check that {option('server')} points at the OpenAI-compatible API") from None
            message = _error_message(content, status)
            if status in (401, 403):
                raise ServerError(f"server {self.url} refused {method} {path} (HTTP {status}: {message})",
                                  f"pass the right key with {option('api_key')} or LOCALDIGEST_API_KEY")
            if "response_format" in message or "grammar" in message:
                raise ServerError(f"server {self.url} does not take this structured output request "
                                  f"(HTTP {status}: {message})",
                                  "set structured_output in the model's models.toml entry to grammar, json_schema "
                                  "or json_object, whichever the server supports")
            if status in (400, 413, 422) and method == "POST":
                raise PromptRejected(f"server {self.url} rejected the prompt (HTTP {status}: {message})",
                                     "serve the model with a longer context, or use a shorter prompt template")
            if status not in RETRYABLE_STATUS:
                raise ServerError(f"server {self.url} rejected {method} {path} (HTTP {status}: {message})",
                                  "check the server's log; the request is not worth retrying")
            problem = f"HTTP {status}: {message}"
            retry_after = headers.get("retry-after")
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


def _error_message(content: bytes, status: int) -> str:
    text = content[:4096].decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
        error = body.get("error") or body.get("detail") or text  # OpenAI style, FastAPI style
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError, RecursionError):
        message = text
    return " ".join(printable(message).split())[:300] or f"HTTP {status}"  # server text is data


def _count(value) -> int:
    """A token count from the server's `usage`, which may be missing or anything."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
