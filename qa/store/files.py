"""The index folder: its file names, which files are qa's, and clearing out leftovers."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from qa.errors import QAError

log = logging.getLogger(__name__)

DB_NAME = "index.sqlite"
LOCK_NAME = "write.lock"

_FAISS_FILE = re.compile(r"^vectors\.(\d+)\.faiss(\.tmp)?$")
# Files a writer may leave behind; a folder holding only these counts as empty for create().
_OWN_FILE = re.compile(
    r"^(index\.sqlite(\.tmp)?(-wal|-shm|-journal)?|write\.lock|vectors\.\d+\.faiss(\.tmp)?)$"
)


def _checkpoint(point: str) -> None:
    """Call the crash-test hook at a named point of a write; the crash-safety tests SIGKILL the process there."""
    # The hook lives on the package, so that tests setting `qa.store._crash_hook` reach this code.
    hook = getattr(sys.modules["qa.store"], "_crash_hook", None)
    if hook is not None:
        hook(point)


def _rebuild_hint(index_dir: Path) -> str:
    return (f"rebuild it from your documents with `qa index --rebuild --index-dir {index_dir} PATH...` "
            f"(the files and folders it should hold) or delete {index_dir}/")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _prepare_dir(d: Path, embedder: str, dim: int) -> Path:
    """Check a folder can hold a new index (empty, ours, or an index) and make it; returns it."""
    if not embedder:
        raise ValueError("embedder name must not be empty")
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    if d.exists() and not d.is_dir():
        raise QAError(f"{d} is a file, not an index folder")
    if d.is_dir() and not (d / DB_NAME).exists():
        foreign = sorted(p.name for p in d.iterdir() if not _OWN_FILE.match(p.name))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise QAError(f"{d} is not empty and holds no qa index (found {shown}); choose another folder")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _remove_index_files(d: Path) -> None:
    for p in d.iterdir():
        if _OWN_FILE.match(p.name) and p.name != LOCK_NAME:
            p.unlink(missing_ok=True)


def _remove_strays(d: Path, current: str) -> None:
    """Delete FAISS files of generations the database does not name (left by a killed writer)."""
    for p in d.iterdir():
        if (_FAISS_FILE.match(p.name) and p.name != current) or p.name.startswith(DB_NAME + ".tmp"):
            log.debug("removing stray %s", p)
            p.unlink(missing_ok=True)
