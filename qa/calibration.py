"""Calibration: the score `qa` shows is the estimated probability that an answer is right.

The reader alone scores a span by one window's logit margin over "no answer"; that ignores most of the
evidence `qa` has and is no probability (wrong answers score near 1 on documents that do not hold the
answer). Here every candidate answer gets a vector of evidence (:func:`evidence`): the reader's margin and
its lead over the runner-up, how many retrieved passages hold the same answer, the passage's rank and dense
cosine, the best cosine of the question to the index, how much of the question's content is in the answer's
sentence, the answer's length, whether its shape fits the question word, and whether the question negates
what the answer's sentence states. A logistic regression over it (fitted by eval/fit_calibration.py, shipped
as JSON next to the reader's weights, no pickle) turns that into P(right), where right means F1 >= 0.5
against the gold answers. Two regressions, in fact: one for the reader's best span of a question (the answer
`qa` gives or abstains on) and one for its other candidates (the alternatives it lists), which are another
population: fitted on the best spans alone, the first separates the questions to answer from those to
abstain on better than one fit over every candidate (measured on the tune articles: README, "What the score
means").

A calibration is fitted for one reader: it records the digest of the reader's weights and config
(:func:`qa.onnx_models.weights_digest`, the key of the reader's ONNX exports too), and loading it for
another reader raises :class:`~qa.errors.CalibrationError` naming both.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qa.errors import CalibrationError
from qa.metrics import normalize_answer
from qa.schema import Answer, Hit

#: The file name of a reader's calibration, inside the reader's folder.
CALIBRATION_FILE = "calibration.json"
FORMAT = "qa-calibration/2"
#: The earlier format (one regression for every candidate), still read.
FORMAT_V1 = "qa-calibration/1"
#: What "right" means for the probability.
LABEL = "f1>=0.5"

#: The evidence of one candidate answer, in the order the model's coefficients use.
FEATURES = (
    "margin",  # reader: span logit minus the no-answer logit of its window, clipped to +-MARGIN_CLIP
    "lead",  # margin minus the best margin of the candidates that are other answers (no word in common)
    "log_rank",  # ln(1 + rank of the answer's passage)
    "support",  # ln(number of retrieved passages whose text holds the same normalized answer)
    "passage_cosine",  # dense cosine of the question and the answer's passage
    "top_cosine",  # best dense cosine of the question and any retrieved passage: is the topic in the index?
    "sentence_overlap",  # share of the question's content words found in the answer's sentence
    "passage_overlap",  # best share of the question's content words found in one retrieved passage
    "answer_in_question",  # share of the answer's words that the question already holds
    "log_length",  # ln(1 + words in the answer)
    "type_fit",  # +1 the answer's shape fits the question word (a number for "how many"), -1 it does not, 0 unknown
    "negation_mismatch",  # 1 when the question is negated ("not", "never", "n't") and the answer's sentence is not
)
MARGIN_CLIP = 15.0
#: A probability is kept within [0.001, 0.999]: the evidence never makes an answer certain.
MAX_LOGIT = math.log(999.0)
#: Candidates the reader proposes per question before they are scored.
CANDIDATES = 5

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "a an the of in on at to for from by with about as into over after before during between through under "
    "and or but not no nor so than then that this these those there here it its is are was were be been being "
    "do does did done has have had having what which who whom whose when where why how whatever many much "
    "can could would should will shall may might must i you he she we they me him her us them my your his our "
    "their one ones also if s".split()
)
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec").split()

_NEGATIONS = frozenset("not no never none nothing nobody nowhere neither nor without cannot".split())
#: "whether or not", "may or may not": no negation of what is asked
_OR_NOT = re.compile(r"\bor not\b|\bor (may|might|can|could|will|would|does|do|did|is|are|was|were) not\b")

_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred "
    "thousand million billion trillion dozen half several few".split()
)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _overlap(question_words: set[str], text: str) -> float:
    if not question_words:
        return 0.0
    return len(question_words & set(_WORD.findall(text.lower()))) / len(question_words)


def _negated(text: str) -> bool:
    """Whether a text holds a negation word ("didn't" counts as "did not"; "whether or not" does not count)."""
    text = _OR_NOT.sub(" ", text.lower().replace("n't", " not"))
    return any(w in _NEGATIONS for w in _WORD.findall(text))


def _type_fit(question: str, answer: str) -> float:
    """+1 when the answer's shape fits what the question asks for, -1 when it does not, 0 when unknown."""
    q = question.lower()
    has_digit = any(ch.isdigit() for ch in answer)
    if re.search(r"\bhow (many|much|long|old|far|large|big|tall|high)\b|\bwhat (year|percentage|percent)\b"
                 r"|\bin what year\b|\bwhich year\b", q):
        return 1.0 if has_digit or any(w in _NUMBER_WORDS for w in _WORD.findall(answer.lower())) else -1.0
    if re.search(r"\bwhen\b", q):
        words = _WORD.findall(answer.lower())
        return 1.0 if has_digit or any(w in _MONTHS for w in words) else -1.0
    if re.search(r"\bwho(m|se)?\b", q):
        return 1.0 if any(w[:1].isupper() for w in answer.split()) else -1.0
    return 0.0


