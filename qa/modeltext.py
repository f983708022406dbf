"""The text the models read: a passage's words without markup or hard line wraps, mapped back to the stored text.

Citations stay exact slices of the stored document text (``Document.text``); the embedder, BM25 and the reader
read a *view* of each passage instead:

- Markdown (``.md``, ``.markdown``): parsed with markdown-it-py; link targets, images (badges), emphasis marks,
  heading marks, list bullets and raw HTML dropped; code kept as its text; a line break inside a paragraph read
  as a space.
- reStructuredText (``.rst``): parsed with docutils; what its document tree holds as text is kept (no link
  targets, no section adornments, no directives' options); line breaks inside a paragraph read as spaces.
- Any other text (plain files, text extracted from HTML, PDF, DOCX): a hard line wrap (a line break inside a
  paragraph, after a line of :data:`WRAP_MIN_LINE` characters or more, before a line that starts a word) reads as
  a space; nothing else changes.

A :class:`TextView` records, for each of its characters, the offset of the stored character it stands for, so a
span the reader picks in the view maps back to the stored text; an answer is a span that the stored text holds
verbatim (no markup, no line break inside: :func:`answer_span`). The view is a function of the passage's text
and its file's suffix alone, so indexing and answering compute the same one, and nothing beyond the passage's
text is stored for it.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import PurePath

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = (".md", ".markdown")
RST_SUFFIXES = (".rst",)
WRAP_MIN_LINE = 40  # a line at least this long, ended by a single line break, was wrapped by its writer

_BULLET = re.compile(r"[-*+\u2022]\s|\d{1,3}[.)]\s|[#>|=]")  # a line that starts a list item, a heading, a table


@dataclass(frozen=True, slots=True)
class TextView:
    """What the models read of ``source`` (``text``), and where each of its characters stands in ``source``.

    Invariants: ``len(origin) == len(text)``; ``origin`` never decreases and points inside ``source``; a
    character that the view keeps verbatim is the stored one (``source[origin[i]] == text[i]``).
    """

    source: str
    text: str
    origin: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.origin) != len(self.text):
            raise ValueError(f"a view of {len(self.text)} characters has {len(self.origin)} origins")

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The stored offsets ``[a, b)`` that hold view characters ``[start, end)`` (markup inside included)."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"view span [{start}, {end}) is not a non-empty span of {len(self.text)} characters")
        return self.origin[start], self.origin[end - 1] + 1

    def _verbatim(self, i: int) -> bool:
        o = self.origin[i]
        return self.source[o] == self.text[i] and self.text[i] not in "\r\n"

    def verbatim_source_span(self, start: int, end: int) -> tuple[int, int] | None:
        """Stored offsets of view span ``[start, end)`` when the stored text holds it verbatim, else None.

        Verbatim means character for character and contiguous: no markup the view dropped, no character it
        changed (a wrapped line break, an entity) and no line break inside. Sliced from the stored text, such a
        span is exactly the words the model read.
        """
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"view span [{start}, {end}) is not a non-empty span of {len(self.text)} characters")
        for i in range(start, end):
            if not self._verbatim(i) or (i > start and self.origin[i] != self.origin[i - 1] + 1):
                return None
        return self.origin[start], self.origin[end - 1] + 1


def markup_of(source_path: str) -> str:
    """``"markdown"``, ``"rst"`` or ``"plain"``: how the text of a file with this path is read."""
    suffix = PurePath(source_path).suffix.lower() if source_path else ""
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in RST_SUFFIXES:
        return "rst"
    return "plain"


def model_view(text: str, source_path: str = "") -> TextView:
    """The view of ``text`` (a passage of the file at ``source_path``) that the models read; see the module."""
    markup = markup_of(source_path)
    if markup == "plain" or not text:
        return plain_view(text)
    try:
        pieces = _markdown_pieces(text) if markup == "markdown" else _rst_pieces(text)
    except Exception as exc:  # noqa: BLE001 - a parser failure on one passage must not stop indexing or answering
        log.warning("cannot parse a %s passage (%s: %s); reading it as plain text", markup, type(exc).__name__, exc)
        return plain_view(text)
    return _assemble(text, pieces)


def plain_view(text: str) -> TextView:
    """``text`` with its hard line wraps read as spaces (same length, same offsets)."""
    chars = list(text)
    line_start = 0
    for nl in _find_all(text, "\n"):
        line = text[line_start:nl].rstrip("\r")
        nxt_end = text.find("\n", nl + 1)
        nxt = text[nl + 1 : nxt_end if nxt_end != -1 else len(text)]
        if len(line.strip()) >= WRAP_MIN_LINE and nxt[:1].strip() and not _BULLET.match(nxt):
            chars[nl] = " "
            if nl > 0 and text[nl - 1] == "\r":
                chars[nl - 1] = " "
        line_start = nl + 1
    return TextView(text, "".join(chars), tuple(range(len(text))))


def _find_all(text: str, needle: str):
    i = text.find(needle)
    while i != -1:
        yield i
        i = text.find(needle, i + 1)


# -- pieces: (text, block number, prose) in reading order --------------------------------------------------------
def _markdown_pieces(text: str) -> list[tuple[str, int, bool, int, int]]:
    """Text pieces of Markdown source: ``(piece, block, prose, search_from, search_to)``.

    The parser gives no character offsets, so each piece is found in the source from where the previous one
    ended; a link's destination, an image and a line break move that place past themselves first, so that a
    word is never found inside a URL the view leaves out.
    """
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True})
    lines = [0]
    for nl in _find_all(text, "\n"):
        lines.append(nl + 1)
    lines.append(len(text))

    def bounds(line_map: list[int] | None) -> tuple[int, int]:
        if not line_map:
            return 0, len(text)
        return lines[min(line_map[0], len(lines) - 1)], lines[min(line_map[1], len(lines) - 1)]

    pieces: list[tuple[str, int, bool, int, int]] = []
    for block, token in enumerate(md.parse(text)):
        lo, hi = bounds(token.map)
        if token.type == "inline":
            cursor = lo
            for child in token.children or []:
                if child.type in ("text", "code_inline") and child.content:
                    pieces.append((child.content, block, True, cursor, hi))
                    at = text.find(child.content, cursor, hi)
                    if at != -1:
                        cursor = at + len(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    nl = text.find("\n", cursor, hi)
                    cursor = nl + 1 if nl != -1 else cursor
                elif child.type == "image":  # a badge: its alt text and target are left out
                    bang = text.find("![", cursor, hi)
                    if bang != -1:
                        cursor = _skip_link_tail(text, _skip_bracketed(text, bang + 1, hi), hi)
                elif child.type == "link_close" and child.markup != "autolink":
                    close = text.find("]", cursor, hi)
                    if close != -1:
                        cursor = _skip_link_tail(text, close + 1, hi)
        elif token.type in ("fence", "code_block") and token.content:
            pieces.append((token.content.rstrip("\n"), block, False, lo, hi))
    return pieces


def _skip_balanced(text: str, i: int, hi: int, opener: str, closer: str) -> int:
    """Past the ``opener ... closer`` group that starts at ``i`` (nested ones counted, backslash escapes skipped);
    ``i`` when none starts there or it does not close before ``hi``."""
    if i >= hi or text[i] != opener:
        return i
    depth, j = 0, i
    while j < hi:
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == opener:
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return i


def _skip_bracketed(text: str, i: int, hi: int) -> int:
    """Past the ``[...]`` that starts at ``i``; ``i`` if none starts there."""
    return _skip_balanced(text, i, hi, "[", "]")


def _skip_link_tail(text: str, i: int, hi: int) -> int:
    """Past a link's ``(destination "title")`` or ``[reference]`` right after its text; ``i`` if none."""
    if i < hi and text[i] == "[":
        return _skip_bracketed(text, i, hi)
    return _skip_balanced(text, i, hi, "(", ")")


