"""Wiring only: build_index (load, chunk, embed, store) and Assistant (retrieve, then read)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from qa.config import Settings
from qa.errors import DocumentError, EmptyCorpusError, QuestionError
from qa.schema import Document, Hit, QAResult

log = logging.getLogger(__name__)

#: Longest question accepted, in characters.
MAX_QUESTION_CHARS = 2000

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What one indexing run did."""

    index_dir: str
    documents: int  # documents in the index after the run
    passages: int  # passages in the index after the run
    added: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[str, ...]  # "path: reason" of each unreadable file
    embedded_passages: int
    seconds: float


def text_digest(text: str) -> str:
    """Content hash that decides whether a document changed."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def make_embedder(settings: Settings):
    """The embedder the settings name (the packaged all-MiniLM-L6-v2 by default)."""
    from qa.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(settings.embedder_name, settings.embedder_path, device=settings.device)


def build_index(
    paths: Sequence[str | Path],
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    prune: bool = False,
    progress: Progress | None = None,
    on_skip: Callable[[DocumentError], None] | None = None,
    embedder=None,
) -> IndexReport:
    """Index files and folders incrementally: only new or changed documents are embedded.

    Args:
        paths: files or folders of .txt, .md, .html and .pdf documents.
        index_dir: the index folder (default: ``settings.index_dir``).
        settings: chunking, models, and how to treat unreadable files.
        prune: also remove indexed documents whose source file is gone.
        progress: called as ``progress(stage, done, total)``.
        on_skip: called with each unreadable file that is skipped.
        embedder: an Embedder to use instead of the one the settings name (tests).

    Returns:
        What was added, updated, left alone, removed and skipped.
    """
    from qa.chunking import chunk_document
    from qa.loader import find_document_files, load_document
    from qa.store import PassageStore

    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    index_dir = Path(index_dir if index_dir is not None else settings.index_dir)
    files = find_document_files(paths)
    docs: list[Document] = []
    skipped: list[str] = []
    for i, (path, doc_id) in enumerate(files):
        try:
            docs.append(load_document(path, doc_id, max_file_mb=settings.max_file_mb))
        except DocumentError as err:
            if settings.on_error == "stop":
                raise
            skipped.append(str(err))
            if on_skip is not None:
                on_skip(err)
        if progress:
            progress("read", i + 1, len(files))
    embedder = embedder or make_embedder(settings)
    with PassageStore.open_or_create(
        index_dir,
        embedder=embedder.model_name,
        dim=embedder.dim,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
    ) as store:
        if not docs and not store.document_hashes():
            raise EmptyCorpusError(f"no readable documents in {', '.join(map(str, paths))}")
        known = store.document_hashes()
        todo = [d for d in docs if known.get(d.doc_id) != text_digest(d.text)]
        chunked = []
        for i, doc in enumerate(todo):
            chunked.append((doc, chunk_document(
                doc, size=settings.chunk_size, overlap=settings.chunk_overlap, count_tokens=embedder.count_tokens
            )))
            if progress:
                progress("chunk", i + 1, len(todo))
        texts = [c.text for _, chunks in chunked for c in chunks]
        vectors = embedder.encode_passages(texts, progress=(lambda n: progress("embed", n, len(texts))) if progress else None)
        upserts, pos = [], 0
        for doc, chunks in chunked:
            upserts.append((doc, chunks, vectors[pos : pos + len(chunks)]))
            pos += len(chunks)
        seen = {d.doc_id for d in docs}
        removed = []
        if prune:
            removed = [
                d for d in known if d not in seen and not Path(store.get_document(d).source).exists()
            ]
        if upserts or removed:
            store.apply(upserts, removed)
        stats = store.stats()
    return IndexReport(
        index_dir=str(index_dir),
        documents=stats.documents,
        passages=stats.chunks,
        added=tuple(d.doc_id for d in todo if d.doc_id not in known),
        updated=tuple(d.doc_id for d in todo if d.doc_id in known),
        unchanged=tuple(d.doc_id for d in docs if known.get(d.doc_id) == text_digest(d.text)),
        removed=tuple(removed),
        skipped=tuple(skipped),
        embedded_passages=len(texts),
        seconds=time.perf_counter() - t0,
    )


def remove_documents(doc_ids: Sequence[str], index_dir: str | Path | None = None) -> list[str]:
    """Remove documents from an index; returns the ids that were there (unknown ids are ignored)."""
    from qa.store import PassageStore

    index_dir = Path(index_dir if index_dir is not None else Settings.from_env().index_dir)
    with PassageStore.open_for_write(index_dir) as store:
        present = [d for d in doc_ids if d in store.document_hashes()]
        if present:
            store.apply([], present)
    return present


class Assistant:
    """Answers questions over an index: retrieve passages, then read answer spans out of them."""

    def __init__(self, retriever, reader, settings: Settings, store=None) -> None:
        """Takes ready-made parts, so tests can pass fakes; see :meth:`open` for the usual way."""
        self.retriever = retriever
        self.reader = reader
        self.settings = settings
        self.store = store

    @classmethod
    def open(cls, index_dir: str | Path | None = None, settings: Settings | None = None, **overrides) -> Assistant:
        """An assistant over the index in ``index_dir`` with the models its manifest names.

        Precedence: defaults < the index's manifest and saved settings < ``settings``/``overrides``.
        """
        from qa.reader import TransformersReader
        from qa.retriever import Retriever
        from qa.store import PassageStore

        settings = (settings or Settings.from_env()).merge(**overrides)
        index_dir = Path(index_dir if index_dir is not None else settings.index_dir)
        store = PassageStore.open(index_dir)
        saved = store.get_setting("min_score")
        if saved is not None and "min_score" not in overrides and settings.min_score == Settings.min_score:
            settings = replace(settings, min_score=float(saved))
        manifest = store.manifest
        if settings.embedder is None and manifest.embedder != settings.embedder_name:
            settings = replace(settings, embedder=manifest.embedder)
        embedder = make_embedder(settings)
        store.check_embedder(embedder.model_name, None)
        settings = replace(settings, index_dir=str(index_dir))
        retriever = Retriever(
            embedder, store, mode=settings.retriever, fusion_depth=settings.fusion_depth, rrf_k=settings.rrf_k
        )
        reader = TransformersReader(
            settings.reader_path,
            max_length=settings.reader_max_length,
            stride=settings.reader_stride,
            max_answer_tokens=settings.max_answer_tokens,
            runtime=settings.reader_runtime,
            device=settings.device,
            threads=settings.threads,
        )
        return cls(retriever, reader, settings, store)

    load = open

    def retrieve(self, question: str, *, k: int | None = None, retriever: str | None = None) -> tuple[Hit, ...]:
        """The ``k`` best passages (default ``settings.passages_k``) for a question."""
        question = check_question(question)
        k = self.settings.passages_k if k is None else k
        hits = self.retriever.retrieve(question, k, mode=retriever)
        if self.store is not None:
            hits = [replace(h, source=self.store.get_document(h.chunk.doc_id).source) for h in hits]
        return tuple(hits)

    def read(self, question: str, hits: Sequence[Hit], *, max_answers: int | None = None,
             min_score: float | None = None) -> QAResult:
        """Read answers out of given passages; every answer's citation is checked against its document."""
        question = check_question(question)
        answers = self.reader.read(
            question,
            hits,
            max_answers=self.settings.max_answers if max_answers is None else max_answers,
            min_score=self.settings.min_score if min_score is None else min_score,
        )
        if self.store is not None:
            for a in answers:
                a.check(self.store.get_document(a.doc_id))
        return QAResult(question, tuple(answers), tuple(hits))

    def ask(self, question: str, *, top_k: int | None = None, retriever: str | None = None,
            max_answers: int | None = None, min_score: float | None = None) -> QAResult:
        """Answer a question from its ``top_k`` best passages (default ``settings.passages_k``).

        Returns the best spans with citations, or no answer when the evidence is not there.
        """
        hits = self.retrieve(question, k=top_k, retriever=retriever)
        return self.read(question, hits, max_answers=max_answers, min_score=min_score)

    def close(self) -> None:
        """Release the index."""
        if self.store is not None:
            self.store.close()


def check_question(question: str) -> str:
    """The question, stripped; QuestionError when it is empty or too long."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(question):,} characters long; the limit is {MAX_QUESTION_CHARS:,}"
        )
    return question.strip()