def _clip(x: float, bound: float = MARGIN_CLIP) -> float:
    return max(-bound, min(bound, x))


def reader_margin(answer: Answer, hit_rank: int, rank_penalty: float) -> float:
    """The reader's raw margin of an answer, from its score ``logistic(margin - rank_penalty * ln(1 + rank))``."""
    p = min(max(answer.score, 1e-9), 1 - 1e-9)
    return _clip(math.log(p / (1 - p)) + rank_penalty * math.log1p(hit_rank))


@dataclass(frozen=True, slots=True)
class Evidence:
    """What is known about one candidate answer; ``values`` follow :data:`FEATURES` (None: not measured)."""

    values: tuple[float | None, ...]

    def as_dict(self) -> dict[str, float | None]:
        """Feature name to value."""
        return dict(zip(FEATURES, self.values, strict=True))


def evidence(question: str, answers: Sequence[Answer], hits: Sequence[Hit], rank_penalty: float) -> list[Evidence]:
    """The evidence of each of a question's candidate answers (as the reader scored them), in their order.

    Args:
        question: the question asked.
        answers: the reader's candidates, with the reader's own scores.
        hits: the retrieved passages the candidates come from.
        rank_penalty: the reader's ``rank_penalty``, so that its raw margins can be recovered.
    """
    by_chunk = {h.chunk.chunk_id: h for h in hits}
    q_words = _content_words(question)
    q_all = set(_WORD.findall(question.lower()))
    norm_passages = [f" {normalize_answer(h.chunk.text)} " for h in hits]
    cosines = [h.dense_score for h in hits if h.dense_score is not None]
    top_cosine = max(cosines) if cosines else None
    passage_overlap = max((_overlap(q_words, h.chunk.text) for h in hits), default=0.0)
    # a question that negates what the passage states ("What are many classes not defined by?" against "Many
    # classes are defined using ...") asks what the text does not say: a common kind of unanswerable question
    q_negated = _negated(question)
    margins = []
    for a in answers:
        hit = by_chunk.get(a.chunk_id)
        if hit is None:
            raise ValueError(f"answer {a.text!r} cites chunk {a.chunk_id!r}, which is not among the hits")
        margins.append(reader_margin(a, hit.rank, rank_penalty))
    norms = [normalize_answer(a.text) for a in answers]
    words = [set(n.split()) for n in norms]
    out = []
    for i, a in enumerate(answers):
        hit = by_chunk[a.chunk_id]
        # the same answer found again (or a span sharing its words) backs it up rather than competing with it
        others = [m for j, m in enumerate(margins) if j != i and not (words[i] & words[j])]
        norm = norms[i]
        support = sum(f" {norm} " in p for p in norm_passages) if norm else 0
        a_words = _WORD.findall(a.text.lower())
        out.append(Evidence((
            margins[i],
            _clip(margins[i] - max(others, default=-MARGIN_CLIP)),
            math.log1p(hit.rank),
            math.log(max(1, support)),
            hit.dense_score,
            top_cosine,
            _overlap(q_words, a.context),
            passage_overlap,
            (sum(w in q_all for w in a_words) / len(a_words)) if a_words else 0.0,
            math.log1p(len(a_words)),
            _type_fit(question, a.text),
            float(q_negated and not _negated(a.context)),
        )))
    return out


def weights_digest(reader_dir: str | Path) -> str | None:
    """The digest a calibration is tied to: :func:`qa.onnx_models.weights_digest` of a local reader folder
    (hashed once per process); None for a Hugging Face id or a folder without weights."""
    from qa.onnx_models import weights_digest as digest

    d = Path(reader_dir)
    if not d.is_dir() or not any(d.glob("*.safetensors")) and not any(d.glob("*.bin")):
        return None
    return digest(d)