_RST_SKIP = ("system_message", "comment", "substitution_definition", "target", "raw", "pending", "problematic")
_RST_LITERAL = ("literal_block", "doctest_block", "line_block")


def _rst_pieces(text: str) -> list[tuple[str, int, bool, int, int]]:
    """Text pieces of reStructuredText source, from docutils' document tree."""
    from docutils import nodes
    from docutils.core import publish_doctree

    tree = publish_doctree(
        text,
        settings_overrides={
            "report_level": 5, "halt_level": 5, "warning_stream": io.StringIO(), "file_insertion_enabled": False,
            "raw_enabled": False, "input_encoding": "unicode", "doctitle_xform": False, "docinfo_xform": False,
            "sectsubtitle_xform": False,
        },
    )
    pieces: list[tuple[str, int, bool, int, int]] = []
    blocks: dict[int, int] = {}
    for node in tree.findall(nodes.Text):
        parents, parent, skip = [], node.parent, False
        while parent is not None:
            name = parent.__class__.__name__
            if name in _RST_SKIP:
                skip = True
                break
            parents.append(parent)
            parent = parent.parent
        if skip or not str(node):
            continue
        block_node = next((p for p in parents if isinstance(p, (nodes.TextElement,)) and not isinstance(
            p, nodes.Inline)), parents[0] if parents else tree)
        block = blocks.setdefault(id(block_node), len(blocks))
        prose = block_node.__class__.__name__ not in _RST_LITERAL
        pieces.append((node.astext(), block, prose, 0, len(text)))
    return pieces


