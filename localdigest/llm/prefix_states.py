"""The shared prompt prefix's KV cells kept on disk between runs.

Every review's prompt begins with the same instructions and worked examples (~1500 tokens of
`default`), and a run evaluates them once (llm.batch); a daily run evaluated them again each day:
~12 s of Qwen2.5-Coder 1.5B's prompt speed on 2 cores, ~6% of the 8-paper digest
(benchmarks/prefix_state.py: the first paper's prompt 17.6 s, 5.3 s read back). llama.cpp
writes a sequence's cells to a file and reads them back into another context
(`llama_state_seq_save_file` / `_load_file`), and the logits after the rest of a prompt are then
bit for bit those of evaluating the whole prompt (measured on the default model, stop 47), so the
answers do not change.

The files live in the data folder beside the models (a private folder: cells read back steer
every answer, so they never come from the review cache, which a lab may share). A file is named
by what decides its cells: the model file, llama.cpp's version and the GPU layers (the key), the
tokens it holds (their count and digest; llama.cpp checks the tokens again on reading), and its
own bytes' digest, checked before llama.cpp reads it. Why: llama.cpp aborts the process on a
truncated file (GGML_ASSERT(nread <= state_size)), and reads altered cells without a word (the
tiny model's next logits were then NaN). A file that does not pass is deleted and the prompt
evaluated (and the file written anew); one that cannot be written is not: only the time is lost.
"""

import ctypes
import hashlib
import os
from pathlib import Path

from localdigest import paths

# Fewer tokens are not worth a file (a prefix a few titles share, not the instructions).
MIN_TOKENS = 256
KEEP = 3  # files per key, the most recently used: a prompt edited now and then leaves no trail


class PrefixStates:
    def __init__(self, folder: Path, key: str, keep: int = KEEP):
        self.folder = folder
        self.key = key
        self.keep = keep

    def load(self, llama_cpp, ctx, seq: int, tokens: list[int]) -> int:
        """Read into sequence `seq` (empty) the longest saved prefix of `tokens` shorter than them;
        how many tokens it holds (0: none, and the sequence is left empty)."""
        best = max(((count, path) for count, path in self._files()
                    if count < len(tokens) and path.name.startswith(self._name(tokens[:count]))), default=None)
        if best is None:
            return 0
        count, path = best
        try:
            whole = path.name == self._name(tokens[:count], _digest(path))
        except OSError:
            return 0
        if not whole:
            _drop(path)  # so this run writes a good one in its place
            return 0
        out, read_count = (llama_cpp.llama_token * count)(), ctypes.c_size_t(0)
        read = llama_cpp.llama_state_seq_load_file(ctx, os.fsencode(path), seq, out, count, ctypes.byref(read_count))
        if not read or read_count.value != count or list(out) != tokens[:count]:
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), seq, -1, -1)
            _drop(path)
            return 0
        try:
            os.utime(path)  # used: kept when older ones are dropped
        except OSError:
            pass
        return count

    def save(self, llama_cpp, ctx, seq: int, tokens: list[int]) -> None:
        """Write sequence `seq`, which holds `tokens`, unless it is too short or already saved."""
        name = self._name(tokens)
        if len(tokens) < MIN_TOKENS or any(path.name.startswith(name) for _count, path in self._files()):
            return
        partial = self.folder / f"{name}.{os.getpid()}.partial"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            held = (llama_cpp.llama_token * len(tokens))(*tokens)
            if llama_cpp.llama_state_seq_save_file(ctx, os.fsencode(partial), seq, held, len(tokens)):
                # whole or not there: a run reading it meanwhile sees no half
                os.replace(partial, self.folder / self._name(tokens, _digest(partial)))
            for _count, old in sorted(self._files(), key=lambda item: item[1].stat().st_mtime)[:-self.keep]:
                old.unlink()
        except OSError:
            pass
        finally:
            _drop(partial)

    def _name(self, tokens: list[int], content: str | None = None) -> str:
        """The file's name for these tokens with `content` (its bytes' digest), or the name's
        beginning without it."""
        digest = hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()[:24]
        return f"{self.key}-{len(tokens)}-{digest}-" + (f"{content}.state" if content else "")

    def _files(self) -> list[tuple[int, Path]]:
        """(token count, path) of this key's files."""
        try:
            paths = list(self.folder.glob(f"{self.key}-*.state"))
        except OSError:
            return []
        found = []
        for path in paths:
            parts = path.name.removesuffix(".state").split("-")
            if len(parts) == 4 and parts[1].isdigit():
                found.append((int(parts[1]), path))
        return found


def _drop(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _digest(path: Path) -> str:
    """The file's bytes' sha256, shortened (~0.1 s for the 44 MB of Qwen 1.5B's prefix)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:24]


def default_folder() -> Path:
    """Where a local model keeps its prefix files: the data folder, beside the models."""
    return paths.data_dir() / "prefix-states"


def _leftovers(folder: Path) -> list[Path]:
    """Every model's prefix files, and the partial ones of a run killed while writing one."""
    try:
        return [path for path in folder.iterdir() if path.suffix in (".state", ".partial") and path.is_file()]
    except OSError:
        return []


def on_disk(folder: Path) -> tuple[int, int]:
    """(files, bytes) of prefix files in `folder`, for `localdigest cache stats`; a file another run
    drops meanwhile counts 0 bytes."""
    found = _leftovers(folder)
    return len(found), sum(_size(path) for path in found)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def remove_all(folder: Path) -> tuple[int, int]:
    """Delete every prefix file in `folder` (each is evaluated and written again when next needed);
    (files, bytes) removed."""
    found = _leftovers(folder)
    size = sum(_size(path) for path in found)
    for path in found:
        _drop(path)
    return len(found), size


def states_key(model_fingerprint: str, llama_cpp_version: str, gpu_layers: int) -> str:
    """What a prefix's cells depend on besides its tokens, as a short name."""
    return hashlib.sha256(f"{model_fingerprint}|{llama_cpp_version}|{gpu_layers}".encode()).hexdigest()[:16]
