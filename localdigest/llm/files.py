"""Managing model files: GGUF metadata, download, checksum, removal, and adding a local file."""

import json
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from localdigest import paths
from localdigest.atomic import replace_file
from localdigest.llm.chat_formats import BUILTIN, FROM_GGUF
from localdigest.llm.chunks import sha256_file
from localdigest.errors import ModelError, option
from localdigest.llm.registry import ModelSpec, parse_entry, check_name, load_registry


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    size_bytes: int
    architecture: str
    name: str
    parameters: int
    quantization: str
    context_length: int | None
    has_chat_template: bool


def gguf_info(path: Path) -> GGUFInfo:
    """Header facts read with the gguf package; the weights are not loaded."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError, KeyError) as exc:
        raise ModelError(f"{path} is not a readable GGUF file ({exc})",
                         "re-download or re-copy it; a truncated file cannot be used") from None

    def field(key: str):
        entry = reader.fields.get(key)
        return entry.contents() if entry is not None else None

    architecture = field("general.architecture") or "unknown"
    file_type = field("general.file_type")
    try:
        quantization = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else "?"
    except ValueError:
        quantization = str(file_type)
    return GGUFInfo(
        path=path,
        size_bytes=path.stat().st_size,
        architecture=architecture,
        name=field("general.name") or path.stem,
        parameters=sum(int(t.n_elements) for t in reader.tensors),
        quantization=quantization,
        context_length=field(f"{architecture}.context_length"),
        has_chat_template=bool(field("tokenizer.chat_template")),
    )


def verify(spec: ModelSpec) -> tuple[Path, str]:
    """(file, its sha256); raises when the registry records a different checksum. For a model
    converted from a package's file, that file is the one checked (and the model written from it)."""
    path = spec.resolve()
    if "convert" in spec.source:
        path = spec.shipped_file()
    actual = sha256_file(path)
    if spec.sha256 and actual != spec.sha256:
        raise ModelError(f"model '{spec.name}': {path} has sha256 {actual}, expected {spec.sha256}",
                         f"the file is corrupt or another version: `localdigest models rm {spec.name}` and pull it again")
    return path, actual


def pull(spec: ModelSpec, progress=None) -> Path:
    """Put the model on disk: download a Hugging Face file (resumable, with progress) or assemble a package's."""
    on_disk = spec.on_disk()
    if on_disk:
        return on_disk
    if spec.kind != "hf_repo":
        return spec.resolve(progress)  # packages assemble on first resolve; paths only say what is missing
    from huggingface_hub import hf_hub_download

    repo, filename = spec.source["hf_repo"], spec.source["file"]
    try:
        path = Path(hf_hub_download(repo_id=repo, filename=filename, endpoint=paths.hub_endpoint()))
    except Exception as exc:  # offline mode, no route, HTTP errors: all mean "could not download"
        raise ModelError(f"model '{spec.name}': could not download {repo}/{filename}: {type(exc).__name__}: {exc}",
                         "check the network (HF_HUB_OFFLINE must be unset); air-gapped: see README, Models") from None
    if spec.sha256:
        verify(spec)
    return path


def remove(spec: ModelSpec) -> tuple[Path | None, bool]:
    """Delete the model's file if localdigest (or the Hugging Face cache) put it there, and a `path`
    entry (as `models add` writes) from the user's models file: (the file deleted or None, whether
    the entry went).
    A file registered where it lies (`models add --no-copy`, a `path` entry) is the user's: kept."""
    path = spec.on_disk()
    models_dir = (paths.data_dir() / "models").resolve()
    deleted = None
    if path is not None and spec.kind == "hf_repo":
        blob = path.resolve()
        path.unlink()
        if blob != path:
            blob.unlink(missing_ok=True)
        deleted = path
    elif path is not None and path.resolve().parent == models_dir:
        path.unlink()
        deleted = path
    # A `path` entry (what `models add` writes) names nothing once its file is gone or disowned;
    # a download or package entry can be pulled again, so it stays.
    entry_removed = "path" in spec.source and _remove_user_entry(spec.name)
    if deleted is None and not entry_removed:
        if path is None:
            raise ModelError(f"model '{spec.name}' is not on disk", "nothing to remove")
        raise ModelError(f"model '{spec.name}': {path} was not put there by localdigest",
                         "delete the file yourself, or uninstall the package that ships it")
    return deleted, entry_removed


def _section_header(name: str) -> re.Pattern:
    quoted = "|".join(re.escape(q) for q in (json.dumps(name), f"'{name}'", name))
    return re.compile(rf"^\s*\[\s*models\s*\.\s*(?:{quoted})\s*\]\s*(?:#.*)?$")


def _remove_user_entry(name: str) -> bool:
    """Cut [models.NAME] (up to the next table) out of the user's models file; False if it is not there."""
    user_file = paths.user_models_file()
    if not user_file.is_file():
        return False
    lines = user_file.read_text(encoding="utf-8").splitlines(keepends=True)
    header = _section_header(name)
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        return False
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    replace_file(user_file, "".join(lines[:start] + lines[end:]).encode("utf-8"))
    return True


def add(source: Path, name: str, chat_format: str | None, copy: bool = True) -> Path:
    """Register a GGUF (e.g. from a USB stick) in the user's models file; copies it by default.
    Everything is checked before anything is written, and a failed copy leaves nothing behind."""
    check_name(name)
    registry = load_registry()
    if name in registry.models:
        raise ModelError(f"a model named '{name}' already exists", f"choose another {option('name')}")
    info = gguf_info(source)
    if chat_format is None:
        if not info.has_chat_template:
            raise ModelError(f"{source} has no chat template",
                             f"pass {option('chat_format')} with one of: {', '.join(BUILTIN)}")
        chat_format = FROM_GGUF
    target = paths.data_dir() / "models" / f"{name}.gguf" if copy else source.resolve()
    if copy and target.exists():
        raise ModelError(f"{target} already exists", f"choose another {option('name')}, or delete that file")
    entry = {
        "description": f"{info.name}, {info.quantization}, added from {source}",
        "path": str(target.resolve()),
        "chat_format": chat_format,
        "quantization": info.quantization,
        "size_bytes": info.size_bytes,
        "sha256": sha256_file(source),
        "n_ctx": min(info.context_length or 4096, 4096),
    }
    user_file = paths.user_models_file()
    section = "\n".join([f"\n[models.{json.dumps(name)}]"] + [f"{key} = {json.dumps(value)}" for key, value in entry.items()])
    old = user_file.read_text(encoding="utf-8") if user_file.is_file() else ""
    new = old + ("" if not old or old.endswith("\n") else "\n") + section + "\n"
    parse_entry(user_file, name, tomllib.loads(new)["models"][name])  # the entry as the next run will read it
    if copy:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            shutil.copyfile(source, partial)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    replace_file(user_file, new.encode("utf-8"))
    return target
