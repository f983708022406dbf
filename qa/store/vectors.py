"""FAISS vectors: one file per generation, written beside the current one, loaded and checked against the rows."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexCorruptError
from qa.schema import Chunk, Document
from qa.store.files import DB_NAME, _checkpoint, _fsync_dir, _rebuild_hint
from qa.store.manifest import Manifest


class _VectorsGone(Exception):
    """The FAISS file named by the database vanished (a writer replaced it); read again."""


def _faiss_name(generation: int) -> str:
    """The file that holds a generation's vectors."""
    return f"vectors.{generation}.faiss"


def _new_faiss_index(dim: int) -> Any:
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _lists_for(n: int) -> int:
    """IVF lists for n vectors: about 4 * sqrt(n), at least 16 (faiss' guideline is 4-16 * sqrt(n)), at most n
    (k-means needs a point a list)."""
    return max(1, min(n, max(16, int(4 * np.sqrt(n)))))


def nprobe_for(nlist: int) -> int:
    """Lists an IVF search probes: a fixed share of them (ANN_PROBE_SHARE), at least ANN_MIN_NPROBE, at most all,
    so that recall stays about the same as the index grows (its lists grow as sqrt(n))."""
    from qa.config import ANN_MIN_NPROBE, ANN_PROBE_SHARE

    return max(1, min(nlist, max(ANN_MIN_NPROBE, math.ceil(ANN_PROBE_SHARE * nlist))))


def describe_index(index: Any) -> str:
    """What kind of dense search an index does: "exact (flat)" or "approximate (IVF n lists, nprobe p)"."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return "exact (flat)"
    return f"approximate (IVF {ivf.nlist} lists, nprobe {nprobe_for(ivf.nlist)})"


def _ids_of(index: Any) -> np.ndarray:
    """The ids an index holds (an IDMap2's map, or the ids in an IVF index's lists), unsorted."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).astype(np.int64)
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _maybe_approximate(index: Any, dim: int) -> Any:
    """``index`` as an IVF index when it has grown past ANN_MIN_PASSAGES (or to 4 times the size its lists were
    trained for), as a flat one when it shrank below half of that; else ``index`` itself. Same ids and vectors.

    The IVF index keeps its ids in its lists (add_with_ids, remove_ids) and a hash-table direct map, so that its
    vectors can be read back when it is trained again.
    """
    import faiss

    from qa.config import ANN_MIN_PASSAGES

    n = int(index.ntotal)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None and n < ANN_MIN_PASSAGES:
        return index
    if ivf is not None and n >= ANN_MIN_PASSAGES // 2 and _lists_for(n) < 2 * ivf.nlist:
        return index  # its lists still fit: vectors are added to them as they come
    if ivf is None:
        vectors = index.index.reconstruct_n(0, n) if n else np.zeros((0, dim), np.float32)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)  # in the flat index's row order
    else:
        ids = _ids_of(index)
        vectors = np.vstack([ivf.reconstruct(int(i)) for i in ids]) if n else np.zeros((0, dim), np.float32)
    if n < ANN_MIN_PASSAGES:  # shrunk well below the threshold: exact search again
        flat = _new_faiss_index(dim)
        flat.add_with_ids(vectors, ids)
        return flat
    nlist = _lists_for(n)
    approx = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)  # a fixed sample: the same vectors give the same lists
    approx.train(vectors[rng.choice(n, size=min(n, 64 * nlist), replace=False)])
    approx.set_direct_map_type(faiss.DirectMap.Hashtable)
    approx.add_with_ids(vectors, ids)
    return approx


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


def _file_values(faiss_file: str, data: bytes) -> dict[str, Any]:
    """The manifest keys that name a generation's file and let readers check it."""
    return {"faiss_file": faiss_file, "faiss_sha256": hashlib.sha256(data).hexdigest(), "faiss_bytes": len(data)}


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


def _prepare_vectors(doc: Document, vectors: Any, n_chunks: int, dim: int) -> np.ndarray:
    """Check one document's vectors (float32[n_chunks, dim], finite) and return an L2-normalised copy."""
    import faiss

    if not isinstance(vectors, np.ndarray) or vectors.dtype != np.float32:
        got = vectors.dtype if isinstance(vectors, np.ndarray) else type(vectors).__name__
        raise TypeError(f"vectors of document {doc.doc_id!r} must be a float32 numpy array, got {got}")
    if vectors.shape != (n_chunks, dim):
        raise ValueError(
            f"vectors of document {doc.doc_id!r} have shape {vectors.shape}, "
            f"expected ({n_chunks}, {dim}): one row per chunk"
        )
    if not np.isfinite(vectors).all():
        raise ValueError(f"vectors of document {doc.doc_id!r} have NaN or infinite values")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    if len(vectors):
        faiss.normalize_L2(vectors)  # inner product = cosine, whatever the embedder returned
    return vectors


