"""Atomic file writes shared by every package that writes results: nothing is ever left half-written.

Each file is written under a temporary name in its destination directory (`.NAME.XXXX.tmp`), flushed
to disk, and renamed into place with os.replace (atomic on POSIX). `staged_files` does this for a set
of files that belong together: all are written first and renamed only if every write succeeded.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Writer = Callable[[str], object]  # writes the file at the given (temporary) path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def staged_files(directory: str | Path) -> Iterator[Callable[[str, Writer], Path]]:
    """Yield `stage(name, write)`; on a clean exit move every staged file to `directory/name`,
    on an error delete them all, so the directory keeps its previous files (or none)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []

    def stage(name: str, write: Writer) -> Path:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        staged.append((tmp, directory / name))
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        return directory / name

    try:
        yield stage
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    for tmp, dest in staged:
        os.replace(tmp, dest)


def atomic_write(path: str | Path, write: Writer) -> Path:
    """Write one file atomically: `write(tmp_path)` fills a temporary file that then replaces `path`."""
    path = Path(path)
    with staged_files(path.parent) as stage:
        stage(path.name, write)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def unwritable_dir(path: str | Path) -> str | None:
    """Why files cannot be written into directory `path` (created if need be), or None if they can: it
    is a file, lies under a file, or its nearest existing ancestor is not writable. Checked before a
    long computation so that a bad output path fails at once, with nothing written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} exists and is not a directory"
    probe = path
    while not probe.exists():  # the nearest existing ancestor ('.' or '/' at the latest)
        probe = probe.parent
    if not probe.is_dir():
        return f"{path} lies under {probe}, which is a file, not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{path}: {probe} is not writable"
    return None
