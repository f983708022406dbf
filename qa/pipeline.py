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


def make_query_encoder(settings: Settings):
    """What embeds questions: an ONNX export of the embedder (no torch at query time) where it
    can be made, else the sentence-transformers model itself."""
    if settings.reader_runtime != "torch" and settings.device == "cpu":
        from qa.onnx_models import prepare_query_encoder

        encoder = prepare_query_encoder(settings.embedder_name, settings.embedder_path, settings.threads)
        if encoder is not None:
            return encoder
    return make_embedder(settings)


def prepare_models(settings: Settings | None = None) -> None:
    """Build the ONNX query encoder and reader once (normally done lazily by the first question)."""
    settings = settings or Settings.from_env()
    make_query_encoder(settings)
    make_reader(settings).warm_up()


def make_reader(settings: Settings):
    """The reader the settings name (the shipped one by default)."""
    from qa.reader import TransformersReader

    return TransformersReader(
        settings.reader_path,
        max_length=settings.reader_max_length,
        stride=settings.reader_stride,
        max_answer_tokens=settings.max_answer_tokens,
        runtime=settings.reader_runtime,
        device=settings.device,
        threads=settings.threads,
    )


def index_status(index_dir: str | Path) -> dict:
    """What an index holds and how it was built, as plain values (for `qa status`)."""
    from dataclasses import asdict

    from qa.store import PassageStore

    with PassageStore.open(index_dir) as store:
        info = asdict(store.stats())
    info["size_on_disk_mb"] = round((info.pop("sqlite_bytes") + info.pop("faiss_bytes")) / 1e6, 2)
    return info


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
    from qa.loader import find_document_files, load_document

    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
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
    if not docs and not skipped:
        raise EmptyCorpusError(
            f"no .txt, .md, .html or .pdf files in {', '.join(map(str, paths))}"
        )
    report = index_documents(
        docs, index_dir, settings=settings, prune=prune, progress=progress, embedder=embedder
    )
    return replace(report, skipped=tuple(skipped), seconds=time.perf_counter() - t0)


def index_documents(
    docs: Sequence[Document],
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    prune: bool = False,
    progress: Progress | None = None,
    embedder=None,
) -> IndexReport:
    """Add or update documents in an index in one atomic change; unchanged ones cost nothing.

    ``prune`` removes indexed documents whose ``source`` file no longer exists.
    """
    from qa.chunking import chunk_document
    from qa.store import PassageStore

    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    index_dir = Path(index_dir if index_dir is not None else settings.index_dir)
    embedder = embedder or make_embedder(settings)
    with PassageStore.open_or_create(
        index_dir,
        embedder=embedder.model_name,
        dim=embedder.dim,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
    ) as store:
        known = store.document_hashes()
        if not docs and not known:
            raise EmptyCorpusError("no readable documents to index")
        todo = [d for d in docs if known.get(d.doc_id) != text_digest(d.text)]
        chunked = []
        for i, doc in enumerate(todo):
            chunks = chunk_document(
                doc, size=settings.chunk_size, overlap=settings.chunk_overlap, count_tokens=embedder.count_tokens
            )
            chunked.append((doc, chunks))
            if progress:
                progress("chunk", i + 1, len(todo))
        texts = [c.text for _, chunks in chunked for c in chunks]
        on_embed = (lambda n: progress("embed", n, len(texts))) if progress else None
        vectors = embedder.encode_passages(texts, progress=on_embed)
        upserts, pos = [], 0
        for doc, chunks in chunked:
            upserts.append((doc, chunks, vectors[pos : pos + len(chunks)]))
            pos += len(chunks)
        seen = {d.doc_id for d in docs}
        removed = []
        if prune:
            removed = [d for d in known if d not in seen and _source_gone(store.get_document(d).source)]
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
        skipped=(),
        embedded_passages=len(texts),
        seconds=time.perf_counter() - t0,
    )


def _source_gone(source: str) -> bool:
    """True when a document came from a file that no longer exists (documents without a file stay)."""
    return bool(source) and not Path(source).exists()


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
        from qa.retriever import Retriever
        from qa.store import PassageStore

        settings = (settings or Settings.from_env()).merge(**overrides)
        index_dir = Path(index_dir if index_dir is not None else settings.index_dir)
        store = PassageStore.open(index_dir)
        saved = store.get_setting("min_score")
        if saved is not None and "min_score" not in overrides and settings.min_score == Settings().min_score:
            settings = replace(settings, min_score=float(saved))
        manifest = store.manifest
        if settings.embedder is None and manifest.embedder != settings.embedder_name:
            settings = replace(settings, embedder=manifest.embedder)
        settings = replace(settings, index_dir=str(index_dir))
        embedder = make_query_encoder(settings)
        store.check_embedder(embedder.model_name, embedder.dim)
        retriever = Retriever(
            embedder, store, mode=settings.retriever, fusion_depth=settings.fusion_depth, rrf_k=settings.rrf_k
        )
        return cls(retriever, make_reader(settings), settings, store)

    load = open

    def retrieve(self, question: str, *, k: int | None = None, retriever: str | None = None) -> tuple[Hit, ...]:
        """The ``k`` best passages (default ``settings.passages_k``) for a question."""
        question = check_question(question)
        k = self.settings.passages_k if k is None else k
        return tuple(self.retriever.retrieve(question, k, mode=retriever))

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
