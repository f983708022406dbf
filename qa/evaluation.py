"""Evaluation: gold files (JSONL or SQuAD), per-question scoring, failure labels and threshold sweeps."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from qa.config import Settings
from qa.errors import GoldFileError, QAError
from qa.metrics import exact_match, f1_score, max_over_gold, normalize_answer, percentile
from qa.schema import Chunk, Document, Hit, QAResult
from qa.squad import load_squad

__all__ = [
    "Answerer",
    "EvalSummary",
    "GoldExample",
    "GoldSet",
    "QuestionRow",
    "answer_in_text",
    "best_threshold",
    "evaluate",
    "exact_match",
    "f1_score",
    "failure_label",
    "first_relevant_rank",
    "is_relevant",
    "load_gold",
    "load_gold_jsonl",
    "mean_reciprocal_rank",
    "normalize_answer",
    "recall_at_k",
    "score_question",
    "score_retrieval",
    "squad_corpus",
    "sweep_thresholds",
    "write_report",
]

log = logging.getLogger(__name__)

MODES = ("pipeline", "reader", "retrieval")
#: Modes that retrieve, so recall@k and MRR are measured.
RETRIEVING_MODES = ("pipeline", "retrieval")
#: Cut-offs of the retrieval recall, and the depth retrieved for it (and for MRR).
RECALL_KS = (1, 5, 20)
RETRIEVAL_DEPTH = 20
#: Why a wrong question (EM 0) went wrong; see :func:`failure_label`.
FAILURE_LABELS = ("retrieval_miss", "reader_miss", "false_abstention", "false_answer")
REPORT_SUFFIXES = (".jsonl", ".csv")


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


# --------------------------------------------------------------------------- gold files


@dataclass(frozen=True, slots=True)
class GoldExample:
    """One gold question. ``answers == ()`` means unanswerable: the right output is to abstain.

    ``doc_id`` names the document (or SQuAD paragraph) that answers it, when known;
    ``context`` is the SQuAD paragraph itself (None for JSONL gold).
    """

    qid: str
    question: str
    answers: tuple[str, ...]
    doc_id: str | None = None
    context: str | None = None

    @property
    def answerable(self) -> bool:
        """True when the question has at least one gold answer."""
        return bool(self.answers)


@dataclass(frozen=True, slots=True)
class GoldSet:
    """A parsed gold file: its examples and, for SQuAD, the paragraphs as documents."""

    path: str
    kind: str  # "jsonl" or "squad"
    examples: tuple[GoldExample, ...]
    documents: tuple[Document, ...] = ()

    @property
    def n_answerable(self) -> int:
        """How many examples have a gold answer."""
        return sum(1 for e in self.examples if e.answerable)

    @property
    def n_unanswerable(self) -> int:
        """How many examples should be abstained on."""
        return len(self.examples) - self.n_answerable


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string" if value else "an empty string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise GoldFileError(str(path), None, "file not found") from None
    except IsADirectoryError:
        raise GoldFileError(str(path), None, "is a folder, not a gold file") from None
    except UnicodeDecodeError as exc:
        raise GoldFileError(str(path), None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse_jsonl_line(p: str, line_no: int, line: str) -> GoldExample:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise GoldFileError(p, line_no, f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise GoldFileError(p, line_no, f"expected a JSON object, got {_json_type(obj)}")
    for key in ("id", "question"):
        if key not in obj:
            raise GoldFileError(p, line_no, f"missing field {key!r} (expected a non-empty string)")
        value = obj[key]
        if not isinstance(value, str) or not value.strip():
            raise GoldFileError(
                p, line_no, f"field {key!r} must be a non-empty string, got {_json_type(value)}"
            )
    if "answers" not in obj:
        raise GoldFileError(
            p,
            line_no,
            "missing field 'answers' (expected a list of strings; [] for an unanswerable question)",
        )
    answers = obj["answers"]
    if not isinstance(answers, list):
        raise GoldFileError(
            p, line_no, f"field 'answers' must be a list of strings, got {_json_type(answers)}"
        )
    for i, ans in enumerate(answers):
        if not isinstance(ans, str) or not ans.strip():
            raise GoldFileError(
                p, line_no, f"field 'answers' item {i} must be a non-empty string, got {_json_type(ans)}"
            )
    doc_id = obj.get("doc_id")
    if doc_id is not None and (not isinstance(doc_id, str) or not doc_id):
        raise GoldFileError(
            p, line_no, f"field 'doc_id' must be a non-empty string, got {_json_type(doc_id)}"
        )
    return GoldExample(obj["id"], obj["question"], tuple(answers), doc_id, None)


def load_gold_jsonl(path: str | Path) -> GoldSet:
    """Parse a JSONL gold file: one ``{"id", "question", "answers", "doc_id"?}`` object a line.

    Args:
        path: the file. Blank lines are skipped; ``"answers": []`` marks an unanswerable question.

    Returns:
        The examples in file order.

    Raises:
        GoldFileError: a malformed line (bad JSON, a missing or mistyped field) or a duplicate id,
            with its line number; or a file with no questions.
    """
    p = Path(path)
    text = _read_text(p)
    examples: list[GoldExample] = []
    first_line: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        ex = _parse_jsonl_line(str(p), line_no, line)
        if ex.qid in first_line:
            raise GoldFileError(
                str(p), line_no, f"duplicate id {ex.qid!r} (first used on line {first_line[ex.qid]})"
            )
        first_line[ex.qid] = line_no
        examples.append(ex)
    if not examples:
        raise GoldFileError(str(p), None, "no questions in the file")
    return GoldSet(str(p), "jsonl", tuple(examples))


def squad_corpus(path: str | Path) -> tuple[list[Document], list[GoldExample]]:
    """Read a SQuAD v1.1/v2.0 file as a corpus and its questions.

    Each paragraph becomes a Document ``f"{title}/{paragraph_index}"`` whose text is the context
    verbatim; each question's ``doc_id`` and ``context`` point at its paragraph.

    Args:
        path: the SQuAD JSON file.

    Returns:
        (documents, examples), both in file order.

    Raises:
        GoldFileError: the file is not valid SQuAD, two articles share a title, two questions share an id,
            or it holds no questions.
    """
    p = str(path)
    documents: list[Document] = []
    examples: list[GoldExample] = []
    seen_docs: set[str] = set()
    seen_ids: set[str] = set()
    for art in load_squad(path):
        for p_i, par in enumerate(art.paragraphs):
            doc_id = f"{art.title}/{p_i}"
            if doc_id in seen_docs:
                raise GoldFileError(
                    p, None, f"two articles are titled {art.title!r}: paragraph ids would collide"
                )
            seen_docs.add(doc_id)
            documents.append(Document(doc_id, par.context, title=art.title, source=p))
            for q in par.questions:
                if q.qid in seen_ids:
                    raise GoldFileError(p, None, f"duplicate question id {q.qid!r} (in {doc_id!r})")
                seen_ids.add(q.qid)
                examples.append(GoldExample(q.qid, q.question, q.answers, doc_id, par.context))
    if not examples:
        raise GoldFileError(p, None, "no questions in the file")
    return documents, examples


def load_gold(path: str | Path) -> GoldSet:
    """Load a gold file, JSONL or SQuAD JSON.

    The format follows the suffix (``.jsonl``: JSONL, ``.json``: SQuAD); any other suffix is
    sniffed: one JSON object with a ``data`` list is SQuAD, anything else is read as JSONL.

    Args:
        path: the gold file.

    Returns:
        The GoldSet; ``documents`` is filled for SQuAD only.

    Raises:
        GoldFileError: the file is missing or malformed; the message names the line or field.
    """
    p = Path(path)
    if gold_kind(p) == "jsonl":
        return load_gold_jsonl(p)
    documents, examples = squad_corpus(p)
    return GoldSet(str(p), "squad", tuple(examples), tuple(documents))


def gold_kind(path: str | Path) -> str:
    """"squad" or "jsonl", as :func:`load_gold` reads the file: by suffix, else by content (reads it only then)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl" if suffix == ".jsonl" else "squad"
    try:
        raw = json.loads(_read_text(p))
    except json.JSONDecodeError:
        raw = None
    return "squad" if isinstance(raw, dict) and isinstance(raw.get("data"), list) else "jsonl"