def _assemble(source: str, pieces: list[tuple[str, int, bool, int, int]]) -> TextView:
    """Find each piece in ``source`` in order and join them, with the white space between them kept short."""
    out: list[str] = []
    origin: list[int] = []
    cursor = 0
    prev_block: int | None = None
    prev_end = 0
    for piece, block, prose, lo, hi in pieces:
        start = max(cursor, lo)
        hi = max(hi, start)
        at = source.find(piece, start, hi)
        if at == -1 and hi < len(source):
            at = source.find(piece, start)
        if at != -1:
            positions = list(range(at, at + len(piece)))
        else:
            positions = _align_chars(source, piece, start, hi)
        first = positions[0] if positions else start
        if out:  # what lies between the previous piece and this one
            gap = source[prev_end:first]
            if prev_block is not None and block != prev_block:
                nl = gap.find("\n")
                at_gap = prev_end + nl if nl != -1 else max(prev_end - 1, 0)
                if not out[-1].endswith("\n"):
                    out.extend("\n\n")
                    origin.extend((at_gap, at_gap))
            elif gap and any(ch.isspace() for ch in gap) and not out[-1].endswith((" ", "\n")):
                ws = next(i for i, ch in enumerate(gap) if ch.isspace())
                out.append(" ")
                origin.append(prev_end + ws)
        for ch, pos in zip(piece, positions, strict=True):
            if prose and ch.isspace():
                if out and out[-1] in (" ", "\n"):
                    continue  # one space between words: a wrapped line's break and indentation, a markup gap
                ch = " "
            out.append(ch)
            origin.append(pos)
        if positions:
            cursor = prev_end = positions[-1] + 1
        prev_block = block
    return TextView(source, "".join(out), tuple(min(o, len(source) - 1) for o in origin))


def _align_chars(source: str, piece: str, start: int, stop: int) -> list[int]:
    """Stored offsets for the characters of a piece that the parser changed (entities, escapes): each found in
    order where it can be, else placed at the current position."""
    positions, cursor = [], start
    for ch in piece:
        at = source.find(ch, cursor, stop)
        if at == -1:
            positions.append(min(cursor, len(source) - 1))
        else:
            positions.append(at)
            cursor = at + 1
    return positions


def answer_span(view: TextView, start: int, end: int) -> tuple[int, int] | None:
    """Stored offsets of the answer a reader picked at view span ``[start, end)``, or None when it has none.

    The span is cleaned in the view (:func:`qa.spans.clean_span`: whole words, no paragraph break, no stray
    punctuation at its edges) and kept only where the stored text holds it verbatim
    (:meth:`TextView.verbatim_source_span`): a span across markup or a hard line wrap is not an answer, and the
    reader's next best span (it weighs several per passage) takes its place. Cutting such a span instead kept
    half of what the model meant ("environment variable" of "``PYENV_VERSION``\nenvironment variable", where
    the model's next span was "PYENV_VERSION").
    """
    from qa.spans import clean_span

    tidy = clean_span(view.text, start, end)
    if tidy is None:
        return None
    return view.verbatim_source_span(*tidy)
