"""The manifest: how an index was built, which FAISS generation belongs to its rows, and its saved settings."""

from __future__ import annotations

import json
import platform
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexCorruptError, IndexMismatchError, QAError
from qa.store.files import DB_NAME, _rebuild_hint
from qa.store.rows import _connect, _rollback, _snapshot, _wrap_error

#: Version of the on-disk layout; an index of another version is refused and must be rebuilt.
#: 2: the FTS5 table stems English words (porter), so version-1 BM25 rows would not match queries.
#: 3: passages are embedded and BM25-indexed as their model view (qa.modeltext: no markup, no hard wraps).
FORMAT_VERSION = 3


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
    dense_index: str = "exact (flat)"  # or "approximate (IVF n lists, nprobe p)" (qa.store.vectors.describe_index)

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
            dense_index=str(d.get("dense_index") or "exact (flat)"),
        )


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
    dense_index: str = "exact (flat)"


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


def _new_manifest(
    *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int, faiss_file: str, faiss_sha256: str,
    faiss_bytes: int,
) -> Manifest:
    """The manifest of a new, empty index whose generation 0 is ``faiss_file``."""
    now = _now()
    return Manifest(
        format_version=FORMAT_VERSION,
        embedder=embedder,
        dim=dim,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        generation=0,
        faiss_file=faiss_file,
        faiss_sha256=faiss_sha256,
        faiss_bytes=faiss_bytes,
        n_documents=0,
        n_chunks=0,
        next_rowid=1,
        created_at=now,
        updated_at=now,
        versions=_library_versions(),
        settings={},
    )


def _manifest_rows(values: dict[str, Any]) -> list[tuple[str, str]]:
    """The manifest table's ``(key, value)`` rows: each value as JSON."""
    return [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()]


def _read_manifest(conn: sqlite3.Connection, index_dir: Path) -> Manifest:
    """The manifest in the database, checked for its format version and completeness."""
    db = index_dir / DB_NAME
    try:
        rows = conn.execute("SELECT key, value FROM manifest").fetchall()
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc):
            raise IndexCorruptError(
                f"{db} is not a qa index (it has no manifest); {_rebuild_hint(index_dir)}"
            ) from exc
        raise
    try:
        raw = {k: json.loads(v) for k, v in rows}
    except (TypeError, ValueError) as exc:
        raise IndexCorruptError(f"{db}: the manifest is not valid JSON; {_rebuild_hint(index_dir)}") from exc
    return manifest_from_raw(raw, str(index_dir), str(db), _rebuild_hint(index_dir))


def manifest_from_raw(raw: dict[str, Any], index: str, holder: str, hint: str) -> Manifest:
    """The manifest in ``raw`` (key -> JSON value) of the index at ``index``, stored in ``holder``.

    Raises:
        IndexMismatchError: another format version (``hint`` says how to rebuild).
        IndexCorruptError: keys are missing or of the wrong type.
    """
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexMismatchError(f"index {index} has format version {version}, this qa reads {FORMAT_VERSION}; {hint}")
    try:
        return Manifest.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexCorruptError(f"{holder}: the manifest is incomplete ({exc!r}); {hint}") from exc


def _write_manifest(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    """Set some manifest keys (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO manifest (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        _manifest_rows(values),
    )


def _peek_manifest(d: Path) -> Manifest | None:
    """The manifest of the index in ``d``, or None when there is no readable index there."""
    if not (d / DB_NAME).is_file():
        return None
    try:
        conn = _connect(d / DB_NAME)
    except sqlite3.Error:
        return None
    try:
        with _snapshot(conn, d):
            return _read_manifest(conn, d)
    except (QAError, sqlite3.Error):
        return None
    finally:
        conn.close()


def _set_setting(conn: sqlite3.Connection, index_dir: Path, key: str, value: Any) -> None:
    """Save one tunable in the manifest's settings, in its own transaction."""
    json.dumps(value)  # fail before touching the database
    try:
        conn.execute("BEGIN IMMEDIATE")
        m = _read_manifest(conn, index_dir)
        settings = {**m.settings, key: value}
        _write_manifest(conn, {"settings": settings, "updated_at": _now()})
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback(conn)
        if isinstance(exc, sqlite3.Error):
            raise _wrap_error(index_dir, exc) from exc
        raise


def _check_embedder(m: Manifest, index_dir: Path, name: str, dim: int | None) -> None:
    """Raise IndexMismatchError unless ``m`` was built with embedder ``name`` (and ``dim``, if given)."""
    if m.embedder != name or (dim is not None and m.dim != dim):
        shown = f"{name!r}" if dim is None else f"{name!r} (dim {dim})"
        raise IndexMismatchError(
            f"the index in {index_dir}/ was built with embedder {m.embedder!r} (dim {m.dim}), but "
            f"{shown} is configured; {_rebuild_hint(index_dir)}"
        )


def _check_chunking(m: Manifest, index_dir: Path, chunk_size: int, chunk_overlap: int) -> None:
    """Raise IndexMismatchError unless ``m`` was chunked with these settings."""
    if (m.chunk_size, m.chunk_overlap) != (chunk_size, chunk_overlap):
        raise IndexMismatchError(
            f"the index in {index_dir}/ was chunked with size {m.chunk_size} and overlap {m.chunk_overlap}, "
            f"not {chunk_size} and {chunk_overlap}; to chunk every document again with the new "
            f"settings, add --rebuild (`qa index --rebuild --index-dir {index_dir} ...`)"
        )


def _file_size(path: Path) -> int:
    """Bytes in ``path``, 0 if it is absent: a writer may commit a new generation and remove this one at any time."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _index_stats(index_dir: Path, m: Manifest) -> IndexStats:
    """What ``qa index`` reports: the manifest's counts and settings, and the files' sizes now."""
    db = index_dir / DB_NAME
    sqlite_bytes = _file_size(db) + _file_size(db.with_name(DB_NAME + "-wal"))
    return IndexStats(
        index_dir=str(index_dir),
        documents=m.n_documents,
        chunks=m.n_chunks,
        embedder=m.embedder,
        dim=m.dim,
        chunk_size=m.chunk_size,
        chunk_overlap=m.chunk_overlap,
        generation=m.generation,
        sqlite_bytes=sqlite_bytes,
        faiss_bytes=_file_size(index_dir / m.faiss_file),
        settings=dict(m.settings),
        created_at=m.created_at,
        updated_at=m.updated_at,
        versions=dict(m.versions),
        dense_index=m.dense_index,
    )