# --------------------------------------------------------------------------- scoring one question


def answer_in_text(answers: Sequence[str], text: str) -> bool:
    """True when ``text`` contains a gold answer as whole words: verbatim (not inside a longer word: "5" is not
    in "2015", "Iran" not in "Iranian"), or as whole tokens after SQuAD normalisation."""
    norm_text = f" {normalize_answer(text)} "
    for ans in answers:
        if ans and re.search(rf"(?<!\w){re.escape(ans)}(?!\w)", text):
            return True
        norm = normalize_answer(ans)
        if norm and f" {norm} " in norm_text:
            return True
    return False


def is_relevant(example: GoldExample, chunk: Chunk) -> bool:
    """Whether a passage holds what the question needs.

    Its document must be the gold ``doc_id`` when known, and, for an answerable question,
    its text must contain a gold answer (:func:`answer_in_text`). An unanswerable question
    with no ``doc_id`` has no relevant passage.
    """
    if example.doc_id is not None and chunk.doc_id != example.doc_id:
        return False
    if example.answerable:
        return answer_in_text(example.answers, chunk.text)
    return example.doc_id is not None


def first_relevant_rank(example: GoldExample, hits: Sequence[Hit]) -> int | None:
    """1-based position of the first relevant hit in ``hits``, or None when none is relevant."""
    for pos, hit in enumerate(hits, start=1):
        if is_relevant(example, hit.chunk):
            return pos
    return None


