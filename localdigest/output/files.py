"""The one way localdigest writes a file: atomically, so readers never see half of one."""

import os
import tempfile
from pathlib import Path

from localdigest.errors import LocaldigestError, option


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old complete file or the new complete file, never a half-written one."""
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=directory, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False) as handle:
            temp = Path(handle.name)
            try:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            except BaseException:
                handle.close()
                temp.unlink(missing_ok=True)
                raise
        os.replace(temp, path)
    except OSError as exc:
        raise LocaldigestError(f"cannot write {path}: {exc.strerror}",
                               f"free some disk space or choose another {option('out')}; the cached reviews are kept") from None


def check_writable(path: Path) -> None:
    """Fail now, before any model work, if `path` could not be written later."""
    path = path.expanduser()
    if str(path) in ("", ".") or path.is_dir():
        raise LocaldigestError(f"cannot write {path or '(empty)'}: it is a folder, not a file",
                               f"name a file with {option('out')}, e.g. digest.md")
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # the folders write_atomic would create start here
    try:  # a real probe: permission bits say nothing to root, or on a read-only mount
        with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise LocaldigestError(f"cannot write {path}: {exc.strerror} ({directory})",
                               f"choose another {option('out')}") from None