def _next_index(
    base: Any,
    dim: int,
    old_rowids: Sequence[int],
    prepared: Sequence[tuple[Document, list[Chunk], np.ndarray]],
    next_rowid: int,
) -> tuple[Any, list[tuple[int, Document, int, Chunk]], int]:
    """The next generation's index: ``base`` (or an empty one if None) less ``old_rowids``, plus new vectors.

    New chunks get rowids from ``next_rowid`` on. Returns the index, the new chunk rows
    ``(rowid, doc, ordinal, chunk)`` and the next free rowid.
    """
    import faiss

    new_rows: list[tuple[int, Document, int, Chunk]] = []
    new_index = _new_faiss_index(dim) if base is None else faiss.clone_index(base)
    if old_rowids:
        new_index.remove_ids(np.asarray(old_rowids, dtype=np.int64))
    for doc, chunks, vectors in prepared:
        ids = np.arange(next_rowid, next_rowid + len(chunks), dtype=np.int64)
        if len(chunks):
            new_index.add_with_ids(vectors, ids)
        new_rows.extend((int(i), doc, n, c) for n, (i, c) in enumerate(zip(ids, chunks, strict=True)))
        next_rowid += len(chunks)
    return _maybe_approximate(new_index, dim), new_rows, next_rowid


def _load_index(index_dir: Path, m: Manifest) -> Any:
    """Read the FAISS file ``m`` names, checking its size, checksum, type and dimension.

    Raises:
        _VectorsGone: the file is missing (a writer may just have replaced it).
        IndexCorruptError: it is unreadable or damaged.
    """
    path = index_dir / m.faiss_file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _VectorsGone from None
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {path} ({exc}); {_rebuild_hint(index_dir)}") from exc
    if len(data) != m.faiss_bytes or hashlib.sha256(data).hexdigest() != m.faiss_sha256:
        raise IndexCorruptError(
            f"{path} is damaged: its size or checksum disagrees with {DB_NAME} "
            f"({len(data)} bytes, expected {m.faiss_bytes}); {_rebuild_hint(index_dir)}"
        )
    import faiss

    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except Exception as exc:  # noqa: BLE001 - faiss raises RuntimeError with C++ text
        raise IndexCorruptError(f"{path} is not a readable FAISS index; {_rebuild_hint(index_dir)}") from exc
    if not isinstance(index, (faiss.IndexIDMap2, faiss.IndexIVFFlat)) or index.d != m.dim:
        raise IndexCorruptError(
            f"{path} is not an IndexIDMap2 or IndexIVFFlat of dimension {m.dim}; {_rebuild_hint(index_dir)}"
        )
    return index


def _check_ids(index: Any, rowids: Sequence[int], m: Manifest, index_dir: Path) -> None:
    """FAISS ids must be exactly the chunk rowids: row alignment is what makes search results right."""

    path = index_dir / m.faiss_file
    expected = np.array(rowids, dtype=np.int64)
    ids = np.sort(_ids_of(index))
    if index.ntotal != len(expected) or not np.array_equal(ids, expected) or m.n_chunks != len(expected):
        raise IndexCorruptError(
            f"{path} holds {index.ntotal} vectors whose ids disagree with the {len(expected)} chunk rows "
            f"of {DB_NAME}; {_rebuild_hint(index_dir)}"
        )


def _unit_query(query_vec: np.ndarray, dim: int) -> np.ndarray:
    """``query_vec`` as a float32[1, dim] row of length 1 (unless it is all zeros); ValueError if unusable."""
    q = np.asarray(query_vec, dtype=np.float32).reshape(1, -1)
    if q.shape[1] != dim:
        raise ValueError(f"query vector has dimension {q.shape[1]}, the index {dim}")
    if not np.isfinite(q).all():
        raise ValueError("query vector has NaN or infinite values")
    norm = float(np.linalg.norm(q))
    if norm > 0:
        q = q / norm
    return q


def _search(index: Any, q: np.ndarray, k: int, index_dir: Path) -> list[tuple[int, float]]:
    """``(rowid, cosine)`` of the ``k`` nearest vectors to ``q``, best first; [] for an empty index."""
    n = int(index.ntotal)
    if n == 0:
        return []
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = nprobe_for(ivf.nlist)
    try:
        with _one_faiss_thread():
            scores, ids = index.search(q, min(k, n))
    except Exception as exc:  # noqa: BLE001 - faiss raises RuntimeError with C++ text
        raise IndexCorruptError(f"FAISS search failed on {index_dir}: {exc}") from exc
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
