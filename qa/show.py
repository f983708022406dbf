"""The stored text of a document, or a cited span in its context: how every citation can be checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qa.errors import DocumentNotFoundError, QAError
from qa.schema import Document, Span

#: Characters of context shown on each side of a span (widened to the nearest line break within 200 more).
SHOW_CONTEXT_CHARS = 300


@dataclass(frozen=True, slots=True)
class Excerpt:
    """A window of a stored document; ``span`` (when given) is the cited part, inside ``window``.

    ``text == document.text[window.start:window.end]`` and ``span`` indexes the document, not ``text``.
    """

    document: Document
    window: Span
    span: Span | None

    @property
    def text(self) -> str:
        return self.document.text[self.window.start : self.window.end]

    @property
    def cited(self) -> str | None:
        """The cited text (``document.text[span.start:span.end]``), or None without a span."""
        return None if self.span is None else self.span.slice(self.document.text)

    def to_dict(self) -> dict:
        """The `qa show --json` object."""
        return {
            "doc_id": self.document.doc_id,
            "title": self.document.title,
            "source": self.document.source,
            "chars": len(self.document.text),
            "window": {"start": self.window.start, "end": self.window.end},
            "text": self.text,
            "span": None if self.span is None else {"start": self.span.start, "end": self.span.end,
                                                    "text": self.cited},
        }


def parse_span(spec: str) -> Span:
    """``START:END`` (character offsets, as citations print them) as a Span; ValueError naming the input if not."""
    head, sep, tail = spec.strip().strip("[]").partition(":")
    try:
        if not sep:
            raise ValueError
        return Span(int(head), int(tail))
    except ValueError:
        raise ValueError(f"span {spec!r} is not START:END with 0 <= START <= END (for example 120:134)") from None


def excerpt(document: Document, span: Span | None = None, *, context: int = SHOW_CONTEXT_CHARS) -> Excerpt:
    """The whole document (no span), or the span with about ``context`` characters on each side.

    The window is widened to a line break (or the text's start or end) when one lies within 200 characters,
    so it starts and ends with whole lines where it can.

    Raises:
        QAError: the span runs past the document's text.
    """
    n = len(document.text)
    if span is None:
        return Excerpt(document, Span(0, n), None)
    if span.end > n:
        raise QAError(
            f"span [{span.start}:{span.end}] runs past document {document.doc_id!r}, which has {n} characters")
    start, end = max(0, span.start - context), min(n, span.end + context)
    line = document.text.rfind("\n", max(0, start - 200), start)
    start = line + 1 if line >= 0 else (0 if start <= 200 else start)
    line = document.text.find("\n", end, min(n, end + 200))
    end = line if line >= 0 else (n if n - end <= 200 else end)
    return Excerpt(document, Span(start, end), span)


def show_document(
    index_dir: str | Path, doc_id: str, span: Span | None = None, *, context: int = SHOW_CONTEXT_CHARS
) -> Excerpt:
    """A document of the index in ``index_dir`` (see :func:`excerpt`); opens no model.

    Raises:
        IndexNotFoundError: no index there.
        DocumentNotFoundError: no document ``doc_id`` in it.
        QAError: the span runs past the document.
    """
    from qa.store import open_index

    store = open_index(index_dir)
    try:
        try:
            doc = store.get_document(doc_id)
        except KeyError:
            raise DocumentNotFoundError(
                f"no document {doc_id!r} in index {index_dir} (`qa status --docs` lists the ids)") from None
    finally:
        store.close()
    return excerpt(doc, span, context=context)
