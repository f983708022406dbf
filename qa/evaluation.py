"""Whole evaluation runs: a gold file through the assistant (re-exports the gold, scoring, summary and report API)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from qa.config import Settings
from qa.errors import QAError
from qa.gold import GoldExample, GoldSet, gold_kind, load_gold, load_gold_jsonl, select_articles, squad_corpus
from qa.metrics import exact_match, f1_score, normalize_answer
from qa.reports import REPORT_SUFFIXES, write_report
from qa.schema import Chunk, Hit, QAResult
from qa.scoring import (
    RETRIEVAL_DEPTH,
    QuestionRow,
    answer_in_text,
    failure_label,
    first_relevant_rank,
    is_relevant,
    mean_reciprocal_rank,
    recall_at_k,
    score_question,
    score_retrieval,
)
from qa.summary import (
    FAILURE_LABELS,
    RECALL_KS,
    RETRIEVING_MODES,
    EvalSummary,
    _check_threshold,
    best_threshold,
    sweep_thresholds,
)

__all__ = [
    "Answerer",
    "EvalSummary",
    "FAILURE_LABELS",
    "GoldExample",
    "GoldSet",
    "MODES",
    "QuestionRow",
    "RECALL_KS",
    "REPORT_SUFFIXES",
    "RETRIEVAL_DEPTH",
    "RETRIEVING_MODES",
    "answer_in_text",
    "best_threshold",
    "evaluate",
    "evaluate_file",
    "exact_match",
    "f1_score",
    "failure_label",
    "first_relevant_rank",
    "gold_kind",
    "is_relevant",
    "load_gold",
    "load_gold_jsonl",
    "mean_reciprocal_rank",
    "normalize_answer",
    "recall_at_k",
    "save_threshold",
    "score_question",
    "score_retrieval",
    "select_articles",
    "squad_corpus",
    "squad_index_dir",
    "sweep_thresholds",
    "write_report",
]

log = logging.getLogger(__name__)

MODES = ("pipeline", "reader", "retrieval")


class Answerer(Protocol):
    """What :func:`evaluate` needs from the assistant: retrieval and reading as separate steps."""

    @property
    def settings(self) -> Settings:
        """The assistant's settings (``passages_k``, ``min_score``, ``retriever``)."""
        ...

    def retrieve(self, question: str, *, k: int) -> Sequence[Hit]:
        """The ``k`` best passages for ``question``, best first."""
        ...

    def read(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        max_answers: int | None = None,
        min_score: float | None = None,
    ) -> QAResult:
        """Extract answers from ``hits``; abstain (no answers) when the best scores below ``min_score``."""
        ...


def _paragraph_hit(gold: GoldSet, example: GoldExample) -> Hit:
    """The gold paragraph of a question as the single passage of reader mode."""
    if example.context is None or example.doc_id is None:
        raise QAError(
            f"reader mode needs each question's gold paragraph, which {gold.kind} gold {gold.path!r} "
            f"lacks (question {example.qid!r}); use a SQuAD JSON file or --mode pipeline"
        )
    chunk = Chunk(f"{example.doc_id}#0", example.doc_id, 0, len(example.context), example.context)
    return Hit(chunk, 1.0, 0, source="gold")


def evaluate(
    answerer: Answerer,
    gold: GoldSet,
    *,
    mode: str = "pipeline",
    threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    limit: int | None = None,
) -> EvalSummary:
    """Run every gold question through the assistant and score it.

    In ``pipeline`` mode each question retrieves ``max(20, passages_k)`` passages (for recall@k and
    MRR) and the reader reads the first ``passages_k``. In ``reader`` mode (SQuAD gold only) the reader
    is given the question's gold paragraph alone. The reader always runs with ``min_score=0`` so that
    its best span and score are known; the prediction is that span when its score is at least
    ``threshold``, else "no answer". In ``retrieval`` mode each question retrieves 20 passages and
    nothing is read: only recall@k, MRR and retrieval latency are measured (EM and F1 are None).

    Args:
        answerer: the assistant (see :class:`Answerer`); retrieval mode never calls ``read``.
        gold: the gold set from :func:`load_gold`.
        mode: "pipeline", "reader" or "retrieval".
        threshold: abstention threshold in [0, 1]; None means ``answerer.settings.min_score``.
        progress: called as ``progress(done, total)`` after each question.
        limit: evaluate only the first ``limit`` questions.

    Returns:
        The EvalSummary, with one QuestionRow per question.

    Raises:
        QAError: an unknown mode, a threshold outside [0, 1], or reader mode on gold without paragraphs.
    """
    if mode not in MODES:
        raise QAError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    settings = answerer.settings
    thr = settings.min_score if threshold is None else float(threshold)
    _check_threshold(thr)
    examples = gold.examples if limit is None else gold.examples[: max(0, limit)]
    # Reader mode builds every passage first, so gold without paragraphs fails before any model runs.
    paragraphs = [_paragraph_hit(gold, e) for e in examples] if mode == "reader" else []
    depth = max(RETRIEVAL_DEPTH, settings.passages_k)
    rows: list[QuestionRow] = []
    for i, ex in enumerate(examples):
        t0 = time.perf_counter()
        if mode == "retrieval":
            found = tuple(answerer.retrieve(ex.question, k=RETRIEVAL_DEPTH))
            row = score_retrieval(ex, found, latency_ms=(time.perf_counter() - t0) * 1000.0)
        else:
            if mode == "pipeline":
                retrieved: Sequence[Hit] | None = tuple(answerer.retrieve(ex.question, k=depth))
                given: Sequence[Hit] = retrieved[: settings.passages_k]
            else:
                retrieved = None
                given = (paragraphs[i],)
            result = answerer.read(ex.question, given, min_score=0.0)
            latency_ms = (time.perf_counter() - t0) * 1000.0
            row = score_question(ex, result, given=given, retrieved=retrieved, threshold=thr, latency_ms=latency_ms)
            log.debug("%s: %r -> %r (em %.0f, %s)", ex.qid, ex.question, row.prediction, row.em, row.label)
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(examples))
    return EvalSummary(
        mode=mode,
        threshold=thr,
        retriever=settings.retriever if mode in RETRIEVING_MODES else None,
        passages_k=settings.passages_k if mode == "pipeline" else None,
        gold_path=gold.path,
        gold_kind=gold.kind,
        rows=tuple(rows),
    )


