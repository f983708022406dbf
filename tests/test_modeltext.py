"""The models' view of a passage (qa.modeltext): markup and hard wraps gone, every answer cited in the stored text."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.modeltext import answer_span, markup_of, model_view, plain_view
from qa.spans import whole_words

MARKUP = re.compile(r"[\[\]()*`#]|https?:")


def check_view(view) -> None:
    """The invariants every view keeps."""
    assert len(view.origin) == len(view.text)
    assert all(0 <= o < len(view.source) for o in view.origin)
    assert all(a <= b for a, b in zip(view.origin, view.origin[1:], strict=False))


def test_markdown_link_targets_badges_and_emphasis_are_dropped():
    src = (
        "# libsodium [![Build](https://img.shields.io/b.svg)](https://ci.example/x)\n\n"
        "Sodium is a **portable** fork of [NaCl](https://nacl.cr.yp.to/), with a\n"
        "compatible API. Run `make check` &amp; see <https://doc.libsodium.org>.\n\n"
        "```sh\n./configure\n```\n\n- first item\n- second item\n"
    )
    view = model_view(src, "README.md")
    check_view(view)
    assert view.text == (
        "libsodium \n\nSodium is a portable fork of NaCl, with a compatible API. Run make check & see "
        "https://doc.libsodium.org.\n\n./configure\n\nfirst item\n\nsecond item"
    )
    i = view.text.index("NaCl")
    s, e = answer_span(view, i - 1, i + 5)  # " NaCl," as a reader might pick it
    assert src[s:e] == "NaCl"
    i = view.text.index("with a compatible")
    assert answer_span(view, i, i + len("with a compatible API")) is None  # across a wrapped line: not an answer
    i = view.text.index("fork of NaCl")
    assert answer_span(view, i, i + len("fork of NaCl")) is None  # across a link's markup


def test_rst_keeps_the_words_of_links_not_their_targets():
    src = (
        "pyenv\n=====\n\npyenv follows the UNIX tradition of `single-purpose tools\n"
        "<https://en.wikipedia.org/wiki/Unix_philosophy>`_ that do one thing well.\n\n"
        "The ``pyenv global`` command writes the ``~/.pyenv/version`` file.\n\n.. note:: A note.\n"
    )
    view = model_view(src, "docs/intro.rst")
    check_view(view)
    assert "wikipedia" not in view.text and "=====" not in view.text and "``" not in view.text
    assert "tradition of single-purpose tools that do one thing well." in view.text
    i = view.text.index("pyenv global")
    s, e = answer_span(view, i - 1, i + len("pyenv global") + 1)
    assert src[s:e] == "pyenv global"


def test_plain_text_hard_wraps_read_as_spaces_but_lists_and_short_lines_keep_their_breaks():
    src = (
        "Zstandard is a fast lossless compression algorithm, targeting real-time\n"
        "compression scenarios at zlib-level and better compression ratios.\n"
        "- a bullet\nShort line\nnext line\r\nA line long enough to have been wrapped by hand here\r\nends"
    )
    view = model_view(src, "notes.txt")
    check_view(view)
    assert "real-time compression" in view.text
    assert "ratios.\n- a bullet\nShort line\nnext line" in view.text
    assert "by hand here  ends" in view.text  # CRLF: both characters read as spaces, offsets unchanged
    assert view.origin == tuple(range(len(src))) and view == plain_view(src)
    i = view.text.index("real-time")
    assert answer_span(view, i, i + len("real-time compression")) is None
    assert src[slice(*answer_span(view, i, i + len("real-time")))] == "real-time"


def test_markup_is_chosen_by_the_file_suffix():
    assert markup_of("a/README.md") == markup_of("x.MARKDOWN") == "markdown"
    assert markup_of("guide.rst") == "rst"
    assert markup_of("page.html") == markup_of("notes.txt") == markup_of("") == "plain"
    assert model_view("*not emphasis*", "x.txt").text == "*not emphasis*"


def test_a_parser_failure_reads_the_passage_as_plain_text(monkeypatch):
    import qa.modeltext as mt

    def boom(text):
        raise RuntimeError("parser broke")

    monkeypatch.setattr(mt, "_markdown_pieces", boom)
    assert model_view("a [b](c)", "x.md") == plain_view("a [b](c)")


# ---- property: generated Markdown --------------------------------------------------------------------------------
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGH0123456789", min_size=1, max_size=8)
WORDS = st.lists(WORD, min_size=1, max_size=4).map(" ".join)
URL = WORD.map(lambda w: f"https://example.org/{w}")
INLINE = st.one_of(
    WORDS,
    WORDS.map(lambda w: f"*{w}*"),
    WORDS.map(lambda w: f"**{w}**"),
    WORD.map(lambda w: f"`{w}`"),
    st.tuples(WORDS, URL).map(lambda t: f"[{t[0]}]({t[1]})"),
    st.tuples(WORDS, URL).map(lambda t: f"![{t[0]}]({t[1]})"),
)
LINE = st.lists(INLINE, min_size=1, max_size=6).map(" ".join)
PARAGRAPH = st.tuples(
    st.sampled_from(["", "# ", "## ", "- ", "1. "]),
    st.lists(LINE, min_size=1, max_size=4).map("\n".join),  # lines of one paragraph: soft wraps
).map("".join)
MARKDOWN = st.lists(PARAGRAPH, min_size=1, max_size=5).map("\n\n".join)


def prose_words(src: str) -> list[str]:
    """The words a reader should see: images left out, link targets and markup gone."""
    src = re.sub(r"(^|\n\n)(#+|-|\d+\.) ", " ", src)  # heading marks and list bullets
    src = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", src)
    src = re.sub(r"\]\([^)]*\)", " ", src)
    return re.findall(r"[A-Za-z0-9]+", src.replace("https", " "))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWN, st.data())
def test_every_answer_a_view_gives_slices_back_without_markup(src, data):
    view = model_view(src, "gen.md")
    check_view(view)
    assert not MARKUP.search(view.text), view.text
    assert re.findall(r"[A-Za-z0-9]+", view.text) == prose_words(src)
    for _ in range(5 if view.text else 0):  # a paragraph of badges alone leaves nothing to read
        a = data.draw(st.integers(0, len(view.text) - 1))
        b = data.draw(st.integers(a + 1, len(view.text)))
        span = answer_span(view, a, b)
        if span is None:
            continue
        s, e = span
        answer = src[s:e]
        assert answer and answer == answer.strip()
        assert "\n" not in answer and not MARKUP.search(answer), (answer, src)
        assert answer in view.text  # the words the reader read, verbatim
        v0, v1 = view.source_span(*whole_words(view.text, a, b))
        assert v0 <= s and e <= v1  # inside what the reader picked, grown to whole words
