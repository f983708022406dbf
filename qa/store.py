"""PassageStore: the on-disk index (SQLite rows + FTS5 for BM25, FAISS vectors keyed by chunk rowid)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import sqlite3
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexNotFoundError, QAError
from qa.schema import Chunk, Document

log = logging.getLogger(__name__)

#: Version of the on-disk layout; an index of another version is refused and must be rebuilt.
#: 2: the FTS5 table stems English words (porter), so version-1 BM25 rows would not match queries.
FORMAT_VERSION = 2
DB_NAME = "index.sqlite"
LOCK_NAME = "write.lock"

_FAISS_FILE = re.compile(r"^vectors\.(\d+)\.faiss(\.tmp)?$")
# Files a writer may leave behind; a folder holding only these counts as empty for create().
_OWN_FILE = re.compile(
    r"^(index\.sqlite(\.tmp)?(-wal|-shm|-journal)?|write\.lock|vectors\.\d+\.faiss(\.tmp)?)$"
)
_MAX_QUERY_TERMS = 64
# Lucene's English stop words (StopAnalyzer.ENGLISH_STOP_WORDS_SET), which Anserini's BM25 baselines
# also drop. Leaving them out of the query hardly changes the ranking (their IDF is near zero) but
# spares FTS5 from scoring nearly every row: on SQuAD it cut BM25 p50 from ~37 ms to ~2 ms.
_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)
_SQL_BATCH = 500

# Called with a named point inside apply(); the crash-safety tests SIGKILL the process there.
_crash_hook: Callable[[str], None] | None = None

_SCHEMA = """
CREATE TABLE manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    n_chars INTEGER NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE chunks (
    rowid INTEGER PRIMARY KEY,  -- the FAISS id of this chunk
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX chunks_by_doc ON chunks(doc_id, ordinal);
-- unicode61 splits on Unicode punctuation and separators in any script and folds case and
-- diacritics; porter then stems English words ("stripes" matches "stripe"), as Anserini's BM25
-- baselines do (with stop words dropped from queries: BM25 recall@5 on SQuAD 90.6 -> 92.2, see
-- eval/RETRIEVAL.md). Porter leaves non-ASCII words alone. unicode61 does not segment CJK: a run
-- of Chinese characters is one token, so BM25 only matches it whole. The trigram tokenizer would
-- match CJK substrings, but it ignores terms shorter than 3 characters ("AI", "UN") and makes the
-- index several times larger.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, content='chunks', content_rowid='rowid', tokenize='porter unicode61 remove_diacritics 2'
);
-- External-content FTS5 is kept in step by triggers, so every statement that changes chunks
-- (including ON DELETE CASCADE) changes the FTS rows in the same transaction.
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO chunks_fts(rowid, text) VALUES (new.rowid, new.text);
END;
"""


@dataclass(frozen=True, slots=True)
class Manifest:
    """How an index was built and which FAISS file belongs to its rows."""

    format_version: int
    embedder: str
    dim: int
    chunk_size: int
    chunk_overlap: int
    generation: int
    faiss_file: str
    faiss_sha256: str
    faiss_bytes: int
    n_documents: int
    n_chunks: int
    next_rowid: int
    created_at: str
    updated_at: str
    versions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: one manifest row per key."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        """Inverse of :meth:`to_dict`; raises KeyError/TypeError/ValueError on a bad manifest."""
        return cls(
            format_version=int(d["format_version"]),
            embedder=str(d["embedder"]),
            dim=int(d["dim"]),
            chunk_size=int(d["chunk_size"]),
            chunk_overlap=int(d["chunk_overlap"]),
            generation=int(d["generation"]),
            faiss_file=str(d["faiss_file"]),
            faiss_sha256=str(d["faiss_sha256"]),
            faiss_bytes=int(d["faiss_bytes"]),
            n_documents=int(d["n_documents"]),
            n_chunks=int(d["n_chunks"]),
            next_rowid=int(d["next_rowid"]),
            created_at=str(d["created_at"]),
            updated_at=str(d["updated_at"]),
            versions=dict(d.get("versions") or {}),
            settings=dict(d.get("settings") or {}),
        )


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A chunk found by one search, with its rowid (the FAISS id) and its document's source."""

    rowid: int
    chunk: Chunk
    score: float  # higher is better: cosine for dense, negated FTS5 bm25() for BM25
    source: str = ""


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What ``qa index`` reports about an index."""

    index_dir: str
    documents: int
    chunks: int
    embedder: str
    dim: int
    chunk_size: int
    chunk_overlap: int
    generation: int
    sqlite_bytes: int  # database plus its WAL
    faiss_bytes: int
    settings: dict[str, Any]
    created_at: str
    updated_at: str
    versions: dict[str, str]


def document_sha256(doc: Document) -> str:
    """The hash recorded for a document: sha256 of its UTF-8 text (what decides that it changed)."""
    return hashlib.sha256(doc.text.encode("utf-8", "surrogatepass")).hexdigest()


def build_fts_query(question: str) -> str:
    """Turn free text into a safe FTS5 query: every term quoted, all OR-ed together.

    Terms are the alphanumeric runs of the question (as unicode61 splits them), less English stop
    words unless the question has nothing else; a word made of several runs ("ISIS-K", "a:b") is
    also added as a quoted phrase, which rewards the exact sequence. Operators, column filters,
    prefixes and SQL are inert inside quotes. Returns "" when nothing searchable is left
    (punctuation, emoji).
    """
    text = unicodedata.normalize("NFC", question)
    words = [re.findall(r"[^\W_]+", word) for word in text.split()]
    keep_stop = all(run.casefold() in _STOP_WORDS for runs in words for run in runs)
    terms: list[str] = []
    seen: set[str] = set()

    def add(term: str) -> None:
        key = term.casefold()
        if key not in seen and len(terms) < _MAX_QUERY_TERMS:
            seen.add(key)
            terms.append('"' + term.replace('"', '""') + '"')

    for runs in words:
        for run in runs:
            if keep_stop or run.casefold() not in _STOP_WORDS:
                add(run)
        if len(runs) > 1:
            add(" ".join(runs))
    return " OR ".join(terms)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _library_versions() -> dict[str, str]:
    import faiss

    return {
        "faiss": str(faiss.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def _checkpoint(point: str) -> None:
    if _crash_hook is not None:
        _crash_hook(point)


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


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    _checkpoint("faiss_tmp_written")
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _rebuild_hint(index_dir: Path) -> str:
    return (f"rebuild it from your documents with `qa index --rebuild --index-dir {index_dir} PATH...` "
            f"(the files and folders it should hold) or delete {index_dir}/")


def _connect(db_path: Path) -> sqlite3.Connection:
    # mode=rw: never create a database by accident when opening.
    uri = "file:" + urllib.parse.quote(str(db_path)) + "?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL: a commit is on disk before apply() deletes the previous FAISS file, even on power loss.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _new_faiss_index(dim: int) -> Any:
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


@contextmanager
def _one_faiss_thread() -> Iterator[None]:
    """Run FAISS on the calling thread alone. One query over a flat index is far too little work
    for OpenMP: on a busy 2-core machine its thread start-up made a search over 2,252 vectors take
    ~7.5 ms instead of ~0.6 ms. OpenMP's thread count is per calling thread, so this is local."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _serialize(index: Any) -> bytes:
    import faiss

    return bytes(faiss.serialize_index(index))


