"""Choosing the engine for a run: the in-process llama.cpp model, or a model on an inference server."""

import os

from localdigest.errors import ModelError, option
from localdigest.llm.registry import ModelSpec, Registry


def served_spec(registry: Registry, url: str, model: str | None) -> ModelSpec:
    """`--server URL [--model NAME]`: NAME is a `server` entry of the registry (its settings, this URL)
    or else the model's name on that server (default: the one model it serves)."""
    if model in registry.models and "server" in registry.models[model].source:
        entry = registry.models[model]
        return ModelSpec(**{**entry.__dict__, "source": {**entry.source, "server": url}})
    return ModelSpec(name=model or "served", source={"server": url, **({"served_model": model} if model else {})})


def open_model(spec: ModelSpec, *, api_key: str | None = None, threads: int | None = None,
               n_ctx: int | None = None, gpu_layers: int = 0, batch_size: int | None = None, parallel: int = 1,
               timeout: float | None = None, offline: bool = False, progress=None):
    """A LocalModel for GGUF entries, a ServerModel for `server` entries; neither loads anything yet.
    batch_size: papers a local model decodes together (None: the entry's `batch_size`).
    offline: refuse a server that is not on this machine. timeout: a server's answer to one paper,
    retries included (None: the entry's `timeout`, else 600 s). progress(bytes done, bytes in all) reports
    a model being assembled from its chunk packages (the first run after installing them)."""
    source = spec.source
    if "server" not in source:
        if parallel > 1:
            raise ModelError(f"{option('parallel')} needs a model on an inference server",
                             f"add {option('server')} URL (or a `server` entry in models.toml); the local model decodes "
                             f"papers together with {option('batch_size')}")
        from localdigest.llm.local import LocalModel

        return LocalModel(spec, spec.resolve(progress), threads=threads, n_ctx=n_ctx, gpu_layers=gpu_layers,
                          batch_size=batch_size or spec.batch_size)

    from localdigest.llm.server import ServerModel, is_loopback, normalize_url

    url = normalize_url(source["server"])
    if offline and not is_loopback(url):
        raise ModelError(f"{option('offline')}: the server {url} is on the network",
                         f"drop {option('offline')} to use it, or run a server on this machine (127.0.0.1)")
    if api_key is None and "api_key_env" in source:
        api_key = os.environ.get(source["api_key_env"])
        if not api_key:
            raise ModelError(f"model '{spec.name}': environment variable {source['api_key_env']} is not set",
                             f"export {source['api_key_env']}=KEY (the server's API key), or pass {option('api_key')}")
    return ServerModel(spec, url, api_key=api_key, served_model=source.get("served_model"),
                       structured_output=source.get("structured_output", "auto"),
                       timeout=timeout or source.get("timeout", 600.0), retries=source.get("retries", 4), parallel=parallel)


def open_embedding(spec: ModelSpec, *, threads: int | None = None):
    """The sentence-embedding model that ranks papers by interests (llm.embedding); nothing is loaded
    yet. A package's zipped model is converted to a GGUF on first use (~1.5 s, no progress bar)."""
    if "server" in spec.source:
        raise ModelError(f"embedding model '{spec.name}' is on a server; ranking embeds on this machine",
                         'set embedding = "minilm-l6" in your models file')
    from localdigest.llm.embedding import EmbeddingModel

    return EmbeddingModel(spec, spec.resolve(), threads=threads)
