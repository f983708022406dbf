"""The heavy part of indexing on Ray Data: read, chunk and embed documents on a local Ray or a cluster.

``qa index PATH... --ray [ADDRESS]`` hands the files to Ray: one task per file reads it (the same
:func:`qa.loader.read_document`) and chunks it (the same :func:`qa.chunking.chunk_document`, counted in the embedder's
own tokenizer) when its content hash differs from the index's; actors, each holding the embedder once, embed the
passages' model views in batches. The driver gets every document, its passages and their vectors back and writes
them into the index (either backend) in the usual batches, so the index is the one the single process builds: same
passages, vectors within float tolerance (tested).

Ray is imported only here, and only by ``--ray``: ``pip install -e ".[ray]"``.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import Settings
from qa.errors import DocumentError, QAError
from qa.schema import Chunk, Document

log = logging.getLogger(__name__)

EMBED_BATCH_DOCS = 16  # documents per embedding batch (an actor encodes all their passages at once)


@dataclass(frozen=True, slots=True)
class RayResult:
    """What Ray produced: every readable document, the passages and vectors of those to (re)index, the failures."""

    documents: tuple[Document, ...]
    prepared: dict[str, tuple[list[Chunk], np.ndarray]]  # doc_id -> (chunks, float32[n, dim]) of changed documents
    errors: tuple[DocumentError, ...]  # files that could not be read
    encodings: tuple[str, ...]  # "path: read as cp1252"
    workers: int  # CPUs Ray had


class _Chunker:
    """A Ray task's state: the embedder's tokenizer (loaded once per worker), to count passage tokens."""

    def __init__(self, settings: dict[str, Any], known: dict[str, str], max_file_mb: float) -> None:
        from qa import factory

        self.settings = Settings(**settings)
        self.embedder = factory.make_embedder(self.settings)
        self.known = known
        self.max_file_mb = max_file_mb

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from qa.chunking import chunk_document
        from qa.indexing import text_digest
        from qa.loader import read_document

        try:
            loaded = read_document(Path(row["path"]), row["doc_id"], max_file_mb=self.max_file_mb)
        except DocumentError as err:
            return {"payload": json.dumps({"error": [err.path, err.reason]})}
        doc = loaded.document
        chunks = None
        if self.known.get(doc.doc_id) != text_digest(doc.text):
            chunks = [asdict(c) for c in chunk_document(
                doc, size=self.settings.chunk_size, overlap=self.settings.chunk_overlap,
                count_tokens=self.embedder.count_tokens,
            )]
        encoding = loaded.encoding if loaded.encoding not in (None, "utf-8") else None
        # one JSON string a row: Arrow would otherwise guess column types block by block (None vs list)
        return {"payload": json.dumps({"doc": doc.to_dict(), "encoding": encoding, "chunks": chunks},
                                      ensure_ascii=False)}


class _Embed:
    """A Ray actor: the embedder, loaded once, embedding the model views of a batch of documents' passages."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from qa import factory

        self.embedder = factory.make_embedder(Settings(**settings))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from qa.modeltext import model_view

        rows = [json.loads(p) for p in batch["payload"]]
        texts, owners = [], []
        for i, row in enumerate(rows):
            for c in row.get("chunks") or ():
                texts.append(model_view(c["text"], row["doc"]["source"]).text)
                owners.append(i)
        vectors = self.embedder.encode_passages(texts) if texts else np.zeros((0, 1), np.float32)
        per_row: list[list[np.ndarray]] = [[] for _ in rows]
        for owner, v in zip(owners, vectors, strict=True):
            per_row[owner].append(np.asarray(v, dtype=np.float32))
        blobs = [np.stack(v).astype(np.float32).tobytes() if v else b"" for v in per_row]
        return {"payload": batch["payload"], "vectors": np.array(blobs, dtype=object)}


def embed_files_with_ray(
    files: Sequence[tuple[Path, str]],
    settings: Settings,
    *,
    known: dict[str, str],
    address: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RayResult:
    """Read, chunk and embed ``files`` (``(path, doc_id)``) on Ray; documents whose hash is in ``known`` are read
    but neither chunked nor embedded.

    Args:
        files: the document files, as :func:`qa.discovery.scan_document_files` lists them.
        settings: models and chunking (sent to the workers).
        known: ``{doc_id: sha256}`` of the index's documents.
        address: a Ray cluster's address (``ray://host:10001``, ``auto``); None starts a local Ray.
        progress: called as ``progress("embed", documents_done, documents)``.
    """
    try:
        import ray
    except ImportError as exc:
        raise QAError("--ray needs Ray Data: pip install 'qa[ray]' (ray[data])") from exc

    # Ray Data reports each operator's plan, concurrency hints and progress; qa reports its own progress
    logging.getLogger("ray").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"ray\..*")
    started = not ray.is_initialized()
    if started:
        # a local Ray gives its raylet 30 s (fixed) to register; on a loaded machine that can run out once
        for attempt in range(1 if address else 2):
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING, configure_logging=False)
                break
            except Exception as exc:  # noqa: BLE001 - a bad address or an unreachable cluster, named
                ray.shutdown()
                if attempt == (0 if address else 1):
                    raise QAError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from None
                log.warning("a local Ray did not start (%s); trying once more", exc)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        spec = {k: v for k, v in asdict(settings).items()}
        rows = [{"path": str(p), "doc_id": d} for p, d in files]
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(1, workers * 4)) or 1)
        ds = ds.map(_Chunker, fn_constructor_kwargs={"settings": spec, "known": known,
                                                     "max_file_mb": settings.max_file_mb}, concurrency=workers)
        ds = ds.map_batches(_Embed, fn_constructor_kwargs={"settings": spec}, batch_size=EMBED_BATCH_DOCS,
                            batch_format="numpy", concurrency=workers)
        documents, prepared, errors, encodings = [], {}, [], []
        done = 0
        for out in ds.iter_rows():
            done += 1
            if progress:
                progress("embed", done, len(rows))
            row = json.loads(out["payload"])
            if "error" in row:
                errors.append(DocumentError(str(row["error"][0]), str(row["error"][1])))
                continue
            doc = Document.from_dict(row["doc"])
            documents.append(doc)
            if row["encoding"]:
                encodings.append(f"{doc.source}: read as {row['encoding']}")
            if row["chunks"] is not None:
                chunks = [Chunk(**c) for c in row["chunks"]]
                vectors = np.frombuffer(out["vectors"], dtype=np.float32).reshape(len(chunks), -1)
                prepared[doc.doc_id] = (chunks, vectors.copy())
        documents.sort(key=lambda d: d.doc_id)
        return RayResult(tuple(documents), prepared, tuple(errors), tuple(sorted(encodings)), workers)
    finally:
        if started:
            ray.shutdown()