def failure_label(*, answerable: bool, abstained: bool, em: float, answer_in_passages: bool) -> str | None:
    """Why a question went wrong, or None when it is right (EM 1).

    - ``false_answer``: unanswerable, but the reader answered.
    - ``retrieval_miss``: answerable, and no passage given to the reader contains a gold answer
      (whether the reader then answered or abstained).
    - ``false_abstention``: answerable, a passage contained the answer, and the reader abstained.
    - ``reader_miss``: answerable, a passage contained the answer, and the reader answered wrongly.
    """
    if em >= 1.0:
        return None
    if not answerable:
        return "false_answer"
    if not answer_in_passages:
        return "retrieval_miss"
    return "false_abstention" if abstained else "reader_miss"


@dataclass(frozen=True, slots=True)
class QuestionRow:
    """The outcome of one gold question at one threshold.

    ``best_answer``/``score`` and the citation ``doc_id``/``start``/``end`` describe the reader's best
    span even when it was abstained on; ``answered_em``/``answered_f1`` are what it would score if given,
    so :meth:`at` re-scores the row at any threshold without calling a model.
    """

    qid: str
    question: str
    gold: tuple[str, ...]
    gold_doc_id: str | None
    prediction: str  # "" = abstained
    score: float | None  # best answer's score; None when the reader found no span at all
    best_answer: str
    doc_id: str | None
    start: int | None
    end: int | None
    em: float | None  # None in retrieval mode (no reader ran)
    f1: float | None
    label: str | None
    rank: int | None  # 1-based rank of the first relevant retrieved passage; None if none (or not judged)
    retrieval_judged: bool  # whether this question counts towards recall@k / MRR
    answer_in_passages: bool  # a passage given to the reader contains a gold answer
    answered_em: float | None
    answered_f1: float | None
    latency_ms: float

    @property
    def answerable(self) -> bool:
        """True when the question has a gold answer."""
        return bool(self.gold)

    @property
    def abstained(self) -> bool:
        """True when the prediction is "no answer"."""
        return self.prediction == ""

    @property
    def was_read(self) -> bool:
        """False for a retrieval-mode row: no reader ran, so EM, F1 and the label are None."""
        return self.answered_em is not None

    def at(self, threshold: float) -> QuestionRow:
        """This row re-scored as if the abstention threshold were ``threshold`` (unchanged when not read)."""
        if self.answered_em is None or self.answered_f1 is None:
            return self
        answered = bool(self.best_answer) and self.score is not None and self.score >= threshold
        em: float
        f1: float
        if answered:
            prediction, em, f1 = self.best_answer, self.answered_em, self.answered_f1
        else:
            prediction = ""
            em = max_over_gold(exact_match, "", self.gold)
            f1 = max_over_gold(f1_score, "", self.gold)
        label = failure_label(
            answerable=self.answerable,
            abstained=not answered,
            em=em,
            answer_in_passages=self.answer_in_passages,
        )
        return replace(self, prediction=prediction, em=em, f1=f1, label=label)

    def to_dict(self) -> dict[str, Any]:
        """One line of the eval report."""
        return {
            "id": self.qid,
            "question": self.question,
            "gold": list(self.gold),
            "gold_doc_id": self.gold_doc_id,
            "prediction": self.prediction,
            "abstained": self.abstained if self.was_read else None,
            "score": self.score,
            "best_answer": self.best_answer,
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "em": self.em,
            "f1": self.f1,
            "label": self.label,
            "rank": self.rank,
            "latency_ms": round(self.latency_ms, 2),
        }


