"""The one way localdigest writes a file: atomically, so readers never see half of one."""

import os
import stat
import tempfile
from pathlib import Path

from localdigest.errors import LocaldigestError, option


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old complete file or the new complete file, never a half-written one.

    The new file keeps the old one's permissions (or gets what the umask gives a new file, not
    the temporary file's 0600), and no temporary file is left behind whatever fails."""
    path = _file_path(path)
    directory = path.parent if str(path.parent) else Path(".")
    temp = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        temp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, _mode_for(path))
        os.replace(temp, path)
        temp = None
    except OSError as exc:
        raise LocaldigestError(f"cannot write {path}: {exc.strerror}",
                               f"free some disk space or choose another {option('out')}; the cached reviews are kept") from None
    finally:
        if temp is not None:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass


def _file_path(path: Path) -> Path:
    path = path.expanduser()
    if str(path) in ("", ".") or path.is_dir():
        raise LocaldigestError(f"cannot write {path or '(empty)'}: it is a folder, not a file",
                               f"name a file with {option('out')}, e.g. digest.md")
    return path


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:  # a new file: what open() would give it under the umask
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux says it without changing it (os.umask can only be read by setting it, racing other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


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
