"""Read SQuAD-format files (v1.1 and v2.0) into typed values, naming the culprit on bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qa.errors import GoldFileError


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    """One question; ``answers`` is empty for an unanswerable (v2.0 ``is_impossible``) one."""

    qid: str
    question: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]
    is_impossible: bool


@dataclass(frozen=True, slots=True)
class SquadParagraph:
    """A context paragraph and its questions."""

    context: str
    questions: tuple[SquadQuestion, ...]


@dataclass(frozen=True, slots=True)
class SquadArticle:
    """An article (title) and its paragraphs, in file order."""

    title: str
    paragraphs: tuple[SquadParagraph, ...]


def load_squad(path: str | Path) -> list[SquadArticle]:
    """Parse a SQuAD v1.1 or v2.0 JSON file.

    Args:
        path: the file.

    Returns:
        Its articles in file order.

    Raises:
        GoldFileError: the file is not valid SQuAD JSON; the message names what is wrong.
    """
    p = str(path)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8-sig"))  # a leading byte-order mark is fine
    except FileNotFoundError:
        raise GoldFileError(p, None, "file not found") from None
    except OSError as exc:
        raise GoldFileError(p, None, f"cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise GoldFileError(p, line, f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise GoldFileError(p, None, "not a SQuAD file: expected an object with a 'data' list")
    articles = []
    for a_i, art in enumerate(raw["data"]):
        where = f"data[{a_i}]"
        if not isinstance(art, dict) or not isinstance(art.get("paragraphs"), list):
            raise GoldFileError(p, None, f"{where}: expected an object with a 'paragraphs' list")
        paragraphs = []
        for p_i, par in enumerate(art["paragraphs"]):
            pwhere = f"{where}.paragraphs[{p_i}]"
            if not isinstance(par, dict) or not isinstance(par.get("context"), str):
                raise GoldFileError(p, None, f"{pwhere}: missing string 'context'")
            context = par["context"]
            questions = []
            for q_i, qa in enumerate(par.get("qas", [])):
                qwhere = f"{pwhere}.qas[{q_i}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    raise GoldFileError(p, None, f"{qwhere}: missing string 'question'")
                impossible = bool(qa.get("is_impossible", False))
                answers = qa.get("answers", [])
                if not isinstance(answers, list):
                    raise GoldFileError(p, None, f"{qwhere}: 'answers' must be a list")
                texts, starts = [], []
                for ans in answers:
                    if (
                        not isinstance(ans, dict)
                        or not isinstance(ans.get("text"), str)
                        or not isinstance(ans.get("answer_start"), int)
                    ):
                        raise GoldFileError(
                            p, None, f"{qwhere}: each answer needs 'text' and 'answer_start'"
                        )
                    texts.append(ans["text"])
                    starts.append(ans["answer_start"])
                if not impossible and not texts:
                    raise GoldFileError(p, None, f"{qwhere}: answerable question without answers")
                questions.append(
                    SquadQuestion(
                        qid=str(qa.get("id", f"{a_i}-{p_i}-{q_i}")),
                        question=qa["question"],
                        answers=() if impossible else tuple(texts),
                        answer_starts=() if impossible else tuple(starts),
                        is_impossible=impossible,
                    )
                )
            paragraphs.append(SquadParagraph(context=context, questions=tuple(questions)))
        articles.append(SquadArticle(title=str(art.get("title", f"article-{a_i}")), paragraphs=tuple(paragraphs)))
    return articles