def score_question(
    example: GoldExample,
    result: QAResult,
    *,
    given: Sequence[Hit],
    retrieved: Sequence[Hit] | None,
    threshold: float,
    latency_ms: float,
) -> QuestionRow:
    """Score one reader result against its gold example.

    Args:
        example: the gold question.
        result: the reader's output, read with ``min_score=0`` so its best span is known.
        given: the passages the reader was given (they decide the failure label).
        retrieved: every retrieved passage, best first, for the rank; None in reader mode.
        threshold: answers scoring below it count as abstentions.
        latency_ms: wall time spent on the question.

    Returns:
        The QuestionRow at ``threshold``.
    """
    best = result.best
    if best is not None:
        best_text, score = best.text, float(best.score)
        doc_id, start, end = best.doc_id, best.span.start, best.span.end
        answered_em = max_over_gold(exact_match, best_text, example.answers)
        answered_f1 = max_over_gold(f1_score, best_text, example.answers)
    else:
        best_text, score, doc_id, start, end = "", None, None, None, None
        answered_em = answered_f1 = 0.0
    judged = retrieved is not None and (example.answerable or example.doc_id is not None)
    row = QuestionRow(
        qid=example.qid,
        question=example.question,
        gold=example.answers,
        gold_doc_id=example.doc_id,
        prediction="",
        score=score,
        best_answer=best_text,
        doc_id=doc_id,
        start=start,
        end=end,
        em=0.0,
        f1=0.0,
        label=None,
        rank=first_relevant_rank(example, retrieved) if judged and retrieved is not None else None,
        retrieval_judged=judged,
        answer_in_passages=example.answerable and any(is_relevant(example, h.chunk) for h in given),
        answered_em=answered_em,
        answered_f1=answered_f1,
        latency_ms=latency_ms,
    )
    return row.at(threshold)


def score_retrieval(example: GoldExample, retrieved: Sequence[Hit], *, latency_ms: float) -> QuestionRow:
    """Score the retrieval of one gold question alone (retrieval mode): the rank, no reader output.

    Args:
        example: the gold question.
        retrieved: the retrieved passages, best first.
        latency_ms: wall time spent retrieving.

    Returns:
        A QuestionRow whose EM, F1 and label are None and whose prediction is empty.
    """
    judged = example.answerable or example.doc_id is not None
    return QuestionRow(
        qid=example.qid,
        question=example.question,
        gold=example.answers,
        gold_doc_id=example.doc_id,
        prediction="",
        score=None,
        best_answer="",
        doc_id=None,
        start=None,
        end=None,
        em=None,
        f1=None,
        label=None,
        rank=first_relevant_rank(example, retrieved) if judged else None,
        retrieval_judged=judged,
        answer_in_passages=False,
        answered_em=None,
        answered_f1=None,
        latency_ms=latency_ms,
    )


# --------------------------------------------------------------------------- summary


def recall_at_k(ranks: Sequence[int | None], k: int) -> float | None:
    """Percent of questions whose first relevant passage is in the top ``k``.

    Args:
        ranks: 1-based rank of the first relevant passage per question, None when none was retrieved.
        k: the cut-off.

    Returns:
        The percentage (0-100), or None for no questions.
    """
    if not ranks:
        return None
    return 100.0 * sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None], depth: int = RETRIEVAL_DEPTH) -> float | None:
    """Mean of ``1/rank`` over questions (0 when no relevant passage is within ``depth``), in [0, 1]."""
    if not ranks:
        return None
    return sum(1.0 / r for r in ranks if r is not None and r <= depth) / len(ranks)


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


