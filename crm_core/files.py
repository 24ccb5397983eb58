"""Durable file writes for attachments and outgoing files.

A file is on disk before the row that names it commits: its bytes are written to a
temporary file with a unique name in the same directory, fsynced, renamed into place,
and the directory (and every directory created for it) is fsynced, so the name
survives a power cut too.  Two writers of the same content-addressed file never share
a temporary file; the second rename replaces the first with the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["fsync_dir", "write_durable"]


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` (a directory) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; returns the parents whose entries changed (to fsync them)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return [m.parent for m in reversed(missing)]


def write_durable(path: Path, content: bytes, *, mode: int = 0o644) -> bool:
    """Write ``content`` to ``path`` and make it durable (file and directory entries).

    When ``path`` exists already (content-addressed: the same bytes), only its directory
    is fsynced again (a concurrent writer may not have done it yet).  Returns True when
    this call wrote the file.  Blocking: run it in a thread.
    """
    parent = path.parent
    changed = _make_dirs(parent)
    for d in changed:
        fsync_dir(d)
    if path.exists():
        fsync_dir(parent)
        return False
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(parent)
    return True
