"""Span decoding: turn start/end logits of one tokenized window into scored character spans.

Pure numpy, shared by the reader and the training recipe's evaluation, so that the
figures measured while training are the ones `qa eval` reproduces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.config import SPAN_BREAKS
from qa.errors import ModelLoadError


@dataclass(frozen=True, slots=True)
class SpanCandidate:
    """A candidate answer inside one window: character offsets into the window's text."""

    char_start: int
    char_end: int
    logit: float  # start_logit + end_logit
    null_logit: float  # the window's no-answer logit (CLS start + CLS end)

    @property
    def margin(self) -> float:
        """How much the model prefers this span over "no answer" in the same window."""
        return self.logit - self.null_logit


def decode_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: list[tuple[int, int]] | np.ndarray,
    context_mask: np.ndarray,
    *,
    max_answer_tokens: int,
    n_best: int = 20,
    text: str | None = None,
    span_breaks: str = "longer",
) -> list[SpanCandidate]:
    """Best spans of one window, best first.

    Args:
        start_logits: float[seq] start logits of the window.
        end_logits: float[seq] end logits of the window.
        offsets: (char_start, char_end) of each token in the passage text.
        context_mask: bool[seq], True where a token belongs to the passage.
        max_answer_tokens: longest span (in tokens) that is considered.
        n_best: how many start and end candidates to pair up.
        text: the passage text ``offsets`` index; needed by ``span_breaks="pieces"``.
        span_breaks: what a pair whose span crosses a paragraph break of ``text`` gives (one of
            :data:`qa.config.SPAN_BREAKS`): ``"longer"`` the crossing span itself, scored by the pair
            (:func:`tidy_span` later keeps its longer side); ``"pieces"`` its two end pieces instead, each scored
            by its own first and last token: the start piece ends at the last token before the first break, the
            end piece starts at the first token after the last one.

    Returns:
        Spans sorted by logit, at most ``n_best``, each with the window's null logit.
    """
    check_span_breaks(span_breaks)
    if span_breaks == "pieces" and text is None:
        raise ValueError('span_breaks="pieces" needs the passage text')
    start_logits = np.asarray(start_logits, dtype=np.float32)
    end_logits = np.asarray(end_logits, dtype=np.float32)
    null_logit = float(start_logits[0] + end_logits[0])
    ctx = np.flatnonzero(context_mask)
    if ctx.size == 0:
        return []
    k = min(n_best, ctx.size)
    s_idx = ctx[np.argsort(-start_logits[ctx], kind="stable")[:k]]
    e_idx = ctx[np.argsort(-end_logits[ctx], kind="stable")[:k]]
    found: dict[tuple[int, int], SpanCandidate] = {}

    def add(s: int, e: int) -> None:
        cs, ce = int(offsets[s][0]), int(offsets[e][1])
        if ce <= cs:
            return
        logit = float(start_logits[s] + end_logits[e])
        prev = found.get((cs, ce))
        if prev is None or prev.logit < logit:
            found[(cs, ce)] = SpanCandidate(cs, ce, logit, null_logit)

    breaks = [(m.start(), m.end()) for m in _PARAGRAPH_BREAK.finditer(text)] if span_breaks == "pieces" else []
    for s in s_idx:
        for e in e_idx:
            if e < s or e - s + 1 > max_answer_tokens:
                continue
            cs, ce = int(offsets[s][0]), int(offsets[e][1])
            crossed = [b for b in breaks if cs < b[1] and b[0] < ce]
            if not crossed:
                add(s, e)
                continue
            inside = ctx[(ctx >= s) & (ctx <= e)]
            before = [t for t in inside if int(offsets[t][1]) <= crossed[0][0]]
            after = [t for t in inside if int(offsets[t][0]) >= crossed[-1][1]]
            if before:
                add(s, int(before[-1]))
            if after:
                add(int(after[0]), e)
    return sorted(found.values(), key=lambda c: (-c.logit, c.char_start, c.char_end))[:n_best]


def check_span_breaks(value: str) -> str:
    """``value`` when it names a way of decoding spans across paragraph breaks (:data:`qa.config.SPAN_BREAKS`)."""
    if value not in SPAN_BREAKS:
        raise ValueError(f"span_breaks must be one of {', '.join(SPAN_BREAKS)}, got {value!r}")
    return value


#: A reader folder's own decoding choices, shipped beside its weights as its calibration is.
DECODING_FILE = "decoding.json"