@dataclass(frozen=True, slots=True)
class EvalSummary:
    """The result of :func:`evaluate`: per-question rows and the metrics over them.

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
        if rows:
            d["rows"] = [r.to_dict() for r in self.rows]
        return d


# --------------------------------------------------------------------------- evaluate


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise QAError(f"threshold must be in [0, 1], got {threshold}")


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


# --------------------------------------------------------------------------- threshold sweep


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


# --------------------------------------------------------------------------- report

_CSV_FIELDS = (
    "id", "question", "gold", "gold_doc_id", "prediction", "abstained", "score", "best_answer",
    "doc_id", "start", "end", "em", "f1", "label", "rank", "latency_ms",
)  # fmt: skip


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return " | ".join(value)
    return value


def write_report(summary: EvalSummary, path: str | Path) -> Path:
    """Write one line per question (see :meth:`QuestionRow.to_dict`) as JSONL or CSV.

    The format follows the suffix: ``.jsonl`` (gold answers as a list) or ``.csv`` (gold answers
    joined with `` | ``, None as an empty cell). Missing folders are created; the file is replaced
    atomically.

    Args:
        summary: the evaluation.
        path: where to write; must end in .jsonl or .csv.

    Returns:
        The path written.

    Raises:
        QAError: another suffix, or the file cannot be written.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise QAError(f"report {str(p)!r}: unknown format {suffix or '(no suffix)'!r}; use .jsonl or .csv")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                if suffix == ".jsonl":
                    for r in summary.rows:
                        fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
                else:
                    writer = csv.DictWriter(fh, fieldnames=_CSV_FIELDS)
                    writer.writeheader()
                    for r in summary.rows:
                        writer.writerow({k: _csv_cell(v) for k, v in r.to_dict().items()})
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise QAError(f"cannot write report {str(p)!r}: {exc.strerror or exc}") from None
    return p


# --------------------------------------------------------------------------- whole runs


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
) -> tuple[EvalSummary, Path | None]:
    """Evaluate a gold file end to end; returns the summary and the index it ran against.

    A JSONL gold file is asked against ``settings.index_dir``. A SQuAD file's paragraphs are
    indexed once into a cache folder (a second run embeds nothing); in ``reader`` mode the
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
    index_dir = Path(settings.index_dir)
    if gold.kind == "squad":
        index_dir = squad_index_dir(gold_path, settings)
        index_documents(gold.documents, index_dir, settings=settings, progress=index_progress)
    assistant = Assistant.open(index_dir, settings)
    try:
        summary = evaluate(assistant, gold, mode=mode, threshold=threshold, progress=progress, limit=limit)
    finally:
        assistant.close()
    return summary, index_dir


def select_articles(gold: GoldSet, titles: Sequence[str], *, skip: Sequence[str] = ()) -> GoldSet:
    """The questions of the given SQuAD article titles (all when none are given), less those of ``skip``.

    Raises:
        QAError: ``gold`` is not a SQuAD file, or a title is not one of its articles.
    """
    if gold.kind != "squad":
        raise QAError(f"{gold.path}: {'--article' if titles else '--skip-article'} needs a SQuAD file")
    known = {d.title for d in gold.documents}
    missing = [t for t in (*titles, *skip) if t not in known]
    if missing:
        raise QAError(f"{gold.path}: no article titled {', '.join(map(repr, missing))}")
    wanted = (set(titles) or known) - set(skip)
    by_doc = {d.doc_id: d.title for d in gold.documents}
    examples = tuple(e for e in gold.examples if by_doc.get(e.doc_id or "") in wanted)
    return replace(gold, examples=examples)


def save_threshold(index_dir: str | Path, threshold: float) -> None:
    """Store the abstention threshold in the index, where `qa ask` and `qa chat` pick it up."""
    from qa.store import PassageStore

    _check_threshold(threshold)
    with PassageStore.open_for_write(index_dir) as store:
        store.set_setting("min_score", float(threshold))
