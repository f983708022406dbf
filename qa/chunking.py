"""Sentence boundaries (pysbd) and token-bounded, overlapping passages sliced from Document.text."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

import pysbd

from qa.schema import Chunk, Document, Span

log = logging.getLogger(__name__)

CountTokens = Callable[[Sequence[str]], list[int]]

# pysbd costs grow faster than linearly with the length of what it is given (its abbreviation
# pass re-scans the whole line for every abbreviation it meets), so it never sees more than this
# many characters at once; see _block_sentence_ends for how windows are stitched.
_WINDOW_CHARS = 4000

# How far from the expected place a sentence pysbd altered is looked for.
_RESYNC_CHARS = 64

# A blank line (possibly holding spaces, tabs or the \r of CRLF) always ends a sentence.
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_NON_SPACE = re.compile(r"\S")

_segmenter: pysbd.Segmenter | None = None


def _pysbd() -> pysbd.Segmenter:
    global _segmenter
    if _segmenter is None:
        _segmenter = pysbd.Segmenter(language="en", clean=False)
    return _segmenter


def sentence_spans(text: str) -> list[Span]:
    """Split ``text`` into sentences with pysbd, as exact character spans.

    Each span starts and ends on a non-whitespace character: the whitespace between two
    sentences belongs to no span. The spans are in order, do not overlap, and together cover
    every non-whitespace character of ``text``. A blank line always ends a sentence, and text
    is handed to pysbd in windows of at most a few thousand characters, so the cost stays
    linear in the length of the text; a single sentence longer than a window is cut at
    whitespace (or anywhere, if it has none) at the window's edge.

    Args:
        text: any string (empty, without punctuation, any script, CRLF line ends).

    Returns:
        The sentences' spans into ``text``; ``[]`` when it holds no non-whitespace character.
    """
    spans: list[Span] = []
    block_start = 0
    for sep in _BLANK_LINE.finditer(text):
        _add_block(text, block_start, sep.start(), spans)
        block_start = sep.end()
    _add_block(text, block_start, len(text), spans)
    return spans


def _add_block(text: str, start: int, end: int, spans: list[Span]) -> None:
    """Append the trimmed sentence spans of ``text[start:end]``, a paragraph."""
    prev = start
    for cut in _block_sentence_ends(text, start, end):
        _add_trimmed(text, prev, cut, spans)
        prev = cut
    _add_trimmed(text, prev, end, spans)


def _add_trimmed(text: str, start: int, end: int, spans: list[Span]) -> None:
    m = _NON_SPACE.search(text, start, end)
    if m is None:
        return
    start = m.start()
    while text[end - 1].isspace():
        end -= 1
    spans.append(Span(start, end))


def _block_sentence_ends(text: str, start: int, end: int) -> list[int]:
    """Offsets in ``text`` where pysbd ends a sentence inside ``text[start:end]``.

    Long paragraphs are read in windows: every sentence of a window but its last one is kept,
    and the next window starts where that last (maybe truncated) sentence starts. A window
    holding a single sentence is cut at its last whitespace instead.
    """
    ends: list[int] = []
    pos = start
    while pos < end:
        m = _NON_SPACE.search(text, pos, end)
        if m is None:
            break
        pos = m.start()
        stop = min(end, pos + _WINDOW_CHARS)
        window_ends = [pos + e for e in _pysbd_ends(text[pos:stop])]
        if stop == end:
            ends.extend(window_ends)
            break
        complete = window_ends[:-1]
        if complete:
            ends.extend(complete)
            pos = complete[-1]
        else:
            cut = _cut_point(text, pos, stop)
            ends.append(cut)
            pos = cut
    return ends


def _cut_point(text: str, start: int, stop: int) -> int:
    """Where to cut ``text[start:stop]`` short: before its last whitespace run, else at ``stop``."""
    if stop < len(text) and text[stop].isspace():
        return stop
    i = stop - 1
    while i > start and not text[i].isspace():
        i -= 1
    if i <= start:
        return stop
    while i > start and text[i - 1].isspace():
        i -= 1
    return i if i > start else stop


def _pysbd_ends(piece: str) -> list[int]:
    """End offsets in ``piece`` of the sentences pysbd finds, in increasing order.

    pysbd's own ``char_span`` mode finds each sentence again with a regex search from the start
    of the text (quadratic on long texts) and silently drops a sentence it cannot find. Instead,
    walk the sentences in order over the original: a sentence normally reappears verbatim after
    the cursor's whitespace, or close by; otherwise (pysbd altered it, e.g. text holding its
    private marker characters) advance by its count of non-whitespace characters, and correct
    that guess once the next sentence is found verbatim. Either way the offsets are valid places
    in ``piece``; the caller slices and trims, so no text is lost or invented.
    """
    ends: list[int] = []
    cursor = 0
    approximate = False  # whether the last end was guessed by counting characters
    n = len(piece)
    try:
        sentences = _pysbd().processor(piece).process() or []
    except Exception:  # noqa: BLE001 - a splitter bug must not lose the document; cut by size instead
        log.warning("pysbd failed on %d chars of text; treating them as one sentence", len(piece), exc_info=True)
        return []
    for sent in sentences:
        core = sent.strip()
        if not core or cursor >= n:
            continue
        m = _NON_SPACE.search(piece, cursor)
        if m is None:
            break
        begin = m.start()
        if piece.startswith(core, begin):
            found = begin
        else:
            # Altered by pysbd, or the cursor drifted after an altered one: look close by.
            found = piece.find(core, max(0, begin - _RESYNC_CHARS), begin + _RESYNC_CHARS + len(core))
        if found != -1 and found + len(core) > cursor:
            if approximate and found > (ends[-2] if len(ends) > 1 else 0):
                ends[-1] = found  # the guessed end of the previous sentence: its real end is here
            cursor, approximate = found + len(core), False
        else:
            cursor, approximate = _advance_non_space(piece, begin, sum(not c.isspace() for c in core)), True
        ends.append(cursor)
    return ends


def _advance_non_space(text: str, i: int, count: int) -> int:
    """The offset just after the ``count``-th non-whitespace character from ``i``."""
    n = len(text)
    while i < n and count > 0:
        if not text[i].isspace():
            count -= 1
        i += 1
    return i


def chunk_document(doc: Document, *, size: int, overlap: int, count_tokens: CountTokens) -> list[Chunk]:
    """Cut a document into passages of whole sentences, each at most ``size`` tokens.

    Consecutive chunks share their boundary sentences: the next chunk starts with the last
    sentences of the previous one, at most ``overlap`` tokens of them. A sentence longer than
    ``size`` tokens is cut at whitespace (anywhere, if it has none) into pieces that fit.
    Chunk text is always ``doc.text[char_start:char_end]`` and never starts or ends with
    whitespace.

    Args:
        doc: the document.
        size: most tokens per chunk (at least 1).
        overlap: tokens of whole sentences repeated from the previous chunk (0 <= overlap < size).
        count_tokens: the number of tokens of each of a batch of strings; called a few times
            per document with many strings each, never once per sentence.

    Returns:
        The chunks in document order, ids ``f"{doc.doc_id}#{n}"`` from 0; ``[]`` for a
        whitespace-only document.
    """
    if size < 1:
        raise ValueError(f"chunk size must be at least 1 token, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"chunk overlap must be in [0, size={size}), got {overlap}")
    text = doc.text
    first = _NON_SPACE.search(text)
    if first is None:
        return []
    last = len(text)
    while text[last - 1].isspace():
        last -= 1

    # Most short documents fit in one chunk: one count then, and no sentence splitting (a
    # token is rarely over 12 characters, so a longer text is not worth counting whole).
    if last - first.start() <= 12 * size and _count(count_tokens, [text[first.start() : last]])[0] <= size:
        chunk = Chunk(f"{doc.doc_id}#0", doc.doc_id, first.start(), last, text[first.start() : last])
        chunk.check(doc)
        return [chunk]

    units = sentence_spans(text)
    gaps = [text[a.end : b.start] for a, b in zip(units, units[1:], strict=False)]
    # One batched call: every sentence, then every whitespace run between two sentences
    # (no tokens for a real tokenizer, but a character-level count needs them).
    counts = _count(count_tokens, [u.slice(text) for u in units] + gaps)
    sizes, gap_sizes = counts[: len(units)], counts[len(units) :] + [0]
    if max(sizes) > size:
        units, sizes, gap_sizes = _fit_units(text, units, sizes, gap_sizes, size, count_tokens)
    chunks = [
        Chunk(f"{doc.doc_id}#{n}", doc.doc_id, units[i].start, units[j].end, text[units[i].start : units[j].end])
        for n, (i, j) in enumerate(_pack(sizes, gap_sizes, size, overlap))
    ]
    for chunk in chunks:
        chunk.check(doc)
    return chunks


def _count(count_tokens: CountTokens, texts: list[str]) -> list[int]:
    counts = list(count_tokens(texts)) if texts else []
    if len(counts) != len(texts):
        raise ValueError(f"count_tokens returned {len(counts)} counts for {len(texts)} texts")
    return counts


def _fit_units(
    text: str, units: list[Span], sizes: list[int], gap_sizes: list[int], size: int, count_tokens: CountTokens
) -> tuple[list[Span], list[int], list[int]]:
    """Replace every unit longer than ``size`` tokens by pieces that fit, with their counts.

    ``gap_sizes[i]`` counts the whitespace after unit ``i``; pieces start and end where their
    unit does, so only the whitespace between two pieces of one unit needs counting.
    """
    pieces = _split_spans(text, [(u, n) for u, n in zip(units, sizes, strict=True) if n > size], size, count_tokens)
    new_units: list[Span] = []
    new_sizes: list[int] = []
    new_gaps: list[int] = []
    inner: list[int] = []  # indexes into new_gaps still to count
    for unit, n, gap in zip(units, sizes, gap_sizes, strict=True):
        for piece, piece_size in pieces.get(unit.start, [(unit, n)]):
            if new_units and new_units[-1].end > unit.start:  # a piece after another of this unit
                inner.append(len(new_gaps) - 1)
            new_units.append(piece)
            new_sizes.append(piece_size)
            new_gaps.append(0)
        new_gaps[-1] = gap
    texts = [text[new_units[k].end : new_units[k + 1].start] for k in inner]
    for k, c in zip(inner, _count(count_tokens, texts), strict=True):
        new_gaps[k] = c
    return new_units, new_sizes, new_gaps


def _split_spans(
    text: str, spans: list[tuple[Span, int]], size: int, count_tokens: CountTokens
) -> dict[int, list[tuple[Span, int]]]:
    """Cut each ``(span, tokens)`` into trimmed pieces of at most ``size`` tokens, keyed by span start.

    Piece lengths are guessed from the share of characters, then checked with ``count_tokens``
    (one call per round for all pieces); a piece still too long is cut again, smaller. A single
    character that alone exceeds ``size`` is kept as it is (nothing smaller exists).
    """
    done: dict[int, list[tuple[Span, int]]] = {s.start: [] for s, _ in spans}
    todo = [(s.start, s, n) for s, n in spans]
    while todo:
        again: list[tuple[int, Span]] = []
        for key, s, n in todo:
            if n <= size or len(s) <= 1:
                if n > size:
                    log.warning("a single character at %d counts %d tokens, more than %d", s.start, n, size)
                done[key].append((s, n))
            else:
                again.extend((key, p) for p in _cut_evenly(text, s, max(1, int(len(s) * size / n * 0.9))))
        counts = _count(count_tokens, [p.slice(text) for _, p in again])
        todo = [(key, p, n) for (key, p), n in zip(again, counts, strict=True)]
    for parts in done.values():
        parts.sort(key=lambda pn: pn[0].start)
    return done


def _cut_evenly(text: str, span: Span, max_chars: int) -> list[Span]:
    """Cut ``span`` into trimmed pieces of at most ``max_chars`` characters, at whitespace when possible."""
    pieces: list[Span] = []
    pos = span.start
    while pos < span.end:
        stop = min(span.end, pos + max_chars)
        cut = stop if stop == span.end else _cut_point(text, pos, stop)
        _add_trimmed(text, pos, cut, pieces)
        m = _NON_SPACE.search(text, cut, span.end)
        pos = m.start() if m else span.end
    return pieces


def _pack(sizes: list[int], gap_sizes: list[int], size: int, overlap: int) -> list[tuple[int, int]]:
    """Group consecutive units into (first, last) index pairs, greedily up to ``size`` tokens.

    A group of units ``i..j`` counts ``sizes[i..j]`` plus the whitespace between them,
    ``gap_sizes[i..j-1]``. Each next group starts with the previous group's trailing units
    that total at most ``overlap`` tokens, and always ends further on. A unit over ``size``
    (a single character that counts too many tokens) stands alone.
    """
    groups: list[tuple[int, int]] = []
    n = len(sizes)
    i = 0
    while i < n:
        j, total = i, sizes[i]
        while j + 1 < n and total + gap_sizes[j] + sizes[j + 1] <= size:
            total += gap_sizes[j] + sizes[j + 1]
            j += 1
        groups.append((i, j))
        if j + 1 >= n:
            break
        # Step back from the next unit while the repeated units fit both budgets.
        k, repeated = j + 1, 0
        step = gap_sizes[j] + sizes[j + 1]  # what the next unit adds after the repeated ones
        while k - 1 > i:
            more = sizes[k - 1] + (gap_sizes[k - 1] if k <= j else 0)
            if repeated + more > overlap or repeated + more + step > size:
                break
            k -= 1
            repeated += more
        i = k
    return groups
