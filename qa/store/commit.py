"""The crash-safe commit of one change: the next FAISS generation is written beside, then one SQLite commit names it."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexCorruptError
from qa.schema import Chunk, Document
from qa.store.files import _checkpoint, _rebuild_hint
from qa.store.manifest import (
    Manifest,
    _library_versions,
    _manifest_rows,
    _new_manifest,
    _now,
    _read_manifest,
    _write_manifest,
)
from qa.store.rows import (
    _check_chunk_ids,
    _create_database,
    _delete_all_rows,
    _rollback,
    _rowids_of,
    _stored_doc_ids,
    _wrap_error,
    _write_rows,
)
from qa.store.vectors import (
    _faiss_name,
    _file_values,
    _new_faiss_index,
    _next_index,
    _prepare_vectors,
    _serialize,
    _write_durably,
    describe_index,
)

log = logging.getLogger(__name__)


def _validate(
    upserts: Sequence[tuple[Document, Sequence[Chunk], np.ndarray]], deletes: Sequence[str], dim: int
) -> tuple[list[tuple[Document, list[Chunk], np.ndarray]], list[str]]:
    """Check one change's input before anything is written; returns its upserts (vectors normalised) and deletes."""
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
        prepared.append((doc, chunks, _prepare_vectors(doc, vectors, len(chunks), dim)))
    delete_ids: list[str] = []
    for doc_id in deletes:
        if not isinstance(doc_id, str):
            raise TypeError(f"deletes must be doc_id strings, got {type(doc_id).__name__}")
        if doc_id in doc_ids:
            raise ValueError(f"document {doc_id!r} is both upserted and deleted in one change")
        if doc_id not in delete_ids:
            delete_ids.append(doc_id)
    return prepared, delete_ids


def _plan_change(
    conn: sqlite3.Connection,
    prepared: Sequence[tuple[Document, list[Chunk], np.ndarray]],
    delete_ids: list[str],
    replace_all: bool,
) -> tuple[list[str], list[int]]:
    """Inside a read transaction: the doc_ids a change replaces or deletes, and the rowids of their chunks.

    A rebuild (``replace_all``) touches every stored document and starts from an empty FAISS index,
    so it removes no rowids. Raises ValueError if a new chunk id belongs to an untouched document.
    """
    if replace_all:
        stored = _stored_doc_ids(conn)
        touched = stored + sorted({doc.doc_id for doc, _, _ in prepared} - set(stored))
        old_rowids = []
    else:
        touched = [doc.doc_id for doc, _, _ in prepared] + delete_ids
        old_rowids = _rowids_of(conn, touched)
    _check_chunk_ids(conn, [c.chunk_id for _, chunks, _ in prepared for c in chunks], set(touched))
    return touched, old_rowids


def _commit_change(
    conn: sqlite3.Connection,
    index_dir: Path,
    m: Manifest,
    base: Any,
    prepared: Sequence[tuple[Document, list[Chunk], np.ndarray]],
    touched: Sequence[str],
    old_rowids: Sequence[int],
    replace_all: dict[str, Any] | None,
    dim: int,
) -> tuple[Any, int, int]:
    """Commit one change made against manifest ``m`` and FAISS index ``base`` (None: start empty).

    The next generation's FAISS file is written (fsynced, renamed into place) beside the current
    one; then one SQLite transaction replaces the ``touched`` documents' rows (FTS5 follows by
    triggers) and points the manifest at the new file. Until that COMMIT the database names the
    old file, so a process killed before it leaves the old index whole; on any error the new file
    is deleted. The caller deletes the old file once this returns.

    Returns:
        ``(new_index, generation, n_chunks)``.
    """
    new_index, new_rows, next_rowid = _next_index(base, dim, old_rowids, prepared, m.next_rowid)
    data = _serialize(new_index)
    generation = m.generation + 1
    faiss_file = _faiss_name(generation)
    new_path = index_dir / faiss_file
    try:
        _write_durably(new_path, data)
        _checkpoint("faiss_replaced")
        now = _now()
        conn.execute("BEGIN IMMEDIATE")
        stored = _read_manifest(conn, index_dir)
        if stored.generation != m.generation:
            raise IndexCorruptError(
                f"index {index_dir} changed under the write lock (generation {stored.generation}, "
                f"expected {m.generation}); is another program writing to it?"
            )
        n_documents, n_chunks = _write_rows(conn, touched, [d for d, _, _ in prepared], new_rows, now)
        if n_chunks != new_index.ntotal:
            raise IndexCorruptError(
                f"index {index_dir}: {n_chunks} chunk rows but {new_index.ntotal} vectors after the "
                f"change; {_rebuild_hint(index_dir)}"
            )
        built_with = {}
        if replace_all is not None:
            built_with = {k: replace_all[k] for k in ("embedder", "dim", "chunk_size", "chunk_overlap")}
            if any(built_with[k] != getattr(m, k) for k in built_with):
                built_with["settings"] = {}  # tunables were chosen for the old index
        _write_manifest(
            conn,
            {
                **built_with,
                "generation": generation,
                **_file_values(faiss_file, data),
                "n_documents": n_documents,
                "n_chunks": n_chunks,
                "next_rowid": next_rowid,
                "updated_at": now,
                "versions": _library_versions(),
                "dense_index": describe_index(new_index),
            },
        )
        _checkpoint("rows_written")
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback(conn)
        new_path.unlink(missing_ok=True)
        new_path.with_name(faiss_file + ".tmp").unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):
            raise _wrap_error(index_dir, exc) from exc
        raise
    return new_index, generation, n_chunks


def _commit_reset(
    conn: sqlite3.Connection, index_dir: Path, m: Manifest, *, embedder: str, dim: int, chunk_size: int,
    chunk_overlap: int,
) -> None:
    """Empty the index in one commit, as :func:`_commit_change` does a change, with new build settings."""
    data = _serialize(_new_faiss_index(dim))
    generation = m.generation + 1
    faiss_file = _faiss_name(generation)
    new_path = index_dir / faiss_file
    try:
        _write_durably(new_path, data)
        conn.execute("BEGIN IMMEDIATE")
        _delete_all_rows(conn)
        _write_manifest(
            conn,
            {
                "embedder": embedder,
                "dim": dim,
                "chunk_size": chunk_size,
                "chunk_overlap": chunk_overlap,
                "generation": generation,
                **_file_values(faiss_file, data),
                "n_documents": 0,
                "n_chunks": 0,
                "updated_at": _now(),
                "versions": _library_versions(),
                "settings": {},  # tunables were chosen for the old index
            },
        )
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback(conn)
        new_path.unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):
            raise _wrap_error(index_dir, exc) from exc
        raise


def _create_files(d: Path, *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int) -> None:
    """Write generation 0 (an empty FAISS file) and the database, which appears last, by rename."""
    data = _serialize(_new_faiss_index(dim))
    faiss_file = _faiss_name(0)
    _write_durably(d / faiss_file, data)
    manifest = _new_manifest(
        embedder=embedder, dim=dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
        **_file_values(faiss_file, data),
    )
    _create_database(d, _manifest_rows(manifest.to_dict()))
    log.info("created index %s for %s (dim %d)", d, embedder, dim)
