"""Metrics over a run's rows: EvalSummary and the abstention-threshold sweep."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from qa.errors import QAError
from qa.metrics import expected_calibration_error, percentile, reliability_bins
from qa.scoring import QuestionRow, mean_reciprocal_rank, recall_at_k

__all__ = [
    "CALIBRATION_BINS",
    "FAILURE_LABELS",
    "RECALL_KS",
    "RETRIEVING_MODES",
    "EvalSummary",
    "best_threshold",
    "sweep_thresholds",
]

#: Modes that retrieve, so recall@k and MRR are measured.
RETRIEVING_MODES = ("pipeline", "retrieval")
#: Cut-offs of the retrieval recall.
RECALL_KS = (1, 5, 20)
#: Why a wrong question (EM 0) went wrong; see :func:`qa.scoring.failure_label`.
FAILURE_LABELS = ("retrieval_miss", "reader_miss", "false_abstention", "false_answer")
#: Equal-width bins of the reliability table and the expected calibration error.
CALIBRATION_BINS = 15


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _percent(values: Sequence[float]) -> float | None:
    m = _mean(values)
    return None if m is None else 100.0 * m


def _percent_read(values: Sequence[float | None]) -> float | None:
    """Percent mean of reader scores; None when there are none or a row was not read (retrieval mode)."""
    read = [v for v in values if v is not None]
    return None if len(read) < len(values) else _percent(read)


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise QAError(f"threshold must be in [0, 1], got {threshold}")


@dataclass(frozen=True, slots=True)
class EvalSummary:
    """The result of :func:`qa.evaluation.evaluate`: per-question rows and the metrics over them.

    EM, F1, accuracy and recall are percentages (0-100); MRR is 0-1. A metric over an empty
    subset (e.g. no unanswerable questions) is None, and so is every reader metric (EM, F1,
    no-answer accuracy) in retrieval mode, where no reader runs.
    """

    mode: str
    threshold: float
    retriever: str | None  # None in reader mode
    passages_k: int | None  # None in reader and retrieval modes (no passages go to a reader)
    gold_path: str
    gold_kind: str
    rows: tuple[QuestionRow, ...] = field(repr=False)

    @property
    def n(self) -> int:
        """Number of questions."""
        return len(self.rows)

    @property
    def reads(self) -> bool:
        """Whether the reader ran (every mode but retrieval), so EM, F1 and abstention are measured."""
        return self.mode != "retrieval"

    @property
    def exact_match(self) -> float | None:
        """Exact match over every question, in percent."""
        return _percent_read([r.em for r in self.rows])

    @property
    def f1(self) -> float | None:
        """Token F1 over every question, in percent."""
        return _percent_read([r.f1 for r in self.rows])

    @property
    def has_answer_n(self) -> int:
        """Number of answerable questions."""
        return sum(1 for r in self.rows if r.answerable)

    @property
    def has_answer_exact_match(self) -> float | None:
        """Exact match over answerable questions, in percent."""
        return _percent_read([r.em for r in self.rows if r.answerable])

    @property
    def has_answer_f1(self) -> float | None:
        """F1 over answerable questions, in percent."""
        return _percent_read([r.f1 for r in self.rows if r.answerable])

    @property
    def no_answer_n(self) -> int:
        """Number of unanswerable questions."""
        return self.n - self.has_answer_n

    @property
    def no_answer_accuracy(self) -> float | None:
        """Share of unanswerable questions abstained on, in percent."""
        if not self.reads:
            return None
        return _percent([float(r.abstained) for r in self.rows if not r.answerable])

    @property
    def retrieval_n(self) -> int:
        """Number of questions that recall@k and MRR are measured on."""
        return sum(1 for r in self.rows if r.retrieval_judged)

    @property
    def recall_at_k(self) -> dict[int, float] | None:
        """Percent of judged questions with a relevant passage in the top k; None in reader mode."""
        ranks = [r.rank for r in self.rows if r.retrieval_judged]
        if self.mode not in RETRIEVING_MODES or not ranks:
            return None
        recall = {k: recall_at_k(ranks, k) for k in RECALL_KS}
        return {k: v for k, v in recall.items() if v is not None}

    @property
    def mrr(self) -> float | None:
        """Mean reciprocal rank of the first relevant passage within the top 20 (0-1)."""
        if self.mode not in RETRIEVING_MODES:
            return None
        return mean_reciprocal_rank([r.rank for r in self.rows if r.retrieval_judged])

    @property
    def latency_p50_ms(self) -> float | None:
        """Median time per question, in milliseconds."""
        return percentile([r.latency_ms for r in self.rows], 0.50)

    @property
    def latency_p95_ms(self) -> float | None:
        """95th percentile of the time per question, in milliseconds."""
        return percentile([r.latency_ms for r in self.rows], 0.95)

    @property
    def failures(self) -> dict[str, int]:
        """How many questions carry each failure label (every label present, zeros included).

        Empty in retrieval mode: the labels judge the reader's answers.
        """
        if not self.reads:
            return {}
        counts = dict.fromkeys(FAILURE_LABELS, 0)
        for r in self.rows:
            if r.label is not None:
                counts[r.label] += 1
        return counts

    @property
    def calibration_pairs(self) -> list[tuple[float, bool]]:
        """``(score, right)`` of every question's best answer, given or abstained on; right = F1 >= 0.5 against
        a gold answer (never, for an unanswerable question). Empty in retrieval mode."""
        return [(r.score, bool(r.gold) and (r.answered_f1 or 0.0) >= 0.5)
                for r in self.rows if r.was_read and r.score is not None]

    @property
    def expected_calibration_error(self) -> float | None:
        """ECE of the best answers' scores over :data:`CALIBRATION_BINS` bins; None when nothing was scored."""
        pairs = self.calibration_pairs
        return expected_calibration_error(pairs, CALIBRATION_BINS) if pairs else None

    def reliability(self) -> list[tuple[float, float, int, float, float]]:
        """``(low, high, n, mean score, share right)`` per score bin (see :func:`qa.metrics.reliability_bins`)."""
        return reliability_bins(self.calibration_pairs, CALIBRATION_BINS)

    def with_threshold(self, threshold: float) -> EvalSummary:
        """The same run re-scored at another abstention threshold (no model calls)."""
        _check_threshold(threshold)
        return replace(self, threshold=threshold, rows=tuple(r.at(threshold) for r in self.rows))

    def to_dict(self, *, rows: bool = False) -> dict[str, Any]:
        """The ``qa eval --json`` object; ``rows=True`` adds every QuestionRow."""
        recall = self.recall_at_k
        d: dict[str, Any] = {
            "mode": self.mode,
            "gold": self.gold_path,
            "gold_kind": self.gold_kind,
            "retriever": self.retriever,
            "passages_k": self.passages_k,
            "threshold": self.threshold if self.reads else None,
            "n": self.n,
            "exact_match": _round(self.exact_match, 2),
            "f1": _round(self.f1, 2),
            "has_answer": {
                "n": self.has_answer_n,
                "exact_match": _round(self.has_answer_exact_match, 2),
                "f1": _round(self.has_answer_f1, 2),
            },
            "no_answer": {"n": self.no_answer_n, "accuracy": _round(self.no_answer_accuracy, 2)},
            "retrieval_n": self.retrieval_n if self.mode in RETRIEVING_MODES else 0,
            "recall_at_k": None if recall is None else {str(k): round(v, 2) for k, v in recall.items()},
            "mrr": _round(self.mrr, 4),
            "latency_ms": {"p50": _round(self.latency_p50_ms, 1), "p95": _round(self.latency_p95_ms, 1)},
            "failures": self.failures,
        }
        ece = self.expected_calibration_error
        d["calibration"] = None if ece is None else {
            "right": "f1>=0.5",
            "ece": round(ece, 4),
            "bins": [{"low": round(lo, 4), "high": round(hi, 4), "n": n, "mean_score": round(conf, 4),
                      "right": round(acc, 4)} for lo, hi, n, conf, acc in self.reliability()],
        }
        if rows:
            d["rows"] = [r.to_dict() for r in self.rows]
        return d


