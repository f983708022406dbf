"""The folder's write lock: one writer at a time (readers never take it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qa.errors import IndexLockedError
from qa.store.files import LOCK_NAME


def _is_locked(d: Path) -> bool:
    """True while another process holds the folder's write lock (taken and released at once if free)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(d / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def _acquire_lock(d: Path, timeout: float) -> Any:
    from filelock import FileLock, Timeout

    lock = FileLock(str(d / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise IndexLockedError(
            f"another qa index is writing to {d}; wait for it to finish or stop it, then try again "
            f"(or pass --wait SECONDS)"
        ) from None
    return lock


def write_lock(index_dir: str | Path, *, lock_timeout: float = 0.0) -> Any:
    """Take the write lock of an existing index folder without opening the index (a rebuild holds it while
    it embeds); pass it to :meth:`PassageStore.create`, or ``release()`` it.

    Raises:
        IndexLockedError: another process is writing.
    """
    return _acquire_lock(Path(index_dir), lock_timeout)
