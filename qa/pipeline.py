"""Wiring only: Assistant answers a question by retrieving passages from an index, then reading spans.

Indexing lives in :mod:`qa.indexing`, model construction in :mod:`qa.factory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from qa import factory
from qa.config import Settings
from qa.errors import EmptyCorpusError, IndexChangedError, QuestionError
from qa.schema import Hit, QAResult

#: Longest question accepted, in characters.
MAX_QUESTION_CHARS = 2000


class Assistant:
    """Answers questions over an index: retrieve passages, then read answer spans out of them."""

    def __init__(self, retriever, reader, settings: Settings, store=None, calibrator=None) -> None:
        """Takes ready-made parts, so tests can pass fakes; see :meth:`open` for the usual way.

        ``calibrator`` (a :class:`qa.calibration.Calibrator`) turns the reader's candidates' scores into the
        probability that each is right; None shows the reader's own score.
        """
        self.retriever = retriever
        self.reader = reader
        self.settings = settings
        self.store = store
        self.calibrator = calibrator

    @classmethod
    def open(cls, index_dir: str | Path | None = None, settings: Settings | None = None, **overrides) -> Assistant:
        """An assistant over the index in ``index_dir`` with the models its manifest names.

        Precedence: defaults < the index's manifest and saved settings < ``settings``/``overrides``.
        """
        from qa.retriever import Retriever
        from qa.store import is_milvus_location, open_index

        settings = (settings or Settings.from_env()).merge(**overrides)
        index_dir = index_dir if index_dir is not None else settings.index_dir
        index_dir = str(index_dir) if is_milvus_location(index_dir) else Path(index_dir)
        store = open_index(index_dir)
        try:
            saved = store.get_setting("min_score")
            settings = resolve_settings(settings, store.manifest.embedder, saved)
            settings = replace(settings, index_dir=str(index_dir))
            store.check_embedder(settings.embedder_name)  # before loading anything
            embedder = factory.make_query_encoder(settings)
            store.check_embedder(embedder.model_name, embedder.dim)
            retriever = Retriever(
                embedder, store, mode=settings.retriever, fusion_depth=settings.fusion_depth, rrf_k=settings.rrf_k
            )
            reader = factory.make_reader(settings)
            calibrator = factory.make_calibrator(settings, reader)
            if (calibrator is not None and calibrator.min_score is not None and saved is None
                    and settings.min_score == Settings().min_score):
                # the threshold chosen with the calibration, unless the user or the index set one
                settings = replace(settings, min_score=calibrator.min_score)
            return cls(retriever, reader, settings, store, calibrator)
        except BaseException:
            store.close()
            raise

    load = open

    def retrieve(self, question: str, *, k: int | None = None, retriever: str | None = None) -> tuple[Hit, ...]:
        """The ``k`` best passages (default ``settings.passages_k``) for a question."""
        question = check_question(question)
        k = self.settings.passages_k if k is None else k
        hits = tuple(self.retriever.retrieve(question, k, mode=retriever))
        if not hits and self.store is not None and not self.store.document_hashes():
            raise EmptyCorpusError(
                f"the index in {self.store.index_dir} holds no documents: add some with `qa index PATH`")
        return hits

    def read(self, question: str, hits: Sequence[Hit], *, max_answers: int | None = None,
             min_score: float | None = None) -> QAResult:
        """Read answers out of given passages; every answer's citation is checked against its document.

        The reader proposes candidates, the calibrator (if any) scores them (the reader's best stays first),
        and those scoring below ``min_score`` are dropped; when the first is below it, the result abstains and
        lists them as ``candidates``.
        """
        from qa.calibration import CANDIDATES

        question = check_question(question)
        max_answers = self.settings.max_answers if max_answers is None else max_answers
        min_score = self.settings.min_score if min_score is None else min_score
        cands = self.reader.read(question, hits, max_answers=max(max_answers, CANDIDATES), min_score=0.0)
        if self.calibrator is not None:
            cands = self.calibrator.rescore(question, cands, hits, getattr(self.reader, "rank_penalty", 0.0))
        # the first candidate decides: below min_score the result abstains even if a later one scores higher
        sure = bool(cands) and cands[0].score >= min_score
        answers = [a for a in cands if a.score >= min_score][:max_answers] if sure else []
        shown = answers or cands[:max_answers]
        if self.store is not None:
            for a in shown:
                a.check(self._current_document(a.doc_id, hits))
        return QAResult(question, tuple(answers), tuple(hits), () if answers else tuple(shown))

    def _current_document(self, doc_id: str, hits: Sequence[Hit]):
        """The stored document an answer cites; IndexChangedError when a writer removed or changed it since
        its passages were retrieved (the retrieval and this read are separate snapshots)."""
        try:
            doc = self.store.get_document(doc_id)
        except KeyError:
            raise IndexChangedError(f"document {doc_id!r} was removed from the index while answering") from None
        for h in hits:
            c = h.chunk
            if c.doc_id == doc_id and doc.text[c.char_start : c.char_end] != c.text:
                raise IndexChangedError(f"document {doc_id!r} was updated in the index while answering")
        return doc

    def ask(self, question: str, *, top_k: int | None = None, retriever: str | None = None,
            max_answers: int | None = None, min_score: float | None = None) -> QAResult:
        """Answer a question from its ``top_k`` best passages (default ``settings.passages_k``).

        Returns the best spans with citations, or no answer when the evidence is not there.
        """
        for attempt in range(2):
            hits = self.retrieve(question, k=top_k, retriever=retriever)
            try:
                return self.read(question, hits, max_answers=max_answers, min_score=min_score)
            except IndexChangedError:
                if attempt:  # changed twice in a row: say so rather than loop
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Release the index."""
        if self.store is not None:
            self.store.close()


def resolve_settings(settings: Settings, index_embedder: str, saved_min_score: float | None) -> Settings:
    """Apply what the index knows (its embedder, a saved threshold) where the caller left the default."""
    defaults = Settings()
    if settings.embedder is None and index_embedder != settings.embedder_name:
        settings = replace(settings, embedder=index_embedder)
    if saved_min_score is not None and settings.min_score == defaults.min_score:
        settings = replace(settings, min_score=float(saved_min_score))
    return settings


def check_question(question: str) -> str:
    """The question, stripped; QuestionError when it is empty, too long, or not valid Unicode text."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty")
    bad = next((i for i, ch in enumerate(question) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        # what Python makes of bytes that are not UTF-8 on the command line (surrogateescape)
        raise QuestionError(f"the question is not valid UTF-8 text (undecodable byte at character {bad})")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(question):,} characters long; the limit is {MAX_QUESTION_CHARS:,}"
        )
    return question.strip()
