"""Decoding a start/end pair across a paragraph break: the crossing span ("longer") or its pieces ("pieces")."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa.config import Settings
from qa.errors import ModelLoadError
from qa.spans import decode_window, reader_span_breaks

# A title line, a paragraph break, then a body: one token per word, offsets into TEXT.
TEXT = "Moscow Concert Hall Attack\n\nMoscow , Russia – an assault on a concert venue"


def _tokens(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for word in text.split():
        at = text.index(word, pos)
        out.append((at, at + len(word)))
        pos = at + len(word)
    return out


def _window(start_of: dict[str, float], end_of: dict[str, float]):
    """Logits of a window [CLS] + TEXT's words: the named words get the given logits, the others -5."""
    toks = _tokens(TEXT)
    words = [TEXT[a:b] for a, b in toks]
    offsets = [(0, 0)] + toks
    start = np.full(len(offsets), -5.0, dtype=np.float32)
    end = np.full(len(offsets), -5.0, dtype=np.float32)
    start[0] = end[0] = 0.0

    def at(word: str, occurrence: int) -> int:
        return [i for i, w in enumerate(words) if w == word][occurrence] + 1

    for key, value in start_of.items():
        word, occ = key.split("#")
        start[at(word, int(occ))] = value
    for key, value in end_of.items():
        word, occ = key.split("#")
        end[at(word, int(occ))] = value
    mask = np.array([False] + [True] * len(toks))
    return start, end, offsets, mask


def _texts(cands) -> list[tuple[str, float]]:
    return [(TEXT[c.char_start : c.char_end], round(c.logit, 3)) for c in cands]


def test_longer_keeps_the_crossing_pair_at_its_logit():
    start, end, offsets, mask = _window({"Moscow#0": 6.0, "concert#0": 5.0}, {"venue#0": 6.0})
    best = decode_window(start, end, offsets, mask, max_answer_tokens=30, text=TEXT, span_breaks="longer")[0]
    assert TEXT[best.char_start : best.char_end] == TEXT[0:]  # title start to the body's last word
    assert best.logit == pytest.approx(12.0)


def test_pieces_scores_each_piece_by_its_own_tokens():
    # the title's "Moscow" is the best start, the body's "concert" the next; "venue" the best end
    start, end, offsets, mask = _window(
        {"Moscow#0": 6.0, "concert#0": 5.0, "Moscow#1": 1.0}, {"venue#0": 6.0, "Attack#0": 2.0}
    )
    cands = decode_window(start, end, offsets, mask, max_answer_tokens=30, text=TEXT, span_breaks="pieces")
    texts = _texts(cands)
    assert texts[0] == ("concert venue", 11.0)  # a pair inside the body wins
    # the crossing pair's pieces: the title up to its last word, and the body from its first word
    assert ("Moscow Concert Hall Attack", 8.0) in texts
    assert ("Moscow , Russia – an assault on a concert venue", 7.0) in texts
    # no candidate crosses the break
    assert all("\n\n" not in t for t, _ in texts)


def test_pieces_and_longer_agree_without_a_break():
    text = "Moscow , Russia – an assault on a concert venue"
    toks = _tokens(text)
    offsets = [(0, 0)] + toks
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=len(offsets)), rng.normal(size=len(offsets))
    mask = np.array([False] + [True] * len(toks))
    a = decode_window(start, end, offsets, mask, max_answer_tokens=5, text=text, span_breaks="longer")
    b = decode_window(start, end, offsets, mask, max_answer_tokens=5, text=text, span_breaks="pieces")
    assert a == b and a


def test_pieces_needs_the_text_and_a_known_name():
    start, end, offsets, mask = _window({"Moscow#0": 6.0}, {"venue#0": 6.0})
    with pytest.raises(ValueError, match="needs the passage text"):
        decode_window(start, end, offsets, mask, max_answer_tokens=30, span_breaks="pieces")
    with pytest.raises(ValueError, match="span_breaks must be one of longer, pieces, got 'halves'"):
        decode_window(start, end, offsets, mask, max_answer_tokens=30, text=TEXT, span_breaks="halves")
    with pytest.raises(ValueError, match="span_breaks must be auto or one of"):
        Settings(span_breaks="halves")


def test_reader_folder_chooses_its_decoder(tmp_path):
    assert reader_span_breaks(str(tmp_path)) == "longer"  # no decoding.json
    assert reader_span_breaks("distilbert/distilbert-base-cased-distilled-squad") == "longer"  # a hub id
    (tmp_path / "decoding.json").write_text(json.dumps({"span_breaks": "pieces"}))
    assert reader_span_breaks(str(tmp_path)) == "pieces"
    assert reader_span_breaks(str(tmp_path), "longer") == "longer"  # an explicit setting wins
    (tmp_path / "decoding.json").write_text(json.dumps({"span_breaks": "halves"}))
    with pytest.raises(ModelLoadError, match=r"decoding\.json: span_breaks must be one of"):
        reader_span_breaks(str(tmp_path))
    (tmp_path / "decoding.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="not a decoding file"):
        reader_span_breaks(str(tmp_path))


def test_shipped_reader_ships_the_decoder_it_was_judged_with():
    """Reader v7 was judged with the pieces decoder (eval/results/reader-s21p-rule.md); a setting overrides it."""
    from qa.config import SHIPPED_READER_DIR

    assert reader_span_breaks(str(SHIPPED_READER_DIR)) == "pieces"
    assert reader_span_breaks(str(SHIPPED_READER_DIR), "longer") == "longer"


def test_reader_takes_its_folder_choice_unless_told(tmp_path):
    from qa.reader import TransformersReader

    (tmp_path / "decoding.json").write_text(json.dumps({"span_breaks": "pieces"}))
    assert TransformersReader(str(tmp_path)).span_breaks == "pieces"  # loads lazily: no weights needed here
    assert TransformersReader(str(tmp_path), span_breaks="longer").span_breaks == "longer"
