"""Answer edges: no paragraph break, stray punctuation, markup characters or unbalanced brackets at the ends."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.spans import clean_span, tidy_span, whole_words


@pytest.mark.parametrize(("raw", "clean"), [
    ("[NaCl", "NaCl"),
    ("RFC8878]", "RFC8878"),
    ('"Moscow', "Moscow"),
    ('"Crocus City Hall"', '"Crocus City Hall"'),
    ("(ISIS-K)", "(ISIS-K)"),
    ("Khorasan Province (ISIS-K)", "Khorasan Province (ISIS-K)"),
    ("system Python 3 modules\n\ndirectory", "system Python 3 modules"),
    ("a\n\nthe longer second part", "the longer second part"),
    (" , 2015.", "2015"),
    ("U.S.", "U.S."),
    ("Inc.)", "Inc."),
    ("(a) and (b", "(a) and"),
    ("x) and (y)", "and (y)"),
    ("**bold words**", "bold words"),
    ("`pyenv install`", "pyenv install"),
    ("March 22, 2024", "March 22, 2024"),
    ("wrapped line\ncontinues", "wrapped line\ncontinues"),  # a single line break is no paragraph break
    ("~/.pyenv/version", "~/.pyenv/version"),  # paths and dotfiles keep their first characters
    ("./configure", "./configure"),
    ("/usr/share/doc,", "/usr/share/doc"),
    (".python-version", ".python-version"),
    (". The army", "The army"),
    ("/ and", "and"),
    ("-G Ninja", "-G Ninja"),  # a command-line option keeps its dashes
    ("`--enable-tui`", "--enable-tui"),
    ("-- and then", "and then"),  # a dash set off by a space is punctuation
    ("- item", "item"),
    ("$5 million", "$5 million"),  # a currency sign stays
])
def test_tidy_span_examples(raw, clean):
    text = f"<<{raw}>>"
    start, end = tidy_span(text, 2, 2 + len(raw))
    assert text[start:end] == clean


@pytest.mark.parametrize(("line", "clean"), [
    ("$ ./configure --prefix=/usr", "./configure --prefix=/usr"),  # a shell prompt at a line's start goes
    ("  % gdb --config", "gdb --config"),
    ("# Installation", "Installation"),  # and a Markdown heading's mark
    ("$5 million", "$5 million"),  # a currency sign stays
])
def test_a_prompt_at_a_lines_start_is_no_part_of_the_answer(line, clean):
    text = f"Intro.\n{line}\nmore"
    start = text.index(line)
    s, e = tidy_span(text, start, start + len(line))
    assert text[s:e] == clean


def test_nothing_left_is_none():
    assert tidy_span(" , ; ", 0, 5) is None
    text = "run it via:\n\n\t$ ./test/integration/run-tests\n"
    assert tidy_span(text, text.index("$"), text.index("$") + 1) is None  # a prompt alone is no answer
    assert tidy_span("costs 5 $ here", 8, 9) == (8, 9)  # not at a line's start: left alone
    assert tidy_span("abc", 1, 1) is None
    with pytest.raises(ValueError, match="not inside"):
        tidy_span("abc", 2, 9)


ANSWERISH = st.text(alphabet=st.sampled_from(list("ab1 ,.;:()[]\"'*`\n-“”")), max_size=40)


@given(ANSWERISH, st.data())
def test_tidy_span_is_a_clean_sub_span(text, data):
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    res = tidy_span(text, start, end)
    if res is None:
        return
    s, e = res
    assert start <= s < e <= end
    piece = text[s:e]
    assert piece == piece.strip() and not re.search(r"\n[ \t]*\n", piece)
    assert piece[0] not in ",;:!?)]}*`" and piece[-1] not in ",;:([{*`"
    assert piece[0] != "." or piece[1:2].isalnum() or piece[1:2] in "-_"  # only a dotfile or a decimal
    for o, c in ("()", "[]"):
        if piece[0] == o:
            assert c in piece
        if piece[-1] == c:
            assert o in piece
    assert tidy_span(text, s, e) == (s, e)  # tidy is idempotent


def test_the_reader_returns_tidy_answers(tiny_reader):
    from qa.reader import TransformersReader
    from qa.schema import Chunk, Hit

    text = "Intro line.\n\n[NaCl] is a (crypto library), see RFC8878]. It was forked in 2013.\n\n*Bold* end."
    reader = TransformersReader(str(tiny_reader), runtime="torch")
    hit = Hit(Chunk("d#0", "d", 0, len(text), text), 1.0, 0)
    answers = reader.read("What is it?", [hit], max_answers=20, min_score=0.0)
    assert answers
    for a in answers:
        assert text[a.span.start : a.span.end] == a.text == a.text.strip()
        assert "\n\n" not in a.text and a.text[0] not in ",.;:)]}*" and a.text[-1] not in ",;:([{*"


@pytest.mark.parametrize(("text", "picked", "whole"), [
    ("Set PYTHON_DOTENV_DISABLED=1 to disable it.", "PYTHON", "PYTHON_DOTENV_DISABLED"),  # cut at "_"
    ("maintained by Bertrand Bonnefoy-Claudet", "nnef", "Bonnefoy"),  # a word piece takes in its word
    ("call reset_cached_controller() to clear", "cached", "reset_cached_controller"),
    ("the Eiffel Tower was completed in 1889.", "Eiffel Tower", "Eiffel Tower"),  # whole words stay as they are
    ("cli-spinners and 16-bit", "spinners", "spinners"),  # "-" parts a word
    ("run python -m rich.spinner to see them", "python -m rich", "python -m rich.spinner"),  # a dotted name
    ("It is 3.14 here. Then", "3", "3.14"),
    ("It is 3.14 here. Then", "here", "here"),  # a sentence's period is no part of a word
    ("told stories.Political geographers such as", "Political geographers", "Political geographers"),
    ("hydrophilic amino acids", "lic amino acids", "hydrophilic amino acids"),
    ("the U.S. Army", "U", "U.S"),
    ("東京都庁舎は新宿にある", "京都", "京都"),  # a script written without spaces is left alone
])
def test_whole_words(text, picked, whole):
    i = text.index(picked)
    s, e = whole_words(text, i, i + len(picked))
    assert text[s:e] == whole


@pytest.mark.parametrize(("text", "picked", "answer"), [
    ("pass\n\t-G Ninja\nto the cmake invocation", "G", "-G"),  # the reader's piece after the dash
    ("enable quiet (`-q`) or very quiet (`-qq`) mode", "qq", "-qq"),
    ("configure --enable-tui to get it", "enable-tui", "--enable-tui"),
    ("use --target=TARGET when", "target=TARGET", "--target=TARGET"),
    ("temperatures of -5 degrees", "5", "-5"),
    ("a model-based approach", "based", "based"),  # a hyphen inside a word is not an option
    ("1990--1995 saw", "1995", "1995"),
    ("so -- as they say -- it goes", "as they say", "as they say"),
])
def test_clean_span_takes_in_an_options_dashes(text, picked, answer):
    i = text.index(picked)
    s, e = clean_span(text, i, i + len(picked))
    assert text[s:e] == answer
    assert clean_span(text, s, e) == (s, e)


def test_whole_words_does_not_take_in_a_long_run():
    text = "x" * 200 + " end"
    assert whole_words(text, 100, 102) == (100, 102)  # 100 characters on each side: no word
    assert whole_words(text, 201, 203) == (201, 204)
    with pytest.raises(ValueError, match="not inside"):
        whole_words("abc", 2, 9)
