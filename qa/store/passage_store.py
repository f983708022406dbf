"""PassageStore: one index folder opened for reading or writing, composed of rows, vectors and the manifest."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError, QAError
from qa.schema import Chunk, Document
from qa.store.commit import _commit_change, _commit_reset, _create_files, _plan_change, _validate
from qa.store.files import (
    DB_NAME,
    LOCK_NAME,
    _checkpoint,
    _prepare_dir,
    _rebuild_hint,
    _remove_index_files,
    _remove_strays,
)
from qa.store.locking import _acquire_lock, _is_locked, write_lock
from qa.store.manifest import (
    IndexStats,
    Manifest,
    _check_chunking,
    _check_embedder,
    _index_stats,
    _peek_manifest,
    _read_manifest,
    _set_setting,
)
from qa.store.rows import (
    ScoredChunk,
    _check_rows,
    _chunk_rowids,
    _chunks_of,
    _connect,
    _document_hashes,
    _document_summaries,
    _fetch,
    _get_chunk,
    _get_document,
    _search_bm25,
    _snapshot,
    build_fts_query,
)
from qa.store.vectors import _check_ids, _load_index, _search, _unit_query, _VectorsGone

log = logging.getLogger(__name__)

#: Reads of the FAISS file the database names before giving up: a writer deletes a generation's file once it has
#: committed the next, so a reader on a busy machine can miss one generation after another while commits follow
#: each other (one retry was not always enough with twelve back-to-back commits and both cores busy)
VANISHED_RETRIES = 5


class PassageStore:
    """An index folder: documents, chunks and FTS5 in SQLite; chunk vectors in a FAISS file.

    Build one with :meth:`create` or :meth:`open_or_create` (writers, one at a time) and read it
    with :meth:`open`. Close it, or use it as a context manager.
    """

    def __init__(self, index_dir: Path, conn: sqlite3.Connection, lock: Any | None) -> None:
        """Private: use :meth:`create`, :meth:`open` or :meth:`open_or_create`."""
        self.index_dir = index_dir
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self._manifest: Manifest | None = None
        self._index: Any = None  # the FAISS index of generation self._index_gen
        self._index_gen = -1

    # ---- opening and closing -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        index_dir: str | Path,
        *,
        embedder: str,
        dim: int,
        chunk_size: int,
        chunk_overlap: int,
        overwrite: bool = False,
        lock_timeout: float = 0.0,
        lock: Any | None = None,
    ) -> PassageStore:
        """Create an empty index in ``index_dir`` and return it open for writing.

        Args:
            index_dir: the folder; created if missing. A non-empty folder that is not an index is refused.
            embedder: name of the embedder whose vectors the index will hold.
            dim: their dimension.
            chunk_size: chunk size the chunks are made with (recorded in the manifest).
            chunk_overlap: chunk overlap (recorded in the manifest).
            overwrite: empty an existing index instead of refusing it (``qa index --rebuild``).
                A healthy index is emptied in one transaction; a damaged one is deleted first.
            lock_timeout: seconds to wait for another writer; 0 fails at once.
            lock: the folder's write lock, already held (from :meth:`write_lock`); the store takes it over,
                and releases it if creating fails.

        Returns:
            The new store, holding the write lock.
        """
        d = Path(index_dir)
        if lock is None:
            lock = _acquire_lock(_prepare_dir(d, embedder, dim), lock_timeout)
        try:
            if (d / DB_NAME).exists() and not overwrite:
                raise QAError(f"{d} already holds an index; open it, or rebuild it with overwrite")
            return cls._create_locked(
                d, lock, embedder=embedder, dim=dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap
            )
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _create_locked(
        cls, d: Path, lock: Any, *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int
    ) -> PassageStore:
        if (d / DB_NAME).exists():
            try:
                store = cls._attach(d, lock)
            except (IndexCorruptError, IndexMismatchError) as exc:
                log.warning("deleting unreadable index in %s before rebuilding: %s", d, exc)
            else:
                try:
                    store._reset(embedder=embedder, dim=dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
                except BaseException:
                    store._lock = None  # the caller releases it
                    store.close()
                    raise
                return store
        _remove_index_files(d)
        _create_files(d, embedder=embedder, dim=dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        return cls._attach(d, lock)

    @classmethod
    def open(cls, index_dir: str | Path, *, readonly: bool = True, lock_timeout: float = 0.0) -> PassageStore:
        """Open an existing index.

        Args:
            index_dir: the index folder.
            readonly: False to write, which takes the folder's write lock.
            lock_timeout: seconds to wait for another writer (writers only); 0 fails at once.

        Raises:
            IndexNotFoundError: no folder, or no index in it.
            IndexMismatchError: the index has another format version.
            IndexCorruptError: a file is damaged or the files disagree.
            IndexLockedError: another process is writing (writers only).
        """
        d = Path(index_dir)
        if not d.is_dir():
            raise IndexNotFoundError(f"no index at {d}/: run `qa index` to build one")
        if not (d / DB_NAME).is_file():
            if (d / LOCK_NAME).exists() and _is_locked(d):
                raise IndexNotFoundError(
                    f"the index in {d} is still being built by a running `qa index`: ask again when it has finished"
                )
            raise IndexNotFoundError(f"{d} holds no qa index ({DB_NAME} is missing): run `qa index` to build one")
        if readonly:
            return cls._attach(d, None)
        lock = _acquire_lock(d, lock_timeout)
        try:
            return cls._attach(d, lock)
        except BaseException:
            lock.release()
            raise

    @staticmethod
    def write_lock(index_dir: str | Path, *, lock_timeout: float = 0.0) -> Any:
        """Take the write lock of an existing index folder without opening the index (a rebuild holds it while
        it embeds); pass it to :meth:`create`, or ``release()`` it.

        Raises:
            IndexLockedError: another process is writing.
        """
        return write_lock(index_dir, lock_timeout=lock_timeout)

    @classmethod
    def peek_manifest(cls, index_dir: str | Path) -> Manifest | None:
        """The manifest of the index in ``index_dir`` without loading its vectors; None when there is no
        readable index there (missing, damaged, or another format)."""
        return _peek_manifest(Path(index_dir))

    @classmethod
    def open_for_write(cls, index_dir: str | Path, *, lock_timeout: float = 0.0) -> PassageStore:
        """Shorthand for ``open(index_dir, readonly=False)``: an existing index, with the write lock."""
        return cls.open(index_dir, readonly=False, lock_timeout=lock_timeout)

    @classmethod
    def open_or_create(
        cls, index_dir: str | Path, *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int,
        lock_timeout: float = 0.0,
    ) -> PassageStore:
        """Open the index in ``index_dir`` for writing, creating it when there is none.

        An existing index must match ``embedder``, ``dim`` and the chunk settings, else
        IndexMismatchError says how to rebuild it.
        """
        d = Path(index_dir)
        lock = _acquire_lock(_prepare_dir(d, embedder, dim), lock_timeout)
        try:
            if not (d / DB_NAME).is_file():
                return cls._create_locked(
                    d, lock, embedder=embedder, dim=dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap
                )
            store = cls._attach(d, lock)
        except BaseException:
            lock.release()
            raise
        try:
            store.check_embedder(embedder, dim)
            _check_chunking(store.manifest, d, chunk_size, chunk_overlap)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _attach(cls, d: Path, lock: Any | None) -> PassageStore:
        db_path = d / DB_NAME
        try:
            conn = _connect(db_path)
        except sqlite3.Error as exc:
            raise IndexCorruptError(f"cannot open {db_path} ({exc}); {_rebuild_hint(d)}") from exc
        store = cls(d, conn, lock)
        try:
            with store._read_txn():
                store._manifest = _read_manifest(conn, d)
            store._load_vectors()
            if lock is not None:
                _remove_strays(d, store.manifest.faiss_file)
        except BaseException:
            conn.close()
            raise
        log.debug("opened index %s (generation %d)", d, store.manifest.generation)
        return store

    def close(self) -> None:
        """Close the database and release the write lock; safe to call twice."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._index = None

    def __enter__(self) -> PassageStore:
        """The store itself; closed on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()

    # ---- manifest --------------------------------------------------------------------------

    @property
    def readonly(self) -> bool:
        """True unless this store holds the write lock."""
        return self._lock is None

    @property
    def manifest(self) -> Manifest:
        """The manifest as of the last open, write or search."""
        if self._manifest is None:
            raise ValueError("the store is closed")
        return self._manifest

    def check_embedder(self, name: str, dim: int | None = None) -> None:
        """Raise IndexMismatchError unless the index was built with embedder ``name`` (and ``dim``, if given)."""
        _check_embedder(self.manifest, self.index_dir, name, dim)

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A saved tunable (e.g. ``min_score`` chosen by an eval sweep), or ``default``."""
        with self._read_txn():
            settings = _read_manifest(self._db(), self.index_dir).settings
        return settings.get(key, default)

    def set_setting(self, key: str, value: Any) -> None:
        """Save a JSON-serialisable tunable in the manifest (writers only)."""
        self._require_writer()
        _set_setting(self._db(), self.index_dir, key, value)
        with self._read_txn():
            self._manifest = _read_manifest(self._db(), self.index_dir)

    # ---- reading ---------------------------------------------------------------------------

    def document_hashes(self) -> dict[str, str]:
        """``{doc_id: sha256}`` of every indexed document (see :func:`document_sha256`)."""
        with self._read_txn():
            return _document_hashes(self._db())

    def document_summaries(self) -> list[dict[str, Any]]:
        """Per document, in doc_id order: ``doc_id``, ``title``, ``source``, ``chars`` and ``passages``."""
        with self._read_txn():
            return _document_summaries(self._db())

    def get_document(self, doc_id: str) -> Document:
        """The stored document; KeyError if absent."""
        with self._read_txn():
            doc = _get_document(self._db(), doc_id)
        if doc is None:
            raise KeyError(f"no document {doc_id!r} in index {self.index_dir}")
        return doc

    def get_chunk(self, rowid: int) -> Chunk:
        """The chunk stored under ``rowid`` (its FAISS id); KeyError if absent."""
        with self._read_txn():
            chunk = _get_chunk(self._db(), rowid)
        if chunk is None:
            raise KeyError(f"no chunk with rowid {rowid} in index {self.index_dir}")
        return chunk

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """The chunks of a document in order; [] if it has none or is absent."""
        with self._read_txn():
            return _chunks_of(self._db(), doc_id)

    def stats(self) -> IndexStats:
        """Counts, file sizes, embedder, settings and times of the index."""
        with self._read_txn():
            m = _read_manifest(self._db(), self.index_dir)
        return _index_stats(self.index_dir, m)

    def search_dense(self, query_vec: np.ndarray, k: int) -> list[ScoredChunk]:
        """The ``k`` chunks whose vectors are closest to ``query_vec`` by cosine, best first."""
        if k < 0:
            raise ValueError(f"k must not be negative, got {k}")
        q = _unit_query(query_vec, self.manifest.dim)
        if k == 0:
            return []
        for attempt in range(VANISHED_RETRIES):
            with self._read_txn():
                try:
                    self._sync_vectors()
                except _VectorsGone:
                    if attempt < VANISHED_RETRIES - 1:
                        continue
                    raise IndexCorruptError(
                        f"{self.index_dir / self.manifest.faiss_file} keeps vanishing; {self._hint()}"
                    ) from None
                pairs = _search(self._index, q, k, self.index_dir)
                found = _fetch(self._db(), [i for i, _ in pairs])
            return [ScoredChunk(i, found[i][0], s, found[i][1]) for i, s in pairs if i in found]
        return []  # not reached: the last attempt returns or raises

    def search_bm25(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` chunks that best match the words of ``query`` by BM25, best first.

        Any text is accepted: it is turned into quoted terms (:func:`build_fts_query`), and
        a question with no searchable word returns [].
        """
        if k < 0:
            raise ValueError(f"k must not be negative, got {k}")
        expr = build_fts_query(query)
        if not expr or k == 0:
            return []
        try:
            with self._read_txn():
                return _search_bm25(self._db(), expr, k)
        except IndexCorruptError as exc:
            # build_fts_query quotes everything, so a syntax error here is a bug, not bad input.
            if "fts5" in str(exc).lower():
                log.warning("FTS5 rejected query %r built from %r: %s", expr, query, exc)
                return []
            raise

    def verify(self) -> None:
        """Check the whole index (SQLite pages, FTS5 vs chunks, FAISS vs rows, chunk offsets).

        Raises:
            IndexCorruptError: naming the first problem found.
        """
        with self._read_txn():
            self._sync_vectors_or_raise()
            _check_rows(self._db(), self.index_dir)
            self._check_vectors(self._index, self.manifest)

    # ---- writing ---------------------------------------------------------------------------

    def apply(
        self,
        upserts: Sequence[tuple[Document, Sequence[Chunk], np.ndarray]],
        deletes: Sequence[str],
        *,
        replace_all: dict[str, Any] | None = None,
    ) -> None:
        """Apply one atomic change: add or replace documents with their chunks and vectors; delete others.

        Args:
            upserts: ``(document, chunks, vectors)``: vectors float32[len(chunks), dim], one row
                per chunk. An existing doc_id has its chunks and vectors replaced.
            deletes: doc_ids to remove; unknown ones are ignored.
            replace_all: for a rebuild, ``{"embedder", "dim", "chunk_size", "chunk_overlap"}``: every
                stored document goes and ``upserts`` become the whole index, built with these settings
                (``dim`` is the upserts' vector size), in the same one change. Saved tunables are
                dropped when the embedder or chunking differs from the index's.

        A process killed at any moment leaves the index as it was before or after, never a mix:
        the new FAISS file is written first under the next generation's name, then one SQLite
        transaction changes rows, FTS and the manifest's generation; the old file goes last.
        """
        self._require_writer()
        dim = replace_all["dim"] if replace_all is not None else self.manifest.dim
        prepared, delete_ids = _validate(upserts, deletes, dim)
        if not prepared and not delete_ids and replace_all is None:
            return
        conn = self._db()
        with self._read_txn():
            self._sync_vectors_or_raise()
            m = self.manifest
            touched, old_rowids = _plan_change(conn, prepared, delete_ids, replace_all is not None)

        base = None if replace_all is not None else self._index
        new_index, generation, n_chunks = _commit_change(
            conn, self.index_dir, m, base, prepared, touched, old_rowids, replace_all, dim
        )
        _checkpoint("committed")
        self._index, self._index_gen = new_index, generation
        with self._read_txn():
            self._manifest = _read_manifest(conn, self.index_dir)
        (self.index_dir / m.faiss_file).unlink(missing_ok=True)
        log.info("index %s: %d document(s) upserted, %d deleted; %d chunks (generation %d)",
                 self.index_dir, len(prepared), len(delete_ids), n_chunks, generation)

    def _reset(self, *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int) -> None:
        """Empty the index in one change and record new build settings (``--rebuild``)."""
        conn = self._db()
        m = self.manifest
        _commit_reset(
            conn, self.index_dir, m, embedder=embedder, dim=dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
        (self.index_dir / m.faiss_file).unlink(missing_ok=True)
        self._load_vectors()
        log.info("index %s emptied for a rebuild with %s (dim %d)", self.index_dir, embedder, dim)

    # ---- internals -------------------------------------------------------------------------

    def _hint(self) -> str:
        return _rebuild_hint(self.index_dir)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("the store is closed")
        return self._conn

    def _require_writer(self) -> None:
        self._db()
        if self._lock is None:
            raise ValueError(
                f"index {self.index_dir} is open read-only; open it with readonly=False to write"
            )

    def _read_txn(self) -> AbstractContextManager[None]:
        """A read transaction: every query inside sees one snapshot (WAL), whatever writers commit."""
        return _snapshot(self._db(), self.index_dir)

    def _load_vectors(self) -> None:
        """Load the FAISS file the database names, re-reading while a writer keeps replacing it."""
        for attempt in range(VANISHED_RETRIES):
            with self._read_txn():
                try:
                    self._sync_vectors(force=True)
                    return
                except _VectorsGone:
                    if attempt == VANISHED_RETRIES - 1:
                        path = self.index_dir / self.manifest.faiss_file
                        raise IndexCorruptError(
                            f"{path} is missing (the database names generation {self.manifest.generation}); "
                            f"{self._hint()}"
                        ) from None

    def _sync_vectors_or_raise(self) -> None:
        try:
            self._sync_vectors()
        except _VectorsGone:
            raise IndexCorruptError(
                f"{self.index_dir / self.manifest.faiss_file} is missing; {self._hint()}"
            ) from None

    def _sync_vectors(self, *, force: bool = False) -> None:
        """Inside a read transaction: make the in-memory FAISS index the one this snapshot names."""
        m = _read_manifest(self._db(), self.index_dir)
        self._manifest = m
        if not force and self._index is not None and m.generation == self._index_gen:
            return
        index = _load_index(self.index_dir, m)
        self._check_vectors(index, m)
        self._index, self._index_gen = index, m.generation

    def _check_vectors(self, index: Any, m: Manifest) -> None:
        """FAISS ids must be exactly the chunk rowids: row alignment is what makes search results right."""
        _check_ids(index, _chunk_rowids(self._db()), m, self.index_dir)

