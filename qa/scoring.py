"""Scoring one gold question: answer matching, passage relevance, failure labels and retrieval ranks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from qa.gold import GoldExample
from qa.metrics import exact_match, f1_score, max_over_gold, normalize_answer
from qa.schema import Chunk, Hit, QAResult

__all__ = [
    "RETRIEVAL_DEPTH",
    "QuestionRow",
    "answer_in_text",
    "failure_label",
    "first_relevant_rank",
    "is_relevant",
    "mean_reciprocal_rank",
    "recall_at_k",
    "score_question",
    "score_retrieval",
]

#: The depth retrieved for the retrieval recall and for MRR.
RETRIEVAL_DEPTH = 20


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
