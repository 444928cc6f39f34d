"""Writing the digest: checked before any review, then replaced atomically (localdigest.atomic)."""

import tempfile
from pathlib import Path

from localdigest.atomic import replace_file
from localdigest.errors import LocaldigestError, option


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old complete file or the new complete file, never a half-written one
    (localdigest.atomic: permissions kept, no temporary file left behind)."""
    path = _file_path(path)
    try:
        replace_file(path, text.encode("utf-8"))
    except OSError as exc:
        raise LocaldigestError(f"cannot write {path}: {exc.strerror}",
                               f"free some disk space or choose another {option('out')}; the cached reviews are kept") from None


def _file_path(path: Path) -> Path:
    path = path.expanduser()
    if str(path) in ("", ".") or path.is_dir():
        raise LocaldigestError(f"cannot write {path or '(empty)'}: it is a folder, not a file",
                               f"name a file with {option('out')}, e.g. digest.md")
    return path


def check_writable(path: Path) -> None:
    """Fail now, before any model work, if `path` could not be written later."""
    path = _file_path(path)
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # the folders write_atomic would create start here
    try:  # a real probe: permission bits say nothing to root, or on a read-only mount
        with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise LocaldigestError(f"cannot write {path}: {exc.strerror} ({directory})",
                               f"choose another {option('out')}") from None
