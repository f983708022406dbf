"""What retrieval, indexing and answering need of a passage store: the one protocol both backends implement.

- :class:`~qa.store.PassageStore`: a folder (SQLite rows + FTS5 for BM25 + FAISS generations), the default;
- :class:`~qa.store.milvus.MilvusStore`: a Milvus database (Milvus Lite file or server), ``--index-uri``.

:func:`qa.store.open_index` and :func:`qa.store.open_or_create_index` pick one by the index's location.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from qa.schema import Chunk, Document
from qa.store.manifest import IndexStats, Manifest
from qa.store.rows import ScoredChunk


@runtime_checkable
class Store(Protocol):
    """A passage store, open for reading (or writing, when opened so)."""

    @property
    def index_dir(self) -> Path | str:
        """Where the index is: a folder, or a Milvus URI."""
        ...

    @property
    def manifest(self) -> Manifest:
        """How the index was built: format version, embedder and dim, chunking, counts, saved settings."""
        ...

    def check_embedder(self, name: str, dim: int | None = None) -> None:
        """Raise IndexMismatchError unless the index was built with this embedder (and dim)."""
        ...

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A tunable saved in the index (``min_score``), or ``default``."""
        ...

    def set_setting(self, key: str, value: Any) -> None:
        """Save a tunable in the index (a writer only)."""
        ...

    def document_hashes(self) -> dict[str, str]:
        """``{doc_id: sha256}`` of every whole document: what incremental indexing compares."""
        ...

    def document_summaries(self) -> list[dict[str, Any]]:
        """Per document: ``doc_id``, ``title``, ``source``, ``chars``, ``passages``."""
        ...

    def get_document(self, doc_id: str) -> Document:
        """The stored document, whose text every offset indexes; KeyError if absent."""
        ...

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """A document's passages in order."""
        ...

    def stats(self) -> IndexStats:
        """Counts, sizes, embedder, settings and times."""
        ...

    def search_dense(self, query_vec: np.ndarray, k: int) -> list[ScoredChunk]:
        """The ``k`` passages nearest to a query vector by cosine, best first."""
        ...

    def search_bm25(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` passages that best match the query's words by BM25, best first."""
        ...

    def verify(self) -> None:
        """Check the whole index; raise a QAError naming the first problem."""
        ...

    def apply(
        self,
        upserts: Sequence[tuple[Document, Sequence[Chunk], np.ndarray]],
        deletes: Sequence[str],
        *,
        replace_all: dict[str, Any] | None = None,
    ) -> None:
        """Add or replace documents with their passages and vectors, delete others (a writer only)."""
        ...

    def close(self) -> None:
        """Release the store (and a writer's lock or lease)."""
        ...