def reader_span_breaks(folder: str, setting: str = "auto") -> str:
    """The span decoder for the reader at ``folder``: ``setting`` unless it is "auto", else the folder's
    ``decoding.json`` choice (``{"span_breaks": "pieces"}``), else "longer" (also for a Hugging Face id).
    A decoding file that names no known decoder raises :class:`~qa.errors.ModelLoadError`."""
    if setting != "auto":
        return check_span_breaks(setting)
    path = Path(folder) / DECODING_FILE
    if not path.is_file():
        return SPAN_BREAKS[0]
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["span_breaks"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(f"{path}: not a decoding file with a \"span_breaks\" entry ({err})") from err
    try:
        return check_span_breaks(value)
    except ValueError as err:
        raise ModelLoadError(f"{path}: {err}") from err


def answer_score(margin: float, rank: int, rank_penalty: float) -> float:
    """Score in (0, 1) of a span whose passage was retrieved at 0-based ``rank``.

    ``logistic(margin - rank_penalty * ln(1 + rank))``: the top passage keeps the reader's own
    preference for the span over "no answer"; lower passages need a clearer one.
    """
    if rank < 0:
        raise ValueError(f"rank must not be negative, got {rank}")
    return sigmoid(margin - rank_penalty * float(np.log1p(rank)))


def sigmoid(x: float) -> float:
    """Numerically stable logistic function."""
    if x >= 0:
        return float(1.0 / (1.0 + np.exp(-x)))
    z = float(np.exp(x))
    return z / (1.0 + z)


_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_PAIRS = {"(": ")", "[": "]", "{": "}", "“": "”", "‘": "’", "«": "»"}
_CLOSERS = {v: k for k, v in _PAIRS.items()}
_LEADING_STRAY = set(",.;:!?)]}”’»/|*_~`=+-–—") | {"'", '"'}
_TRAILING_STRAY = set(",;:([{“‘«/|*_~`=+-–—") | {"'", '"'}


#: Letters (Latin scripts), digits and "_": what a word, or an identifier like PYTHON_DOTENV_DISABLED, is made of
_WORD_CHAR = re.compile(r"[0-9A-Za-z_\u00C0-\u024F]")
#: The most characters a span grows by on each side to take in the rest of its word (a longer run is no word)
_MAX_WORD_GROWTH = 64


def whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` grown so that it neither starts nor ends inside a word.

    A reader's tokenizer splits words into pieces and identifiers at "_" (``PYTHON`` ``_`` ``DOTENV`` ...), and
    a span may end after a piece: ``PYTHON`` of ``PYTHON_DOTENV_DISABLED``, ``Bonn`` of ``Bonnefoy``, ``rich``
    of ``rich.spinner``. An answer is the whole word (a "." between two word characters is part of it).
    Scripts written without spaces are left alone (only Latin letters, digits and "_" count), and a run
    longer than 64 characters on a side is not taken in.
    """
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"span [{start}, {end}) is not inside a text of {len(text)} characters")
    if start == end:
        return start, end

    def word(i: int) -> bool:
        # a word character, or a "." inside a word (rich.spinner, 3.14, U.S) but not a sentence's end that lost
        # its space ("stories.Political")
        if text[i] == ".":
            if not 0 < i < len(text) - 1:
                return False
            before, after = text[i - 1], text[i + 1]
            return (bool(_WORD_CHAR.match(before)) and bool(_WORD_CHAR.match(after))
                    and not (before.islower() and after.isupper()))
        return bool(_WORD_CHAR.match(text[i]))

    s = start
    while s > 0 and word(s) and word(s - 1) and start - s < _MAX_WORD_GROWTH:
        s -= 1
    e = end
    while e < len(text) and word(e - 1) and word(e) and e - end < _MAX_WORD_GROWTH:
        e += 1
    s = s if not (s > 0 and word(s) and word(s - 1)) else start
    e = e if not (e < len(text) and word(e - 1) and word(e)) else end
    return s, e


def clean_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The answer a reader's span ``text[start:end]`` stands for: grown to whole words (:func:`whole_words`)
    and to a command-line option's dashes (``G`` of ``-G Ninja`` -> ``-G``, ``enable-tui`` -> ``--enable-tui``),
    then tidied (:func:`tidy_span`); None when nothing is left. What `qa` and the training's dev scoring give."""
    start, end = whole_words(text, start, end)
    if start < end:
        for dashes in (2, 1):
            if _is_option(text, start - dashes):
                start -= dashes
                break
    return tidy_span(text, start, end)


def _is_option(text: str, at: int) -> bool:
    """True when ``text[at:]`` starts with a command-line option: one or two "-" right before a letter, digit
    or "_", at the start of the text or after a character that is not part of a word (``-G``, ``--target``,
    `` `-qq` ``; not the ``-based`` of ``model-based``, not a dash set off by spaces)."""
    if at < 0 or not _OPTION.match(text, at):
        return False
    before = text[at - 1] if at else " "
    return not (_WORD_CHAR.match(before) or before in "-.")


def tidy_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``text[start:end]`` trimmed to a clean answer, or None when nothing is left.

    An answer never spans a paragraph break (the longer side is kept: in a README view a span the model begins
    at a heading or list label and ends in the block below holds its answer in that block; dropping such spans,
    or scoring their pieces on their own logits, measured worse with reader v6: eval/results/decode-pieces-rule.md;
    ``decode_window(span_breaks="pieces")`` does the latter, and reader v7 ships it: its spans never cross a
    break here), never starts or ends with white space, stray punctuation or markup characters, and holds no
    unbalanced bracket or quote at its edges (``[NaCl`` -> ``NaCl``, ``RFC8878]`` -> ``RFC8878``, ``"Moscow`` ->
    ``Moscow``); balanced ones stay (``(ISIS-K)``, ``"Crocus City Hall"``), and so do the first characters of a
    path or dotfile (``~/.pyenv/version``, ``./configure``, ``.python-version``) and a command-line option's
    dashes (``-G``, ``--enable-tui``); a shell prompt or heading mark at a line's start goes (``$ make`` ->
    ``make``, and a ``$`` alone is no answer). The result is a sub-span: offsets still index ``text``.
    """
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"span [{start}, {end}) is not inside a text of {len(text)} characters")
    pieces, pos = [], start
    for m in _PARAGRAPH_BREAK.finditer(text, start, end):
        pieces.append((pos, m.start()))
        pos = m.end()
    pieces.append((pos, end))
    start, end = max(pieces, key=lambda p: (len(text[p[0] : p[1]].strip()), -p[0]))
    for _ in range(len(text)):  # each pass removes at least one character or stops
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start >= end:
            return None
        first, last = text[start], text[end - 1]
        inner = text[start:end]
        if first in _PAIRS and _PAIRS[first] not in inner[1:]:
            start += 1
        elif last in _CLOSERS and _CLOSERS[last] not in inner[:-1]:
            end -= 1
        elif first == '"' and inner.count('"') % 2 == 1:
            start += 1
        elif last == '"' and inner.count('"') % 2 == 1:
            end -= 1
        elif first in _PROMPTS and _at_line_start(text, start) and (end == start + 1 or text[start + 1] in " \t"):
            start += 1  # a shell prompt or heading mark ("$ make", "% gdb", "# Install"), or one alone
        elif (first in _LEADING_STRAY and first not in _PAIRS and first != '"' and not _PATH_START.match(inner)
              and not _is_option(text, start)):
            start += 1
        elif last in _TRAILING_STRAY and last not in _CLOSERS and last != '"':
            end -= 1
        elif last == "." and _sentence_period(inner):
            end -= 1
        elif (cut := _unmatched(inner)) is not None:
            if cut[0] == "opener":
                end = start + cut[1]  # "(a) and (b" -> "(a) and"
            else:
                start = start + cut[1] + 1  # "x) and (y)" -> "and (y)"
        else:
            break
    return (start, end) if start < end else None


# A path or a dotfile starts with what is stray punctuation elsewhere: ~/.pyenv/version, ./configure, /usr/bin,
# .python-version, .5 (a decimal).
_PATH_START = re.compile(r"(~|\.{1,2})?/[\w.~-]|\.[\w-]")
# What starts a shell command line or a Markdown heading: not part of an answer at the start of a line.
_PROMPTS = frozenset("$%>#")
# A command-line option: -G, -qq, --enable-tui (see _is_option for what may stand before it).
_OPTION = re.compile(r"--?[0-9A-Za-z_]")
_WORD_BEFORE_PERIOD = re.compile(r"(\d|[a-z]{4,}|[A-Za-z]{2,}[a-z]{2,})\.$")


def _at_line_start(text: str, i: int) -> bool:
    """True when only spaces or tabs stand between the line's start and ``text[i]``."""
    line_start = text.rfind("\n", 0, i) + 1
    return not text[line_start:i].strip(" \t")


def _sentence_period(inner: str) -> bool:
    """True when a final "." ends a sentence rather than an abbreviation (2015. / attack. vs U.S. / Inc.)."""
    return bool(_WORD_BEFORE_PERIOD.search(inner)) and not re.search(r"\b[A-Za-z]\.[A-Za-z]\.$", inner)


def _unmatched(inner: str) -> tuple[str, int] | None:
    """The first bracket with no partner inside ``inner``: ("opener", index) or ("closer", index)."""
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(inner):
        if ch in _PAIRS:
            stack.append((ch, i))
        elif ch in _CLOSERS:
            if stack and stack[-1][0] == _CLOSERS[ch]:
                stack.pop()
            else:
                return ("closer", i)
    return ("opener", stack[0][1]) if stack else None
