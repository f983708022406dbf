"""`qa status`, `qa show` and `qa remove`: what the index holds, a cited span in context, removal."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qa.cli import common
from qa.cli.common import (
    IndexDir,
    IndexUri,
    app,
    error,
    index_location,
    make_settings,
    print_json,
    run_or_exit,
)


@app.command(short_help="Show what the index holds: documents, passages, models, settings.")
def status(
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    docs: Annotated[bool, typer.Option("--docs", help="Also list every document: id, passages, source.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show what the index holds: documents, passages, embedder, settings, size, build time."""
    from qa.indexing import index_status
    from qa.render import render_documents, render_status

    settings = make_settings(index_dir=index_location(index_dir, index_uri))
    info = run_or_exit(lambda: index_status(settings.index_dir, documents=docs))
    if as_json:
        print_json(info)
        return
    listing = info.pop("document_list", None)
    common.out().print(render_status(info))
    if listing is not None:
        common.out().print(render_documents(listing))
    else:
        common.out().print("`qa status --docs` lists the documents (ids for `qa remove`).", markup=False)


@app.command(short_help="Print a document's stored text, or a cited span highlighted in its context.")
def show(
    doc_id: Annotated[str, typer.Argument(help="The document's id (as citations and `qa status --docs` show it).")],
    span: Annotated[str | None, typer.Argument(
        metavar="[START:END]", help="A citation's character offsets: show that span in its context.")] = None,
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    context: Annotated[int, typer.Option(min=0, help="Characters of context on each side of the span.")] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="Print the text and offsets as JSON.")] = False,
) -> None:
    """Print the text of a document exactly as the index stores it, or the span START:END in its context.

    Every citation (`doc_id [start:end]`) is a slice of this text, whatever the original format (for HTML,
    PDF and .docx files it is the extracted text). Without START:END the whole text goes to stdout as is.
    """
    from qa.show import parse_span, show_document

    settings = make_settings(index_dir=index_location(index_dir, index_uri))
    try:
        cited = parse_span(span) if span is not None else None
    except ValueError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    ex = run_or_exit(lambda: show_document(settings.index_dir, doc_id, cited, context=context))
    if as_json:
        print_json(ex.to_dict())
    elif cited is None:
        sys.stdout.write(ex.text if ex.text.endswith("\n") else ex.text + "\n")
    else:
        from qa.render import render_excerpt

        common.out().print(render_excerpt(ex))


@app.command(short_help="Remove documents from the index by id.")
def remove(
    doc_ids: Annotated[list[str], typer.Argument(help="Document ids to remove (see `qa status --docs`).")],
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    wait: Annotated[float, typer.Option(min=0.0, help="Seconds to wait for a running `qa index` to finish.")] = 0.0,
) -> None:
    """Remove documents from the index (exit 1 if one of them is not there)."""
    from qa.indexing import remove_documents

    settings = make_settings(index_dir=index_location(index_dir, index_uri))
    removed = run_or_exit(lambda: remove_documents(doc_ids, settings.index_dir, wait=wait))
    missing = [d for d in doc_ids if d not in removed]
    if removed:
        common.out().print(f"Removed {len(removed)} document(s): {', '.join(removed)}", markup=False)
    if missing:
        error(f"not in the index: {', '.join(missing)}")
        raise typer.Exit(1)
