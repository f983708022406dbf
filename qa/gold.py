"""Gold files: the JSONL and SQuAD formats, read into GoldSet and GoldExample."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qa.errors import GoldFileError, QAError
from qa.schema import Document
from qa.squad import load_squad

__all__ = ["GoldExample", "GoldSet", "gold_kind", "load_gold", "load_gold_jsonl", "select_articles", "squad_corpus"]


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
