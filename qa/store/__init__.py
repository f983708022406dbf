"""The on-disk index: SQLite rows + FTS5 for BM25, FAISS vectors keyed by chunk rowid, and a manifest.

Read it one part at a time; each imports only the ones listed before it:

- ``files``: the folder's file names (``index.sqlite``, ``vectors.<generation>.faiss``,
  ``write.lock``), which files are qa's, and clearing out a killed writer's leftovers.
- ``locking``: the folder's write lock (one writer at a time; readers never take it).
- ``rows``: the SQLite schema, documents and chunks, read transactions, FTS5 BM25 search, integrity checks.
- ``manifest``: :class:`Manifest` and :class:`IndexStats`, ``FORMAT_VERSION``; reading, writing and
  checking the manifest table (format version, embedder, chunking, FAISS generation) and saved settings.
- ``vectors``: FAISS files: building the next generation, writing it durably, loading it and
  checking its size, sha256 and ids against the rows, searching it.
- ``commit``: one change, made atomic; ``passage_store``: :class:`PassageStore`, which composes the others.
- ``protocol``: :class:`Store`, what retrieval, indexing and answering use of a store; ``milvus``:
  :class:`~qa.store.milvus.MilvusStore`, the same protocol over a Milvus database (``--index-uri``), whose
  collections ``milvus_schema`` describes.
  :func:`open_index` and :func:`open_or_create_index` choose the backend by the index's location.

How a change is atomic: the writer (holding the lock) builds the next FAISS index in memory and writes
it beside the current one as ``vectors.<generation + 1>.faiss`` (a fsynced ``.tmp`` file, then
``os.replace``). Then one SQLite transaction (WAL, ``synchronous = FULL``) changes the documents and
chunks (FTS5 follows by triggers) and points the manifest at the new file, with its size and sha256.
Only after that COMMIT is the old file deleted. A process killed before the COMMIT leaves the database
naming the old file, whole (the next writer deletes the stray new one); killed after it, the new one.
Readers load the file their snapshot names (reading again if a writer has just deleted it) and refuse
one whose size or sha256 disagrees. A new index's database is written as ``index.sqlite.tmp`` and
renamed into place last.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa.store.files import DB_NAME, LOCK_NAME
from qa.store.manifest import FORMAT_VERSION, IndexStats, Manifest
from qa.store.passage_store import PassageStore
from qa.store.protocol import Store
from qa.store.rows import ScoredChunk, build_fts_query, document_sha256

__all__ = [
    "DB_NAME",
    "is_milvus_location",
    "open_index",
    "open_or_create_index",
    "peek_index_manifest",
    "FORMAT_VERSION",
    "LOCK_NAME",
    "IndexStats",
    "Manifest",
    "PassageStore",
    "ScoredChunk",
    "Store",
    "build_fts_query",
    "document_sha256",
]

# Called with a named point of a write ("faiss_tmp_written", "faiss_replaced", "rows_written",
# "committed"); the crash-safety tests set it to SIGKILL the process there. It lives here, not in
# the module that calls it, so that setting `qa.store._crash_hook` still reaches that code.
_crash_hook: Callable[[str], None] | None = None


def is_milvus_location(location: str | Path) -> bool:
    """True when an index location names Milvus (a Milvus Lite ``*.db`` file or a server URI), not a folder."""
    s = str(location)
    return s.startswith(("http://", "https://", "tcp://", "unix:")) or s.endswith(".db")


def open_index(location: str | Path, *, readonly: bool = True, lock_timeout: float = 0.0) -> Store:
    """The store at ``location``: a :class:`PassageStore` folder, or a Milvus database (qa.store.milvus)."""
    if is_milvus_location(location):
        from qa.store.milvus import MilvusStore

        return MilvusStore.open(str(location), readonly=readonly, lock_timeout=lock_timeout)
    return PassageStore.open(location, readonly=readonly, lock_timeout=lock_timeout)


def open_or_create_index(location: str | Path, **spec: Any) -> Store:
    """The store at ``location`` open for writing, created empty when there is none (see ``open_or_create``)."""
    if is_milvus_location(location):
        from qa.store.milvus import MilvusStore

        return MilvusStore.open_or_create(str(location), **spec)
    return PassageStore.open_or_create(location, **spec)


def peek_index_manifest(location: str | Path) -> Manifest | None:
    """The manifest of the index at ``location``, or None when there is no readable one."""
    if is_milvus_location(location):
        from qa.store.milvus import MilvusStore

        return MilvusStore.peek_manifest(str(location))
    return PassageStore.peek_manifest(location)
