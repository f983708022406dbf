"""Connecting to Milvus: a server by URI, or Milvus Lite in this process for a ``*.db`` path; errors that say why."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from qa.errors import IndexNotFoundError, QAError

# Milvus Lite serves a .db folder from a server inside the process that opened it, held (with the folder's lock)
# until that process ends unless released: the stores open on each folder in this process are counted, so that
# the last one to close lets other processes open it (a `qa ask` after `qa bench` in one Python, a test after
# another).
_LITE_USERS: dict[str, int] = {}


def connect(uri: str, *, create: bool) -> Any:
    """A ``pymilvus.MilvusClient`` for ``uri``; a Milvus Lite folder is created when ``create``.

    Raises:
        IndexNotFoundError: no Milvus Lite folder at ``uri`` and not ``create``.
        QAError: pymilvus is not installed, another process holds the Milvus Lite folder, or no connection.
    """
    from qa.config import milvus_token

    lite = uri.endswith(".db")
    if lite and not create and not Path(uri).exists():
        raise IndexNotFoundError(f"no index at {uri}: build one with `qa index PATH --index-uri {uri}`")
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise QAError(f"{uri} is a Milvus index, and pymilvus is not installed: pip install 'qa[milvus]'") from exc
    if lite and create:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    if lite:
        # Milvus Lite's in-process server lacks AllocTimestamp: query iterators log its traceback (grpc) and a
        # warning (pymilvus), then work with the client's clock; neither is the user's concern
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)  # its lock error is reported below
    try:
        client = MilvusClient(uri=uri, token=milvus_token())
    except Exception as exc:  # noqa: BLE001 - any connection failure is reported with the URI
        if lite and lite_locked(uri):
            raise QAError(
                f"another process has the Milvus Lite index {uri} open, and Milvus Lite serves one process at "
                f"a time; to share it, serve it (`milvus-lite server --data-dir {uri}`) and use --index-uri "
                "http://127.0.0.1:19530"
            ) from None
        raise QAError(f"cannot connect to Milvus at {uri}: {type(exc).__name__}: {exc}") from None
    if lite:
        path = os.path.abspath(uri)
        _LITE_USERS[path] = _LITE_USERS.get(path, 0) + 1
    return client


def release(uri: str) -> None:
    """After a client of ``uri`` closed: stop this process's Milvus Lite server of it when no store uses it."""
    if not uri.endswith(".db"):
        return
    path = os.path.abspath(uri)
    _LITE_USERS[path] = _LITE_USERS.get(path, 1) - 1
    if _LITE_USERS[path] <= 0:
        del _LITE_USERS[path]
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(path)


def lite_locked(uri: str) -> bool:
    """True when another process holds the lock of a Milvus Lite data folder."""
    lock = Path(uri) / "LOCK"
    if not lock.exists():
        return False
    with lock.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False