@dataclass(frozen=True, slots=True)
class Logistic:
    """A logistic regression over :data:`FEATURES`, standardized: P = sigmoid(coef . (x - mean) / scale + intercept).

    A feature that was not measured (a dense cosine under BM25 retrieval) counts as its mean on the fitting data.
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        n = len(FEATURES)
        if not len(self.mean) == len(self.scale) == len(self.coef) == n:
            raise CalibrationError(f"a calibration needs {n} values per vector ({', '.join(FEATURES)})")
        if not all(s > 0 for s in self.scale):
            raise CalibrationError("a calibration's scales must be positive")

    def probability(self, ev: Evidence) -> float:
        """P(right) of one candidate's evidence."""
        z = self.intercept
        for x, m, s, c in zip(ev.values, self.mean, self.scale, self.coef, strict=True):
            z += c * (((m if x is None else x) - m) / s)
        return 1.0 / (1.0 + math.exp(-_clip(z, MAX_LOGIT)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"mean": list(self.mean), "scale": list(self.scale), "coef": list(self.coef),
                "intercept": self.intercept}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Logistic:
        """Read :meth:`to_dict`'s form (raises KeyError, TypeError or ValueError when malformed)."""
        return cls(tuple(map(float, d["mean"])), tuple(map(float, d["scale"])), tuple(map(float, d["coef"])),
                   float(d["intercept"]))


@dataclass(frozen=True, slots=True)
class Calibrator:
    """P(right) of a question's candidate answers: ``best`` scores the reader's best span (the answer given, or
    abstained on), ``others`` the rest of its candidates.

    ``reader_sha256`` names the reader weights it was fitted for; ``min_score`` is the abstention threshold
    chosen with it (used where neither the user nor the index sets one; None: the settings').
    """

    best: Logistic
    others: Logistic
    reader_sha256: str
    info: dict[str, Any]
    min_score: float | None = None

    def __post_init__(self) -> None:
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise CalibrationError(f"a calibration's min_score must be in [0, 1], got {self.min_score}")

    def probability(self, ev: Evidence, best: bool = True) -> float:
        """P(right) for one candidate: the reader's best span of its question (``best``) or another one."""
        return (self.best if best else self.others).probability(ev)

    def rescore(self, question: str, answers: Sequence[Answer], hits: Sequence[Hit],
                rank_penalty: float) -> list[Answer]:
        """The candidates with their calibrated probability as score: the reader's best span first, then the
        others by probability (ties keep the reader's order).

        The probability decides whether to answer and says how sure; which span to give stays the reader's
        choice: on the tune records of readers v5 and v6, giving the most probable candidate instead lost 0.6 to
        1.2 F1 at every abstention level (its label, F1 >= 0.5, does not tell a span from a longer one)."""
        evs = evidence(question, answers, hits, rank_penalty)
        scored = [replace(a, score=self.probability(ev, best=i == 0))
                  for i, (a, ev) in enumerate(zip(answers, evs, strict=True))]
        return scored[:1] + sorted(scored[1:], key=lambda a: -a.score)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see :meth:`load`)."""
        return {
            "format": FORMAT,
            "label": LABEL,
            "features": list(FEATURES),
            "best": self.best.to_dict(),
            "others": self.others.to_dict(),
            "reader_sha256": self.reader_sha256,
            "min_score": self.min_score,
            "info": self.info,
        }

    def save(self, path: str | Path) -> None:
        """Write the JSON file."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, reader_dir: str | Path | None = None) -> Calibrator:
        """Read a calibration file; when ``reader_dir`` is given, refuse it unless fitted for that reader.

        A file of the first format (one regression for every candidate) scores every candidate with it.

        Raises:
            CalibrationError: the file is missing or malformed, or was fitted for other reader weights.
        """
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(f"calibration file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"calibration file {path} cannot be read: {exc}") from None
        if not isinstance(d, dict) or d.get("format") not in (FORMAT, FORMAT_V1):
            raise CalibrationError(f"{path} is not a {FORMAT} file")
        if d.get("features") != list(FEATURES):
            raise CalibrationError(
                f"{path} was fitted on the features {d.get('features')}, not this version's {list(FEATURES)}: refit it")
        try:
            if d["format"] == FORMAT_V1:
                best = others = Logistic.from_dict(d)
            else:
                best, others = Logistic.from_dict(d["best"]), Logistic.from_dict(d["others"])
            cal = cls(best, others, str(d["reader_sha256"]), dict(d.get("info", {})),
                      None if d.get("min_score") is None else float(d["min_score"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{path} is malformed: {exc!r}") from None
        if reader_dir is not None:
            digest = weights_digest(reader_dir)
            if digest != cal.reader_sha256:
                fitted = cal.info.get("reader", "another reader")
                raise CalibrationError(
                    f"calibration {path} was fitted for {fitted} (weights sha256 {cal.reader_sha256[:12]}), not for "
                    f"the reader {reader_dir}"
                    + (f" (weights sha256 {digest[:12]})" if digest else " (no local weights file)")
                    + ": refit it for this reader (eval/fit_calibration.py), or pass --calibration none")
        return cal


def find_calibration(setting: str, reader_dir: str | Path) -> Calibrator | None:
    """The calibration the ``calibration`` setting names for a reader.

    ``"auto"``: the reader folder's ``calibration.json`` if it has one (the shipped reader does), else None
    (the reader's own score is shown); ``"none"``: None; anything else is a path to a calibration file, which
    must have been fitted for this reader.
    """
    if setting == "none":
        return None
    if setting == "auto":
        own = Path(reader_dir) / CALIBRATION_FILE
        return Calibrator.load(own, reader_dir) if own.is_file() else None
    return Calibrator.load(setting, reader_dir)