class _VectorsGone(Exception):
    """The FAISS file named by the database vanished (a writer replaced it); read again."""


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
                    store._reset(
                        embedder=embedder, dim=dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap
                    )
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
            raise IndexNotFoundError(
                f"{d} holds no qa index ({DB_NAME} is missing): run `qa index` to build one"
            )
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
        return _acquire_lock(Path(index_dir), lock_timeout)

    @classmethod
    def peek_manifest(cls, index_dir: str | Path) -> Manifest | None:
        """The manifest of the index in ``index_dir`` without loading its vectors; None when there is no
        readable index there (missing, damaged, or another format)."""
        d = Path(index_dir)
        if not (d / DB_NAME).is_file():
            return None
        try:
            conn = _connect(d / DB_NAME)
        except sqlite3.Error:
            return None
        store = cls(d, conn, None)
        try:
            with store._read_txn():
                return store._read_manifest()
        except (QAError, sqlite3.Error):
            return None
        finally:
            conn.close()

    @classmethod
    def open_for_write(cls, index_dir: str | Path, *, lock_timeout: float = 0.0) -> PassageStore:
        """Shorthand for ``open(index_dir, readonly=False)``: an existing index, with the write lock."""
        return cls.open(index_dir, readonly=False, lock_timeout=lock_timeout)

    @classmethod
    def open_or_create(
        cls,
        index_dir: str | Path,
        *,
        embedder: str,
        dim: int,
        chunk_size: int,
        chunk_overlap: int,
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
            m = store.manifest
            if (m.chunk_size, m.chunk_overlap) != (chunk_size, chunk_overlap):
                raise IndexMismatchError(
                    f"the index in {d}/ was chunked with size {m.chunk_size} and overlap {m.chunk_overlap}, "
                    f"not {chunk_size} and {chunk_overlap}; to chunk every document again with the new "
                    f"settings, add --rebuild (`qa index --rebuild --index-dir {d} ...`)"
                )
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
                store._manifest = store._read_manifest()
            store._load_vectors()
            if lock is not None:
                store._remove_strays()
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
        m = self.manifest
        if m.embedder != name or (dim is not None and m.dim != dim):
            shown = f"{name!r}" if dim is None else f"{name!r} (dim {dim})"
            raise IndexMismatchError(
                f"the index in {self.index_dir}/ was built with embedder {m.embedder!r} (dim {m.dim}), but "
                f"{shown} is configured; {self._hint()}"
            )

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A saved tunable (e.g. ``min_score`` chosen by an eval sweep), or ``default``."""
        with self._read_txn():
            settings = self._read_manifest().settings
        return settings.get(key, default)

    def set_setting(self, key: str, value: Any) -> None:
        """Save a JSON-serialisable tunable in the manifest (writers only)."""
        self._require_writer()
        json.dumps(value)  # fail before touching the database
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            m = self._read_manifest()
            settings = {**m.settings, key: value}
            self._write_manifest({"settings": settings, "updated_at": _now()})
            conn.execute("COMMIT")
        except BaseException as exc:
            _rollback(conn)
            if isinstance(exc, sqlite3.Error):
                raise self._wrap(exc) from exc
            raise
        with self._read_txn():
            self._manifest = self._read_manifest()

    # ---- reading ---------------------------------------------------------------------------

    def document_hashes(self) -> dict[str, str]:
        """``{doc_id: sha256}`` of every indexed document (see :func:`document_sha256`)."""
        rows = self._query("SELECT doc_id, sha256 FROM documents ORDER BY doc_id")
        return {doc_id: sha for doc_id, sha in rows}

    def document_summaries(self) -> list[dict[str, Any]]:
        """Per document, in doc_id order: ``doc_id``, ``title``, ``source``, ``chars`` and ``passages``."""
        rows = self._query(
            "SELECT d.doc_id, d.title, d.source, d.n_chars, count(c.rowid) FROM documents d "
            "LEFT JOIN chunks c ON c.doc_id = d.doc_id GROUP BY d.doc_id ORDER BY d.doc_id"
        )
        return [{"doc_id": d, "title": t, "source": s, "chars": n, "passages": k} for d, t, s, n, k in rows]

    def get_document(self, doc_id: str) -> Document:
        """The stored document; KeyError if absent."""
        rows = self._query("SELECT doc_id, text, title, source FROM documents WHERE doc_id = ?", (doc_id,))
        if not rows:
            raise KeyError(f"no document {doc_id!r} in index {self.index_dir}")
        return Document(*rows[0])

    def get_chunk(self, rowid: int) -> Chunk:
        """The chunk stored under ``rowid`` (its FAISS id); KeyError if absent."""
        rows = self._query(
            "SELECT chunk_id, doc_id, char_start, char_end, text FROM chunks WHERE rowid = ?", (int(rowid),)
        )
        if not rows:
            raise KeyError(f"no chunk with rowid {rowid} in index {self.index_dir}")
        return Chunk(*rows[0])

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """The chunks of a document in order; [] if it has none or is absent."""
        rows = self._query(
            "SELECT chunk_id, doc_id, char_start, char_end, text FROM chunks "
            "WHERE doc_id = ? ORDER BY ordinal",
            (doc_id,),
        )
        return [Chunk(*r) for r in rows]

    def stats(self) -> IndexStats:
        """Counts, file sizes, embedder, settings and times of the index."""
        with self._read_txn():
            m = self._read_manifest()
        db = self.index_dir / DB_NAME
        sqlite_bytes = sum(p.stat().st_size for p in (db, db.with_name(DB_NAME + "-wal")) if p.exists())
        faiss_path = self.index_dir / m.faiss_file
        return IndexStats(
            index_dir=str(self.index_dir),
            documents=m.n_documents,
            chunks=m.n_chunks,
            embedder=m.embedder,
            dim=m.dim,
            chunk_size=m.chunk_size,
            chunk_overlap=m.chunk_overlap,
            generation=m.generation,
            sqlite_bytes=sqlite_bytes,
            faiss_bytes=faiss_path.stat().st_size if faiss_path.exists() else 0,
            settings=dict(m.settings),
            created_at=m.created_at,
            updated_at=m.updated_at,
            versions=dict(m.versions),
        )

    def search_dense(self, query_vec: np.ndarray, k: int) -> list[ScoredChunk]:
        """The ``k`` chunks whose vectors are closest to ``query_vec`` by cosine, best first."""
        if k < 0:
            raise ValueError(f"k must not be negative, got {k}")
        q = np.asarray(query_vec, dtype=np.float32).reshape(1, -1)
        dim = self.manifest.dim
        if q.shape[1] != dim:
            raise ValueError(f"query vector has dimension {q.shape[1]}, the index {dim}")
        if not np.isfinite(q).all():
            raise ValueError("query vector has NaN or infinite values")
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm
        if k == 0:
            return []
        for attempt in range(2):
            with self._read_txn():
                try:
                    self._sync_vectors()
                except _VectorsGone:
                    if attempt == 0:
                        continue
                    raise IndexCorruptError(
                        f"{self.index_dir / self.manifest.faiss_file} keeps vanishing; {self._hint()}"
                    ) from None
                n = int(self._index.ntotal)
                if n == 0:
                    return []
                try:
                    with _one_faiss_thread():
                        scores, ids = self._index.search(q, min(k, n))
                except Exception as exc:  # noqa: BLE001 - faiss raises RuntimeError with C++ text
                    raise IndexCorruptError(f"FAISS search failed on {self.index_dir}: {exc}") from exc
                pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
                found = self._fetch([i for i, _ in pairs])
            return [ScoredChunk(i, found[i][0], s, found[i][1]) for i, s in pairs if i in found]
        return []  # not reached: the second attempt returns or raises

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
        # Rank inside FTS5 first and join only the k winners, not every matching row.
        sql = (
            "SELECT c.rowid, c.chunk_id, c.doc_id, c.char_start, c.char_end, c.text, d.source, f.s FROM "
            "(SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY s, rowid LIMIT ?) f "
            "JOIN chunks c ON c.rowid = f.rowid JOIN documents d ON d.doc_id = c.doc_id ORDER BY f.s, c.rowid"
        )
        try:
            rows = self._query(sql, (expr, int(k)))
        except IndexCorruptError as exc:
            # build_fts_query quotes everything, so a syntax error here is a bug, not bad input.
            if "fts5" in str(exc).lower():
                log.warning("FTS5 rejected query %r built from %r: %s", expr, query, exc)
                return []
            raise
        return [ScoredChunk(r[0], Chunk(*r[1:6]), -float(r[7]), r[6]) for r in rows]

    def verify(self) -> None:
        """Check the whole index (SQLite pages, FTS5 vs chunks, FAISS vs rows, chunk offsets).

        Raises:
            IndexCorruptError: naming the first problem found.
        """
        db = self.index_dir / DB_NAME
        with self._read_txn():
            self._sync_vectors_or_raise()
            if (res := self._db().execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise IndexCorruptError(f"{db} failed its integrity check ({res}); {self._hint()}")
            if self._db().execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise IndexCorruptError(f"{db} has chunks without a document; {self._hint()}")
            try:
                self._db().execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
            except sqlite3.Error as exc:
                raise IndexCorruptError(
                    f"{db}: the BM25 index is out of step with the chunks ({exc}); {self._hint()}"
                ) from exc
            bad = (
                self._db()
                .execute(
                    "SELECT c.chunk_id FROM chunks c JOIN documents d USING (doc_id) "
                    "WHERE substr(d.text, c.char_start + 1, c.char_end - c.char_start) != c.text LIMIT 1"
                )
                .fetchone()
            )
            if bad is not None:
                raise IndexCorruptError(f"{db}: chunk {bad[0]!r} does not slice out of its document")
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
        prepared, delete_ids = self._validate(upserts, deletes, dim)
        if not prepared and not delete_ids and replace_all is None:
            return
        conn = self._db()
        with self._read_txn():
            self._sync_vectors_or_raise()
            m = self.manifest
            if replace_all is not None:
                stored = [d for (d,) in conn.execute("SELECT doc_id FROM documents").fetchall()]
                touched = stored + sorted({doc.doc_id for doc, _, _ in prepared} - set(stored))
                old_rowids = []
            else:
                touched = [doc.doc_id for doc, _, _ in prepared] + delete_ids
                old_rowids = [
                    r for (r,) in self._select_in("SELECT rowid FROM chunks WHERE doc_id IN ({})", touched)
                ]
            self._check_chunk_ids(prepared, set(touched))

        import faiss

        next_rowid = m.next_rowid
        new_rows: list[tuple[int, Document, int, Chunk]] = []
        new_index = _new_faiss_index(dim) if replace_all is not None else faiss.clone_index(self._index)
        if old_rowids:
            new_index.remove_ids(np.asarray(old_rowids, dtype=np.int64))
        for doc, chunks, vectors in prepared:
            ids = np.arange(next_rowid, next_rowid + len(chunks), dtype=np.int64)
            if len(chunks):
                new_index.add_with_ids(vectors, ids)
            new_rows.extend((int(i), doc, n, c) for n, (i, c) in enumerate(zip(ids, chunks, strict=True)))
            next_rowid += len(chunks)

        data = _serialize(new_index)
        generation = m.generation + 1
        faiss_file = f"vectors.{generation}.faiss"
        new_path = self.index_dir / faiss_file
        try:
            _write_durably(new_path, data)
            _checkpoint("faiss_replaced")
            now = _now()
            conn.execute("BEGIN IMMEDIATE")
            stored = self._read_manifest()
            if stored.generation != m.generation:
                raise IndexCorruptError(
                    f"index {self.index_dir} changed under the write lock (generation {stored.generation}, "
                    f"expected {m.generation}); is another program writing to it?"
                )
            self._executemany_in("DELETE FROM chunks WHERE doc_id IN ({})", touched)
            self._executemany_in("DELETE FROM documents WHERE doc_id IN ({})", touched)
            conn.executemany(
                "INSERT INTO documents (doc_id, source, title, text, sha256, n_chars, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (d.doc_id, d.source, d.title, d.text, document_sha256(d), len(d.text), now)
                    for d, _, _ in prepared
                ],
            )
            conn.executemany(
                "INSERT INTO chunks (rowid, chunk_id, doc_id, ordinal, char_start, char_end, text) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(i, c.chunk_id, d.doc_id, n, c.char_start, c.char_end, c.text) for i, d, n, c in new_rows],
            )
            n_documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            if n_chunks != new_index.ntotal:
                raise IndexCorruptError(
                    f"index {self.index_dir}: {n_chunks} chunk rows but {new_index.ntotal} vectors after the "
                    f"change; {self._hint()}"
                )
            built_with = {}
            if replace_all is not None:
                built_with = {k: replace_all[k] for k in ("embedder", "dim", "chunk_size", "chunk_overlap")}
                if any(built_with[k] != getattr(m, k) for k in built_with):
                    built_with["settings"] = {}  # tunables were chosen for the old index
            self._write_manifest(
                {
                    **built_with,
                    "generation": generation,
                    "faiss_file": faiss_file,
                    "faiss_sha256": hashlib.sha256(data).hexdigest(),
                    "faiss_bytes": len(data),
                    "n_documents": n_documents,
                    "n_chunks": n_chunks,
                    "next_rowid": next_rowid,
                    "updated_at": now,
                    "versions": _library_versions(),
                }
            )
            _checkpoint("rows_written")
            conn.execute("COMMIT")
        except BaseException as exc:
            _rollback(conn)
            new_path.unlink(missing_ok=True)
            new_path.with_name(faiss_file + ".tmp").unlink(missing_ok=True)
            if isinstance(exc, sqlite3.Error):
                raise self._wrap(exc) from exc
            raise
        _checkpoint("committed")
        self._index, self._index_gen = new_index, generation
        with self._read_txn():
            self._manifest = self._read_manifest()
        (self.index_dir / m.faiss_file).unlink(missing_ok=True)
        log.info(
            "index %s: %d document(s) upserted, %d deleted; %d chunks (generation %d)",
            self.index_dir,
            len(prepared),
            len(delete_ids),
            n_chunks,
            generation,
        )

    def _validate(
        self, upserts: Sequence[tuple[Document, Sequence[Chunk], np.ndarray]], deletes: Sequence[str], dim: int
    ) -> tuple[list[tuple[Document, list[Chunk], np.ndarray]], list[str]]:
        import faiss

        if isinstance(deletes, str):
            raise TypeError("deletes must be a sequence of doc_ids, not a string")
        prepared: list[tuple[Document, list[Chunk], np.ndarray]] = []
        doc_ids: set[str] = set()
        chunk_ids: set[str] = set()
        for item in upserts:
            doc, chunks, vectors = item
            if not isinstance(doc, Document):
                raise TypeError(f"expected a Document, got {type(doc).__name__}")
            if doc.doc_id in doc_ids:
                raise ValueError(f"document {doc.doc_id!r} is upserted twice in one change")
            doc_ids.add(doc.doc_id)
            chunks = list(chunks)
            for c in chunks:
                c.check(doc)
                if c.chunk_id in chunk_ids:
                    raise ValueError(f"chunk id {c.chunk_id!r} appears twice in one change")
                chunk_ids.add(c.chunk_id)
            if not isinstance(vectors, np.ndarray) or vectors.dtype != np.float32:
                got = vectors.dtype if isinstance(vectors, np.ndarray) else type(vectors).__name__
                raise TypeError(
                    f"vectors of document {doc.doc_id!r} must be a float32 numpy array, got {got}"
                )
            if vectors.shape != (len(chunks), dim):
                raise ValueError(
                    f"vectors of document {doc.doc_id!r} have shape {vectors.shape}, "
                    f"expected ({len(chunks)}, {dim}): one row per chunk"
                )
            if not np.isfinite(vectors).all():
                raise ValueError(f"vectors of document {doc.doc_id!r} have NaN or infinite values")
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).copy()
            if len(vectors):
                faiss.normalize_L2(vectors)  # inner product = cosine, whatever the embedder returned
            prepared.append((doc, chunks, vectors))
        delete_ids: list[str] = []
        for doc_id in deletes:
            if not isinstance(doc_id, str):
                raise TypeError(f"deletes must be doc_id strings, got {type(doc_id).__name__}")
            if doc_id in doc_ids:
                raise ValueError(f"document {doc_id!r} is both upserted and deleted in one change")
            if doc_id not in delete_ids:
                delete_ids.append(doc_id)
        return prepared, delete_ids

    def _check_chunk_ids(
        self, prepared: list[tuple[Document, list[Chunk], np.ndarray]], touched: set[str]
    ) -> None:
        new_ids = [c.chunk_id for _, chunks, _ in prepared for c in chunks]
        for chunk_id, doc_id in self._select_in(
            "SELECT chunk_id, doc_id FROM chunks WHERE chunk_id IN ({})", new_ids
        ):
            if doc_id not in touched:
                raise ValueError(f"chunk id {chunk_id!r} already belongs to document {doc_id!r}")

    def _reset(self, *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int) -> None:
        """Empty the index in one change and record new build settings (``--rebuild``)."""
        conn = self._db()
        m = self.manifest
        data = _serialize(_new_faiss_index(dim))
        generation = m.generation + 1
        faiss_file = f"vectors.{generation}.faiss"
        new_path = self.index_dir / faiss_file
        try:
            _write_durably(new_path, data)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM chunks")
            conn.execute("DELETE FROM documents")
            self._write_manifest(
                {
                    "embedder": embedder,
                    "dim": dim,
                    "chunk_size": chunk_size,
                    "chunk_overlap": chunk_overlap,
                    "generation": generation,
                    "faiss_file": faiss_file,
                    "faiss_sha256": hashlib.sha256(data).hexdigest(),
                    "faiss_bytes": len(data),
                    "n_documents": 0,
                    "n_chunks": 0,
                    "updated_at": _now(),
                    "versions": _library_versions(),
                    "settings": {},  # tunables were chosen for the old index
                }
            )
            conn.execute("COMMIT")
        except BaseException as exc:
            _rollback(conn)
            new_path.unlink(missing_ok=True)
            if isinstance(exc, sqlite3.Error):
                raise self._wrap(exc) from exc
            raise
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

    def _wrap(self, exc: sqlite3.Error) -> QAError:
        db = self.index_dir / DB_NAME
        text = str(exc)
        if "locked" in text or "busy" in text:
            return IndexLockedError(f"{db} is busy ({text}); another qa process is using it, try again")
        return IndexCorruptError(f"{db} is damaged or unreadable ({text}); {self._hint()}")

    @contextmanager
    def _read_txn(self) -> Iterator[None]:
        """A read transaction: every query inside sees one snapshot (WAL), whatever writers commit."""
        conn = self._db()
        nested = conn.in_transaction
        try:
            if not nested:
                conn.execute("BEGIN")
            yield
        except sqlite3.Error as exc:
            if not nested:
                _rollback(conn)
            raise self._wrap(exc) from exc
        except BaseException:
            if not nested:
                _rollback(conn)
            raise
        else:
            if not nested:
                conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_txn():
            return self._db().execute(sql, params).fetchall()

    def _select_in(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for b in range(0, len(values), _SQL_BATCH):
            part = values[b : b + _SQL_BATCH]
            rows.extend(self._db().execute(sql.format(",".join("?" * len(part))), part).fetchall())
        return rows

    def _executemany_in(self, sql: str, values: Sequence[Any]) -> None:
        for b in range(0, len(values), _SQL_BATCH):
            part = values[b : b + _SQL_BATCH]
            self._db().execute(sql.format(",".join("?" * len(part))), part)

    def _fetch(self, rowids: Sequence[int]) -> dict[int, tuple[Chunk, str]]:
        rows = self._select_in(
            "SELECT c.rowid, c.chunk_id, c.doc_id, c.char_start, c.char_end, c.text, d.source "
            "FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE c.rowid IN ({})",
            list(rowids),
        )
        return {r[0]: (Chunk(*r[1:6]), r[6]) for r in rows}

    def _read_manifest(self) -> Manifest:
        db = self.index_dir / DB_NAME
        try:
            rows = self._db().execute("SELECT key, value FROM manifest").fetchall()
        except sqlite3.DatabaseError as exc:
            if "no such table" in str(exc):
                raise IndexCorruptError(
                    f"{db} is not a qa index (it has no manifest); {self._hint()}"
                ) from exc
            raise
        try:
            raw = {k: json.loads(v) for k, v in rows}
        except (TypeError, ValueError) as exc:
            raise IndexCorruptError(f"{db}: the manifest is not valid JSON; {self._hint()}") from exc
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"index {self.index_dir} has format version {version}, this qa reads {FORMAT_VERSION}; "
                f"{self._hint()}"
            )
        try:
            return Manifest.from_dict(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexCorruptError(f"{db}: the manifest is incomplete ({exc!r}); {self._hint()}") from exc

    def _write_manifest(self, values: dict[str, Any]) -> None:
        self._db().executemany(
            "INSERT INTO manifest (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()],
        )

    def _load_vectors(self) -> None:
        """Load the FAISS file the database names, re-reading once if a writer just replaced it."""
        for attempt in range(2):
            with self._read_txn():
                try:
                    self._sync_vectors(force=True)
                    return
                except _VectorsGone:
                    if attempt == 1:
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
        m = self._read_manifest()
        self._manifest = m
        if not force and self._index is not None and m.generation == self._index_gen:
            return
        path = self.index_dir / m.faiss_file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _VectorsGone from None
        except OSError as exc:
            raise IndexCorruptError(f"cannot read {path} ({exc}); {self._hint()}") from exc
        if len(data) != m.faiss_bytes or hashlib.sha256(data).hexdigest() != m.faiss_sha256:
            raise IndexCorruptError(
                f"{path} is damaged: its size or checksum disagrees with {DB_NAME} "
                f"({len(data)} bytes, expected {m.faiss_bytes}); {self._hint()}"
            )
        import faiss

        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except Exception as exc:  # noqa: BLE001 - faiss raises RuntimeError with C++ text
            raise IndexCorruptError(f"{path} is not a readable FAISS index; {self._hint()}") from exc
        if not isinstance(index, faiss.IndexIDMap2) or index.d != m.dim:
            raise IndexCorruptError(f"{path} is not an IndexIDMap2 of dimension {m.dim}; {self._hint()}")
        self._check_vectors(index, m)
        self._index, self._index_gen = index, m.generation

    def _check_vectors(self, index: Any, m: Manifest) -> None:
        """FAISS ids must be exactly the chunk rowids: row alignment is what makes search results right."""
        import faiss

        path = self.index_dir / m.faiss_file
        rowids = np.array(
            [r for (r,) in self._db().execute("SELECT rowid FROM chunks ORDER BY rowid")], dtype=np.int64
        )
        ids = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
        if index.ntotal != len(rowids) or not np.array_equal(ids, rowids) or m.n_chunks != len(rowids):
            raise IndexCorruptError(
                f"{path} holds {index.ntotal} vectors whose ids disagree with the {len(rowids)} chunk rows "
                f"of {DB_NAME}; {self._hint()}"
            )

    def _remove_strays(self) -> None:
        """Delete FAISS files of generations the database does not name (left by a killed writer)."""
        current = self.manifest.faiss_file
        for p in self.index_dir.iterdir():
            if (_FAISS_FILE.match(p.name) and p.name != current) or p.name.startswith(DB_NAME + ".tmp"):
                log.debug("removing stray %s", p)
                p.unlink(missing_ok=True)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # the transaction may already be gone
            pass


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


def _create_files(d: Path, *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int) -> None:
    """Write generation 0 (an empty FAISS file) and the database, which appears last, by rename."""
    data = _serialize(_new_faiss_index(dim))
    faiss_file = "vectors.0.faiss"
    _write_durably(d / faiss_file, data)
    now = _now()
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        embedder=embedder,
        dim=dim,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        generation=0,
        faiss_file=faiss_file,
        faiss_sha256=hashlib.sha256(data).hexdigest(),
        faiss_bytes=len(data),
        n_documents=0,
        n_chunks=0,
        next_rowid=1,
        created_at=now,
        updated_at=now,
        versions=_library_versions(),
        settings={},
    )
    tmp = d / (DB_NAME + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        # WAL lets readers keep reading while a writer commits; the mode is stored in the file.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript("BEGIN;\n" + _SCHEMA)
        conn.executemany(
            "INSERT INTO manifest (key, value) VALUES (?, ?)",
            [(k, json.dumps(v, ensure_ascii=False)) for k, v in manifest.to_dict().items()],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()  # the last connection checkpoints and removes the WAL
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, d / DB_NAME)
    _fsync_dir(d)
    log.info("created index %s for %s (dim %d)", d, embedder, dim)
