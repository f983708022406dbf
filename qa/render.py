"""Rich renderables for the CLI: answers with highlighted citations, passages, index summaries."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Group, RenderableType
from rich.control import STRIP_CONTROL_CODES
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from qa.schema import Answer, Hit, QAResult

NO_ANSWER = "No answer found in the documents."
# The control characters rich.text.Text removes (BEL, BS, VT, FF, CR).
_RICH_DROPS = re.compile("[" + re.escape("".join(map(chr, STRIP_CONTROL_CODES))) + "]")


def answer_in_context(answer: Answer) -> Text:
    """The answer's sentence(s) with the answer itself highlighted (no markup parsing of data)."""
    return highlighted(answer.context, answer.context_span.start, answer.context_span.end)


def highlighted(context: str, start: int, end: int) -> Text:
    """``context`` as Rich text with ``context[start:end]`` highlighted (no markup parsing of data)."""
    text = Text(_RICH_DROPS.sub("", context))
    # Rich drops these control characters (\r, a form feed at a page break, ...): offsets shift by those before.
    shift = len(_RICH_DROPS.findall(context[:start]))
    inner = len(_RICH_DROPS.findall(context[start:end]))
    text.stylize("bold black on yellow", start - shift, end - shift - inner)
    return text


def citation(answer: Answer) -> str:
    """Where the answer stands: document, character offsets and source file."""
    where = f"{answer.doc_id} [{answer.span.start}:{answer.span.end}]"
    return f"{where}  {_shown_path(answer.source)}" if answer.source else where


def _shown_path(source: str) -> str:
    """A source file relative to the current folder when it lies inside it (sources are stored absolute)."""
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source


#: The runners-up keep the reader's order: the answer is the reader's best span, so a runner-up may score higher
#: (the score is each span's own probability of being right; README, "What the score means").
OTHERS = "Other candidates, in the reader's order"


def render_result(result: QAResult, unsure_below: float = 0.0) -> RenderableType:
    """The best answer with its citation and context, then the runners-up; or the abstention, with what `qa`
    would have answered (``result.candidates``). An answer scoring below ``unsure_below`` is marked unsure."""
    if result.abstained:
        if not result.candidates:
            return Text(NO_ANSWER, style="bold yellow")
        best = result.candidates[0]
        body: list[RenderableType] = [
            Text(NO_ANSWER, style="bold yellow"),
            Text.assemble("Best guess, too unlikely to give: ", (best.text, "bold"), "  ",
                          (f"score {best.score:.2f}", "dim"), "  ", (citation(best), "cyan")),
        ]
        body += _others(result.candidates[1:])
        return Panel(Group(*body), title=escape(result.question), title_align="left", border_style="yellow")
    best = result.answers[0]
    unsure = best.score < unsure_below
    head = Text.assemble((best.text, "bold yellow" if unsure else "bold green"), "  ",
                         (f"score {best.score:.2f}", "dim"))
    if unsure:
        head.append("  unsure: check the cited passage", style="yellow")
    body = [head, Text(citation(best), style="cyan"), Text(""), answer_in_context(best)]
    body += _others(result.answers[1:])
    return Panel(Group(*body), title=escape(result.question), title_align="left",
                 border_style="yellow" if unsure else "green")


def _others(answers: Sequence[Answer]) -> list[RenderableType]:
    if not answers:
        return []
    table = Table(show_edge=False, expand=False)  # the title above it, not wrapped to the table's width
    table.add_column("answer")
    table.add_column("score", justify="right")
    table.add_column("cited span")
    for a in answers:
        table.add_row(escape(a.text), f"{a.score:.2f}", escape(citation(a)))
    return [Text(""), Text(OTHERS, style="italic"), table]


def render_excerpt(ex) -> RenderableType:
    """`qa show DOC_ID START:END`: the cited span highlighted in its context, with where it stands."""
    doc, w, span = ex.document, ex.window, ex.span
    body = highlighted(ex.text, span.start - w.start, span.end - w.start)
    if w.start > 0:
        body = Text("…") + body
    if w.end < len(doc.text):
        body.append("…")
    where = f"{doc.doc_id} [{span.start}:{span.end}] of {len(doc.text):,} characters"
    if doc.source:
        where += f"  {_shown_path(doc.source)}"
    return Panel(Group(Text(where, style="cyan"), Text(""), body), title=escape(repr(ex.cited)), title_align="left",
                 border_style="green")


def render_passages(hits: Sequence[Hit], limit: int = 400) -> RenderableType:
    """The retrieved passages with their scores."""
    if not hits:
        return Text("No passages retrieved.", style="yellow")
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("passage")
    table.add_column("score", justify="right")
    for h in hits:
        snippet = h.chunk.text if len(h.chunk.text) <= limit else h.chunk.text[:limit] + "…"
        label = Text(f"{h.chunk.doc_id} [{h.chunk.char_start}:{h.chunk.char_end}]\n", style="cyan")
        label.append(snippet)
        table.add_row(str(h.rank + 1), label, f"{h.score:.3f}")
    return table


def render_index_report(report) -> RenderableType:
    """Closing summary of `qa index`."""
    t = Table.grid(padding=(0, 2))
    t.add_row("index", escape(report.index_dir))
    t.add_row("documents", f"{report.documents}  (+{len(report.added)} new, {len(report.updated)} changed, "
              f"{len(report.unchanged)} unchanged, {len(report.removed)} removed)")
    t.add_row("passages", f"{report.passages}  ({report.embedded_passages} embedded in this run)")
    t.add_row("dense search", escape(report.dense_index))
    t.add_row("time", f"{report.seconds:.1f} s")
    if report.encodings:
        t.add_row("not UTF-8", Text("\n".join(report.encodings)))
    if report.skipped:
        t.add_row("not indexed", Text("\n".join(report.skipped), style="yellow"))
    if report.excluded:
        folders = sum(e.endswith("/") for e in report.excluded)
        t.add_row("excluded", f"{folders} folder(s) and {len(report.excluded) - folders} file(s), by the default "
                  "tool folders, .qaignore or --exclude")
    return Panel(t, title="Index ready", title_align="left", border_style="green")


def render_status(stats) -> RenderableType:
    """`qa status`: what the index holds and how it was built."""
    t = Table.grid(padding=(0, 2))
    for key, value in stats.items():
        t.add_row(escape(str(key)), escape(str(value)))
    return Panel(t, title="Index status", title_align="left")


def render_documents(documents: Sequence[dict]) -> RenderableType:
    """`qa status --docs`: one row per document."""
    t = Table(title=f"{len(documents)} document(s)", title_justify="left")
    t.add_column("doc_id", overflow="fold")
    t.add_column("passages", justify="right")
    t.add_column("chars", justify="right")
    t.add_column("source", overflow="fold")
    for d in documents:
        t.add_row(escape(d["doc_id"]), str(d["passages"]), f"{d['chars']:,}", escape(_shown_path(d["source"] or "")))
    return t


ChatAsk = Callable[[str, int], QAResult]