def sweep_thresholds(rows: Sequence[QuestionRow]) -> list[tuple[float, float, float, float | None]]:
    """Re-score ``rows`` at every threshold where the outcome can change.

    The candidates are 0, 1 and every distinct best-answer score; an answer is given when its
    score is at least the threshold. No model is called.

    Args:
        rows: the rows of an EvalSummary.

    Returns:
        ``(threshold, EM, F1, no-answer accuracy)`` per candidate, by ascending threshold; EM, F1 and
        accuracy are percentages, accuracy is None when no question is unanswerable.

    Raises:
        QAError: a row has no reader output (retrieval mode).
    """
    if not all(r.was_read for r in rows):
        raise QAError("the threshold sweep needs the reader's answers; retrieval mode runs no reader")
    candidates = {0.0, 1.0} | {r.score for r in rows if r.score is not None}
    curve = []
    for t in sorted(candidates):
        scored = [r.at(t) for r in rows]
        n = max(1, len(scored))
        em = 100.0 * sum(r.em or 0.0 for r in scored) / n  # never None: every row was read
        f1 = 100.0 * sum(r.f1 or 0.0 for r in scored) / n
        acc = _percent([float(r.abstained) for r in scored if not r.answerable])
        curve.append((t, em, f1, acc))
    return curve


def best_threshold(rows: Sequence[QuestionRow]) -> float:
    """The threshold of :func:`sweep_thresholds` with the highest overall F1.

    Ties go to the lowest such threshold (answer more often), so the choice is deterministic.
    """
    curve = sweep_thresholds(rows)
    best_f1 = max(f1 for _, _, f1, _ in curve)
    return min(t for t, _, f1, _ in curve if f1 == best_f1)