def squad_index_dir(gold_path: str | Path, settings: Settings) -> Path:
    """Cache folder of the index built from a SQuAD file's paragraphs, keyed by file, settings and
    index format (a new format builds a new cache instead of refusing the old one)."""
    import hashlib

    from qa.config import model_cache_dir
    from qa.store import FORMAT_VERSION

    h = hashlib.sha256(Path(gold_path).read_bytes())
    h.update(f"{settings.embedder_name}|{settings.chunk_size}|{settings.chunk_overlap}|format{FORMAT_VERSION}".encode())
    return model_cache_dir().parent / "eval-index" / h.hexdigest()[:16]


def evaluate_file(
    gold_path: str | Path,
    *,
    settings: Settings,
    mode: str = "pipeline",
    threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    index_progress: Callable[[str, int, int], None] | None = None,
    limit: int | None = None,
    articles: Sequence[str] | None = None,
    skip_articles: Sequence[str] | None = None,
) -> tuple[EvalSummary, Path | str | None]:
    """Evaluate a gold file end to end; returns the summary and the index it ran against.

    A JSONL gold file is asked against ``settings.index_dir``. A SQuAD file's paragraphs are
    indexed once into a cache folder (a second run embeds nothing), or, when ``settings.index_dir`` is a Milvus
    location, into that Milvus index (use one that holds nothing else); in ``reader`` mode the
    reader reads each question's gold paragraph and no index is used. ``retrieval`` mode uses
    the index as ``pipeline`` mode does but never loads or runs the reader. ``articles`` keeps
    only the questions of those SQuAD article titles, ``skip_articles`` drops the questions of those
    (the corpus stays whole either way).
    """
    from qa.factory import make_reader
    from qa.indexing import index_documents
    from qa.pipeline import Assistant

    gold = load_gold(gold_path)
    if articles or skip_articles:
        gold = select_articles(gold, articles or (), skip=skip_articles or ())
    if mode == "reader":
        if gold.kind != "squad":
            raise QAError(f"{gold_path}: --mode reader needs a SQuAD file (its paragraphs are the gold passages)")
        return evaluate(Assistant(None, make_reader(settings), settings), gold, mode=mode, threshold=threshold,
                        progress=progress, limit=limit), None
    from qa.store import is_milvus_location

    milvus = is_milvus_location(settings.index_dir)
    index_dir: str | Path = settings.index_dir if milvus else Path(settings.index_dir)
    if gold.kind == "squad":
        # a folder index is a cache of the file's paragraphs; a Milvus index named by the user is where they go
        index_dir = index_dir if milvus else squad_index_dir(gold_path, settings)
        index_documents(gold.documents, index_dir, settings=settings, progress=index_progress)
    assistant = Assistant.open(index_dir, settings)
    try:
        summary = evaluate(assistant, gold, mode=mode, threshold=threshold, progress=progress, limit=limit)
    finally:
        assistant.close()
    return summary, index_dir


def save_threshold(index_dir: str | Path, threshold: float) -> None:
    """Store the abstention threshold in the index, where `qa ask` and `qa chat` pick it up."""
    from qa.store import open_index

    _check_threshold(threshold)
    with open_index(index_dir, readonly=False) as store:
        store.set_setting("min_score", float(threshold))
