"""Typed values that cross module boundaries: documents, chunks, hits, answers, results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open character offsets ``[start, end)``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def __len__(self) -> int:
        return self.end - self.start

    def slice(self, text: str) -> str:
        """The text this span covers; raises if the span runs past the text."""
        if self.end > len(text):
            raise ValueError(f"span [{self.start}, {self.end}) ends past the text ({len(text)} chars)")
        return text[self.start : self.end]


@dataclass(frozen=True, slots=True)
class Document:
    """A document exactly as read from disk; every offset in the library points into ``text``."""

    doc_id: str
    text: str
    title: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"doc_id": self.doc_id, "text": self.text, "title": self.title, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Document:
        """Inverse of :meth:`to_dict`."""
        return cls(d["doc_id"], d["text"], d.get("title", ""), d.get("source", ""))


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document. Invariant: ``document.text[char_start:char_end] == text``."""

    chunk_id: str
    doc_id: str
    char_start: int
    char_end: int
    text: str

    def __post_init__(self) -> None:
        if self.char_start < 0 or self.char_end < self.char_start:
            raise ValueError(f"chunk {self.chunk_id!r}: invalid offsets [{self.char_start}, {self.char_end})")
        if self.char_end - self.char_start != len(self.text):
            raise ValueError(
                f"chunk {self.chunk_id!r}: offsets [{self.char_start}, {self.char_end}) "
                f"do not match its {len(self.text)} chars of text"
            )

    @property
    def span(self) -> Span:
        """The chunk's place in its document."""
        return Span(self.char_start, self.char_end)

    def check(self, document: Document) -> None:
        """Raise ValueError unless the chunk slices back out of ``document``."""
        if document.doc_id != self.doc_id:
            raise ValueError(f"chunk {self.chunk_id!r} belongs to {self.doc_id!r}, not {document.doc_id!r}")
        if self.char_end > len(document.text):
            raise ValueError(
                f"chunk {self.chunk_id!r} ends at {self.char_end} but document "
                f"{document.doc_id!r} has {len(document.text)} chars"
            )
        if document.text[self.char_start : self.char_end] != self.text:
            raise ValueError(f"chunk {self.chunk_id!r} does not match document {document.doc_id!r} text")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "char_start": self.char_start,
            "char_end": self.char_end,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chunk:
        """Inverse of :meth:`to_dict`."""
        return cls(d["chunk_id"], d["doc_id"], int(d["char_start"]), int(d["char_end"]), d["text"])


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk with its retrieval score and 0-based rank.

    ``dense_score`` is the cosine of the question's vector and the chunk's, where retrieval computed it:
    dense and hybrid search set it (hybrid, for a chunk only BM25 found, to the lowest cosine among the
    dense candidates, a bound the chunk's own cosine is below); BM25 search leaves it None.
    """

    chunk: Chunk
    score: float
    rank: int
    source: str = ""
    dense_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``passages`` entry of ``qa ask --json``."""
        return {
            "doc_id": self.chunk.doc_id,
            "start": self.chunk.char_start,
            "end": self.chunk.char_end,
            "score": float(self.score),
            "chunk_id": self.chunk.chunk_id,
            "rank": self.rank,
            "text": self.chunk.text,
            "source": self.source,
            "dense_score": None if self.dense_score is None else float(self.dense_score),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hit:
        """Inverse of :meth:`to_dict`."""
        chunk = Chunk(d["chunk_id"], d["doc_id"], int(d["start"]), int(d["end"]), d["text"])
        dense = d.get("dense_score")
        return cls(chunk, float(d["score"]), int(d["rank"]), d.get("source", ""),
                   None if dense is None else float(dense))


@dataclass(frozen=True, slots=True)
class Answer:
    """An extracted answer with its citation.

    ``span`` indexes the document text; ``context`` is the sentence(s) around the answer,
    starting at document offset ``context_start``; ``context_span`` is the answer inside ``context``.
    Both slice back to ``text``.
    """

    text: str
    score: float  # in [0, 1]: the estimated probability that the answer is right (qa.calibration), else the reader's
    #              preference for this span over "no answer" (a reader with no calibration fitted for it)
    doc_id: str
    span: Span
    chunk_id: str
    context: str
    context_span: Span
    source: str = ""

    def __post_init__(self) -> None:
        if self.context_span.slice(self.context) != self.text:
            raise ValueError(f"answer {self.text!r}: context_span does not slice back to it")
        if len(self.span) != len(self.text):
            raise ValueError(f"answer {self.text!r}: span length differs from text length")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"answer score {self.score} is outside [0, 1]")

    @property
    def context_start(self) -> int:
        """Document offset where ``context`` starts."""
        return self.span.start - self.context_span.start

    def check(self, document: Document) -> None:
        """Raise ValueError unless the citation slices back out of ``document``."""
        if document.doc_id != self.doc_id or self.span.slice(document.text) != self.text:
            raise ValueError(
                f"answer {self.text!r} does not slice back out of document {document.doc_id!r} "
                f"at [{self.span.start}, {self.span.end})"
            )
        c0 = self.context_start
        if document.text[c0 : c0 + len(self.context)] != self.context:
            raise ValueError(f"answer context does not slice back out of document {document.doc_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """The ``answers`` entry of ``qa ask --json``."""
        return {
            "text": self.text,
            "score": float(self.score),
            "doc_id": self.doc_id,
            "source": self.source,
            "start": self.span.start,
            "end": self.span.end,
            "context": self.context,
            "context_start": self.context_start,
            "chunk_id": self.chunk_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        """Inverse of :meth:`to_dict`."""
        start, end = int(d["start"]), int(d["end"])
        c0 = int(d.get("context_start", start))
        return cls(
            text=d["text"],
            score=float(d["score"]),
            doc_id=d["doc_id"],
            span=Span(start, end),
            chunk_id=d.get("chunk_id", ""),
            context=d.get("context", d["text"]),
            context_span=Span(start - c0, end - c0),
            source=d.get("source", ""),
        )


@dataclass(frozen=True, slots=True)
class QAResult:
    """The answers to one question, best first, and the passages they came from.

    ``answers == []`` means the reader abstained: the documents do not answer the question. ``candidates``
    then holds what it would have answered, best first, each scoring below the threshold.
    """

    question: str
    answers: tuple[Answer, ...]
    hits: tuple[Hit, ...]
    candidates: tuple[Answer, ...] = ()

    @property
    def abstained(self) -> bool:
        """True when no answer was good enough."""
        return not self.answers

    @property
    def best(self) -> Answer | None:
        """The top answer, or None when abstaining."""
        return self.answers[0] if self.answers else None

    def to_dict(self) -> dict[str, Any]:
        """The ``qa ask --json`` object."""
        return {
            "question": self.question,
            "abstained": self.abstained,
            "answers": [a.to_dict() for a in self.answers],
            "candidates": [a.to_dict() for a in self.candidates],
            "passages": [h.to_dict() for h in self.hits],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QAResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            d["question"],
            tuple(Answer.from_dict(a) for a in d["answers"]),
            tuple(Hit.from_dict(h) for h in d["passages"]),
            tuple(Answer.from_dict(a) for a in d.get("candidates", ())),
        )
