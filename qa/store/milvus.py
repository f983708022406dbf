"""Milvus as the passage store (pymilvus): documents, passages with their offsets, dense vectors and BM25 in one
Milvus database, so that several ``qa`` processes on several machines can share one index.

Chosen by the index's location (:func:`is_milvus_location`): a ``*.db`` file is Milvus Lite (embedded, what the
tests use), ``http://host:19530`` a Milvus server or cluster (token from ``QA_MILVUS_TOKEN``). Four collections,
named with the prefix ``qa_``:

- ``qa_manifest``: the same manifest as a local index (format version, embedder and dim, chunking, counts, saved
  settings), one row per key;
- ``qa_documents``: one row per document (source, title, sha256, counts): the *marker* that the document is whole;
- ``qa_parts``: the document's text in parts of :data:`PART_CHARS` characters (Milvus strings are at most 64 KiB);
- ``qa_passages``: each passage's offsets, stored text, model view, dense vector and a BM25 sparse vector that
  Milvus computes (its BM25 function) from the view's words, stemmed and without stop words by :func:`bm25_text`
  (Milvus Lite's analyzer has no stemmer, so the stemming is done here, the same for every Milvus).

What it guarantees instead of one atomic change: Milvus has no transaction across collections, so a change is
made document by document, in an order that readers and the next writer can rely on. A document's marker row is
deleted first and written last; its passages and parts go in between. Readers only use passages whose document
has a marker, so they never cite a half-written document (they may see a batch half-applied: some documents
new, others old). Before it starts, a writer records the documents it is about to touch in the manifest
(``pending``); the next writer deletes what a killed one left of them. One writer at a time is the rule, as for a
local index, but Milvus cannot enforce it: a writer records a lease (``writer``: host, pid, time) that another
``qa index`` respects for :data:`LEASE_S` seconds; two writers racing within a second are not prevented.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexLockedError, IndexMismatchError, QAError
from qa.schema import Chunk, Document
from qa.store.manifest import FORMAT_VERSION, IndexStats, Manifest, _now
from qa.store.milvus_client import connect, release
from qa.store.milvus_manifest import raw_manifest, read_manifest, write_manifest
from qa.store.milvus_schema import (
    PAGE,
    PREFIX,
    bm25_text,
    create_collections,
    document_rows,
    ids_filter,
)
from qa.store.rows import ScoredChunk, document_sha256

log = logging.getLogger(__name__)

LEASE_S = 600.0  # a writer's lease lasts this long without renewal (each batch renews it)


def _versions() -> dict[str, str]:
    import pymilvus

    return {"pymilvus": str(getattr(pymilvus, "__version__", "?")), "python": platform.python_version()}


class MilvusStore:
    """The passage store in Milvus; the same methods as :class:`~qa.store.PassageStore` that retrieval, indexing
    and answering use. Open it with :meth:`open`, :meth:`open_for_write` or :meth:`open_or_create`."""

    def __init__(self, uri: str, client: Any, *, readonly: bool) -> None:
        """Use the class methods; this wraps a connected client."""
        self.uri = uri
        self._client = client
        self._readonly = readonly
        self._manifest: Manifest | None = None
        self._lease = False

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, uri: str | Path, *, readonly: bool = True, lock_timeout: float = 0.0) -> MilvusStore:
        """Open an existing index; IndexNotFoundError if the database holds none."""
        def setup(store: MilvusStore) -> None:
            store._manifest = store._read_manifest()
            if not readonly:
                store._take_lease(lock_timeout)
                store._recover()

        return cls._opened(str(uri), create=False, readonly=readonly, setup=setup)

    @classmethod
    def _opened(cls, uri: str, *, create: bool, readonly: bool, setup: Any) -> MilvusStore:
        """A connected store with its collections loaded and ``setup(store)`` done; closed again if that fails."""
        store = cls(uri, connect(uri, create=create), readonly=readonly)
        try:
            store._load()
            setup(store)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open_for_write(cls, uri: str | Path, *, lock_timeout: float = 0.0) -> MilvusStore:
        """Open an existing index to change it."""
        return cls.open(uri, readonly=False, lock_timeout=lock_timeout)

    @classmethod
    def peek_manifest(cls, uri: str | Path) -> Manifest | None:
        """The manifest of the index at ``uri``, or None when there is no readable one."""
        try:
            with cls.open(uri) as store:
                return store.manifest
        except QAError:
            return None

    @classmethod
    def open_or_create(
        cls, uri: str | Path, *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int,
        lock_timeout: float = 0.0,
    ) -> MilvusStore:
        """Open the index at ``uri`` for writing, creating it (empty) when there is none.

        Raises:
            IndexMismatchError: it exists and was built with another embedder or chunking.
        """
        def setup(store: MilvusStore) -> None:
            if not store._client.has_collection(PREFIX + "manifest"):
                store._create(embedder=embedder, dim=dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
            store._manifest = m = store._read_manifest()
            store.check_embedder(embedder, dim)
            if (m.chunk_size, m.chunk_overlap) != (chunk_size, chunk_overlap):
                raise IndexMismatchError(
                    f"the index at {uri} was chunked with size {m.chunk_size} and overlap {m.chunk_overlap}, not "
                    f"{chunk_size} and {chunk_overlap}; add --rebuild to chunk every document again"
                )
            store._take_lease(lock_timeout)
            store._recover()

        return cls._opened(str(uri), create=True, readonly=False, setup=setup)

    @classmethod
    def open_for_rebuild(cls, uri: str | Path, *, lock_timeout: float = 0.0, **spec: Any) -> MilvusStore:
        """Open the index at ``uri`` for a rebuild whatever it was built with (``apply(replace_all=...)`` then
        empties it); an unreadable or missing one is created afresh with ``spec``."""
        def setup(store: MilvusStore) -> None:
            try:
                store._manifest = store._read_manifest()
            except QAError:
                store._drop_all()
                store._create(**{k: spec[k] for k in ("embedder", "dim", "chunk_size", "chunk_overlap")})
                store._manifest = store._read_manifest()
            store._take_lease(lock_timeout)

        return cls._opened(str(uri), create=True, readonly=False, setup=setup)

    def close(self) -> None:
        """Give up the writer's lease and the connection."""
        if self._client is None:
            return
        try:
            if self._lease:
                self._write_manifest({"writer": None})
        except Exception as exc:  # noqa: BLE001 - closing must not fail; the lease expires anyway
            log.warning("could not release the writer lease of %s: %s", self.uri, exc)
        finally:
            self._lease = False
            try:
                self._client.close()
            finally:
                self._client = None
                release(self.uri)

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def index_dir(self) -> str:
        """Where the index is (its URI); the name is the local store's."""
        return self.uri

    @property
    def readonly(self) -> bool:
        """True when opened for reading only."""
        return self._readonly

    @property
    def manifest(self) -> Manifest:
        """How the index was built (read when opened, refreshed after each change)."""
        assert self._manifest is not None  # noqa: S101 - set by every constructor path
        return self._manifest

    # ---- schema and manifest -------------------------------------------------------------------
    def _create(self, *, embedder: str, dim: int, chunk_size: int, chunk_overlap: int) -> None:
        create_collections(self._client, dim=dim)
        now = _now()
        self._write_manifest({
            "format_version": FORMAT_VERSION, "embedder": embedder, "dim": dim, "chunk_size": chunk_size,
            "chunk_overlap": chunk_overlap, "generation": 0, "faiss_file": "", "faiss_sha256": "", "faiss_bytes": 0,
            "n_documents": 0, "n_chunks": 0, "next_rowid": 1, "created_at": now, "updated_at": now,
            "versions": _versions(), "settings": {}, "pending": [], "writer": None,
        })

    def _load(self) -> None:
        """Load the collections into memory (a database opened again holds them released)."""
        for name in ("manifest", "documents", "parts", "passages"):
            if self._client.has_collection(PREFIX + name):
                self._client.load_collection(PREFIX + name)

    def _drop_all(self) -> None:
        for name in ("passages", "parts", "documents", "manifest"):
            if self._client.has_collection(PREFIX + name):
                self._client.drop_collection(PREFIX + name)

    def _raw_manifest(self) -> dict[str, Any]:
        return raw_manifest(self._client, self.uri)

    def _read_manifest(self) -> Manifest:
        return read_manifest(self._client, self.uri)

    def _write_manifest(self, values: dict[str, Any]) -> None:
        write_manifest(self._client, self.uri, values)

    def check_embedder(self, name: str, dim: int | None = None) -> None:
        """Raise IndexMismatchError unless the index was built with embedder ``name`` (and ``dim``, if given)."""
        m = self.manifest
        if m.embedder != name or (dim is not None and m.dim != dim):
            raise IndexMismatchError(
                f"the index at {self.uri} was built with embedder {m.embedder!r} (dim {m.dim}), but {name!r} is "
                f"configured; rebuild it with `qa index --rebuild PATH --index-uri {self.uri}`"
            )

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A tunable saved in the manifest (``qa eval --save-threshold``), or ``default``."""
        return self.manifest.settings.get(key, default)

    def set_setting(self, key: str, value: Any) -> None:
        """Save one tunable in the manifest's settings."""
        self._require_writer()
        settings = {**self._read_manifest().settings, key: value}
        self._write_manifest({"settings": settings, "updated_at": _now()})
        self._manifest = self._read_manifest()

    # ---- the writer's lease and recovery -------------------------------------------------------
    def _take_lease(self, lock_timeout: float) -> None:
        deadline = time.monotonic() + lock_timeout
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        while True:
            holder = self._raw_manifest().get("writer")
            if not holder or time.time() - float(holder.get("time", 0)) > LEASE_S or (
                    holder.get("host"), holder.get("pid")) == (me["host"], me["pid"]):
                break
            if time.monotonic() >= deadline:
                raise IndexLockedError(
                    f"another qa process ({holder.get('host')}, pid {holder.get('pid')}) is writing to the index at "
                    f"{self.uri}; wait for it to finish (or use --wait SECONDS)"
                )
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        self._write_manifest({"writer": {**me, "time": time.time()}})
        self._lease = True

    def _recover(self) -> None:
        """Delete what a killed writer left of the documents it was changing (those without a marker row)."""
        pending = self._raw_manifest().get("pending") or []
        if not pending:
            return
        have = {r["doc_id"] for r in self._query("documents", ids_filter("doc_id", pending), ["doc_id"])}
        orphans = [d for d in pending if d not in have]
        if orphans:
            log.info("index %s: removing what an interrupted write left of %d document(s)", self.uri, len(orphans))
            self._client.delete(PREFIX + "passages", filter=ids_filter("doc_id", orphans))
            self._client.delete(PREFIX + "parts", filter=ids_filter("doc_id", orphans))
        self._write_manifest({"pending": []})
        self._refresh_counts()

    def _require_writer(self) -> None:
        if self._readonly:
            raise QAError(f"the index at {self.uri} was opened read-only")

    # ---- reading -------------------------------------------------------------------------------
    def _query(self, name: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row of collection ``name`` matching ``expr``, in pages."""
        rows: list[dict[str, Any]] = []
        it = self._client.query_iterator(PREFIX + name, batch_size=PAGE, filter=expr, output_fields=fields)
        try:
            while batch := it.next():
                rows.extend(batch)
        finally:
            it.close()
        return rows

    def _count(self, name: str) -> int:
        res = self._client.query(PREFIX + name, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    def document_hashes(self) -> dict[str, str]:
        """``{doc_id: sha256}`` of every whole document."""
        return {r["doc_id"]: r["sha256"] for r in self._query("documents", 'doc_id != ""', ["doc_id", "sha256"])}

    def document_summaries(self) -> list[dict[str, Any]]:
        """Per document, in doc_id order: ``doc_id``, ``title``, ``source``, ``chars`` and ``passages``."""
        rows = self._query("documents", 'doc_id != ""', ["doc_id", "title", "source", "n_chars", "n_chunks"])
        return [{"doc_id": r["doc_id"], "title": r["title"], "source": r["source"], "chars": int(r["n_chars"]),
                 "passages": int(r["n_chunks"])} for r in sorted(rows, key=lambda r: r["doc_id"])]

    def _documents(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = sorted(set(doc_ids))
        if not ids:
            return {}
        rows: list[dict[str, Any]] = []
        for i in range(0, len(ids), PAGE):  # a bounded lookup: one query a page, no iterator
            part = ids[i : i + PAGE]
            rows.extend(self._client.query(PREFIX + "documents", filter=ids_filter("doc_id", part),
                                           output_fields=["doc_id", "source", "title", "n_parts"], limit=len(part)))
        return {r["doc_id"]: r for r in rows}

    def get_document(self, doc_id: str) -> Document:
        """The stored document; KeyError if absent."""
        row = self._documents([doc_id]).get(doc_id)
        if row is None:
            raise KeyError(f"no document {doc_id!r} in index {self.uri}")
        parts = sorted(self._query("parts", ids_filter("doc_id", [doc_id]), ["n", "text"]), key=lambda r: r["n"])
        if len(parts) != int(row["n_parts"]):
            raise QAError(f"document {doc_id!r} in {self.uri} has {len(parts)} of its {row['n_parts']} parts")
        return Document(doc_id, "".join(p["text"] for p in parts), row["title"], row["source"])

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """The chunks of a document in order; [] if it has none or is absent."""
        if doc_id not in self._documents([doc_id]):
            return []
        rows = self._query("passages", ids_filter("doc_id", [doc_id]),
                           ["chunk_id", "doc_id", "ordinal", "char_start", "char_end", "text"])
        return [_chunk(r) for r in sorted(rows, key=lambda r: r["ordinal"])]

    def stats(self) -> IndexStats:
        """Counts, embedder, settings and times of the index; the size of a Milvus Lite one (a server's: 0)."""
        m = self._read_manifest()
        local = Path(self.uri)  # Milvus Lite: a folder of files; a server's sizes are its own business
        size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) if self.uri.endswith(".db") else 0
        return IndexStats(
            index_dir=self.uri, documents=m.n_documents, chunks=m.n_chunks, embedder=m.embedder, dim=m.dim,
            chunk_size=m.chunk_size, chunk_overlap=m.chunk_overlap, generation=m.generation, sqlite_bytes=size,
            faiss_bytes=0, settings=dict(m.settings), created_at=m.created_at, updated_at=m.updated_at,
            versions=dict(m.versions),
        )

    def _scored(self, hits: list[dict[str, Any]], scores: list[float]) -> list[ScoredChunk]:
        """Hits of whole documents only (a document being rewritten has no marker row), with their sources."""
        docs = self._documents(h["entity"]["doc_id"] for h in hits)
        return [ScoredChunk(int(h["id"]), _chunk(h["entity"]), s, docs[h["entity"]["doc_id"]]["source"])
                for h, s in zip(hits, scores, strict=True) if h["entity"]["doc_id"] in docs]

    _FIELDS = ["chunk_id", "doc_id", "ordinal", "char_start", "char_end", "text"]

    def search_dense(self, query_vec: np.ndarray, k: int) -> list[ScoredChunk]:
        """The ``k`` chunks whose vectors are closest to ``query_vec`` by cosine, best first."""
        if k < 0:
            raise ValueError(f"k must not be negative, got {k}")
        q = np.asarray(query_vec, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.manifest.dim:
            raise ValueError(f"query vector has {q.shape[0]} dimensions, the index {self.manifest.dim}")
        if k == 0:
            return []
        q = q / (np.linalg.norm(q) or 1.0)
        res = self._client.search(PREFIX + "passages", data=[q.tolist()], anns_field="vec", limit=k,
                                  output_fields=self._FIELDS, search_params={"metric_type": "IP"})
        hits = list(res[0]) if res else []
        return self._scored(hits, [float(h["distance"]) for h in hits])

    def search_bm25(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` chunks that best match the words of ``query`` by BM25, best first."""
        if k < 0:
            raise ValueError(f"k must not be negative, got {k}")
        words = bm25_text(query)
        if not words or k == 0:
            return []
        res = self._client.search(PREFIX + "passages", data=[words], anns_field="sparse", limit=k,
                                  output_fields=self._FIELDS, search_params={"metric_type": "BM25"})
        hits = list(res[0]) if res else []
        # Milvus reports BM25 as a distance to sort by; the score here is higher-is-better, as FTS5's negated bm25()
        return self._scored(hits, [abs(float(h["distance"])) for h in hits])

    def verify(self) -> None:
        """Check every document: its parts join to its length, its passages slice back out of it, no orphans."""
        docs = {r["doc_id"]: r for r in self._query("documents", 'doc_id != ""', ["doc_id", "n_chunks", "sha256"])}
        for doc_id, row in docs.items():
            doc = self.get_document(doc_id)
            if document_sha256(doc) != row["sha256"]:
                raise QAError(f"document {doc_id!r} in {self.uri} does not match its sha256")
            chunks = self.chunks_of(doc_id)
            if len(chunks) != int(row["n_chunks"]):
                raise QAError(f"document {doc_id!r} in {self.uri} has {len(chunks)} of its {row['n_chunks']} passages")
            for c in chunks:
                c.check(doc)
        orphans = {r["doc_id"] for r in self._query("passages", 'doc_id != ""', ["doc_id"])} - set(docs)
        if orphans and not (self._raw_manifest().get("pending")):
            raise QAError(f"{self.uri} holds passages of {len(orphans)} document(s) it does not list")

    # ---- writing -------------------------------------------------------------------------------
    def apply(
        self,
        upserts: Sequence[tuple[Document, Sequence[Chunk], np.ndarray]],
        deletes: Sequence[str],
        *,
        replace_all: dict[str, Any] | None = None,
    ) -> None:
        """Add or replace documents with their chunks and vectors, and delete others (see the module for what a
        change guarantees on Milvus). ``replace_all`` (a rebuild) empties the index first and builds it with
        those settings."""
        from qa.store import _crash_hook

        self._require_writer()
        if replace_all is not None:
            self._drop_all()
            self._create(**{k: replace_all[k] for k in ("embedder", "dim", "chunk_size", "chunk_overlap")})
            self._manifest = self._read_manifest()
            self._take_lease(0.0)
        dim = self.manifest.dim
        for doc, chunks, vectors in upserts:
            v = np.asarray(vectors)
            if v.ndim != 2 or v.shape != (len(chunks), dim):
                raise ValueError(
                    f"document {doc.doc_id!r}: vectors of shape {v.shape}, expected ({len(chunks)}, {dim})")
            for c in chunks:
                c.check(doc)
        touched = sorted({d.doc_id for d, _, _ in upserts} | set(deletes))
        if not touched:
            return
        self._write_manifest({"pending": touched, "writer": {"host": socket.gethostname(), "pid": os.getpid(),
                                                             "time": time.time()}})
        for i in range(0, len(touched), PAGE):
            ids = touched[i : i + PAGE]
            self._client.delete(PREFIX + "documents", filter=ids_filter("doc_id", ids))  # markers first
            self._client.delete(PREFIX + "passages", filter=ids_filter("doc_id", ids))
            self._client.delete(PREFIX + "parts", filter=ids_filter("doc_id", ids))
        if _crash_hook:
            _crash_hook("milvus_deleted")
        self._insert_documents([(d, c, np.asarray(v, dtype=np.float32)) for d, c, v in upserts], _now())
        if _crash_hook:
            _crash_hook("milvus_written")
        self._write_manifest({"pending": []})
        self._refresh_counts()

    def _insert_documents(self, upserts: Sequence[tuple[Document, Sequence[Chunk], np.ndarray]], now: str) -> None:
        """Write the documents' text parts and passages, then their markers (``documents`` rows): a passage is only
        cited once its document's marker is there, so a write stopped before the markers leaves nothing citable
        (and ``pending`` in the manifest for the next writer to clear). Rows go in pages of PAGE, across
        documents: Milvus takes one insert of a thousand rows in about the time of one of a single row."""
        from qa.store import _crash_hook

        parts_rows, passage_rows, markers = [], [], []
        for doc, chunks, vectors in upserts:
            parts, passages, marker = document_rows(doc, chunks, vectors, now)
            parts_rows += parts
            passage_rows += passages
            markers.append(marker)
        self._insert_pages("parts", parts_rows)
        self._insert_pages("passages", passage_rows)
        if _crash_hook:
            _crash_hook("milvus_passages_written")
        self._insert_pages("documents", markers)

    def _insert_pages(self, collection: str, rows: Sequence[dict]) -> None:
        for i in range(0, len(rows), PAGE):
            self._client.insert(PREFIX + collection, rows[i : i + PAGE])

    def _refresh_counts(self) -> None:
        m = self._read_manifest()
        self._write_manifest({
            "n_documents": self._count("documents"), "n_chunks": self._count("passages"),
            "generation": m.generation + 1, "updated_at": _now(),
        })
        self._manifest = self._read_manifest()


def _chunk(r: dict[str, Any]) -> Chunk:
    return Chunk(r["chunk_id"], r["doc_id"], int(r["char_start"]), int(r["char_end"]), r["text"])
