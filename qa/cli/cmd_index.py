"""`qa index`: documents in, passages and vectors out (and the ONNX models prepared once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qa.cli import common
from qa.cli.common import (
    AllowDownload,
    IndexDir,
    IndexUri,
    app,
    error,
    index_location,
    make_settings,
    preparing_models,
    run_or_exit,
    with_progress,
)
from qa.errors import QAError


@app.command(short_help="Index files and folders; only new or changed documents are embedded again.")
def index(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders to index. [default: seeds/]")] = None,
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    embedder: Annotated[str | None, typer.Option(
        help="Embedder: a Hugging Face id or local folder. [default: the index's, else all-MiniLM-L6-v2]")] = None,
    allow_download: AllowDownload = None,
    max_file_mb: Annotated[float | None, typer.Option(
        min=0.001, help="Larger files are refused before reading. [default: 50]")] = None,
    chunk_size: Annotated[int | None, typer.Option(
        min=16, help="Passage size in embedder tokens. [default: the index's, else 160]")] = None,
    overlap: Annotated[int | None, typer.Option(
        min=0, help="Overlap of passages in tokens. [default: the index's, else 32]")] = None,
    prune: Annotated[bool, typer.Option(help="Remove indexed documents whose files are gone.")] = False,
    rebuild: Annotated[bool, typer.Option(help="Build the index again from PATHS alone, which must be given "
                                          "(other embedder or chunking, or a damaged index).")] = False,
    wait: Annotated[float, typer.Option(min=0.0, help="Seconds to wait for another `qa index` to finish.")] = 0.0,
    on_error: Annotated[str | None, typer.Option(
        help="skip (report and go on) or stop at an unreadable file. [default: skip]")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", metavar="GLOB", help="Leave out matching files and folders (gitignore syntax, relative to "
        "each folder given; repeatable), like the lines of a .qaignore file there.")] = None,
    batch: Annotated[int | None, typer.Option(
        min=1, metavar="PASSAGES", help="Commit every ~PASSAGES embedded passages: an interrupted run keeps the "
        "batches it committed, and the next run goes on from there. [default: 256]")] = None,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Read, chunk and embed on Ray Data (a local Ray, or --ray-address). Needs qa[ray].")] = False,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", metavar="ADDRESS", help="The Ray cluster for --ray (ray://host:10001, or auto for the "
        "one this machine belongs to). [default: a local Ray]")] = None,
) -> None:
    """Index documents (.txt, .md, .rst, .html, .pdf, .docx): only new or changed ones are embedded again.

    Gzip-compressed files (FAQ.txt.gz) are read as the file inside, and README, NEWS, FAQ ... without a
    suffix as text. Text files that are not UTF-8 are read in the encoding detected. Files not indexed
    (unreadable, other formats) and missing paths are listed with their reasons in the final report (exit 0).
    Folders skip hidden files, tool folders (node_modules, build, .venv, ...), the rules of a .qaignore file
    and --exclude. An existing index keeps the embedder and chunking it was built with; other ones need
    --rebuild. Work is committed in batches (--batch): an interrupted run keeps what it finished, and running
    it again goes on.

    Exit 1 on errors: no path exists, nothing readable, another `qa index` is writing (see --wait), or a bad
    file with --on-error stop.
    """
    from qa.discovery import check_rules
    from qa.indexing import follow_index
    from qa.render import render_index_report

    if rebuild and not paths:
        # without PATHS a rebuild would hold seeds/ alone and drop every other document
        error("--rebuild keeps only the documents in PATHS: name the files and folders to rebuild from "
               "(`qa index --rebuild seeds` for the demo article)")
        raise typer.Exit(2)
    settings = make_settings(
        index_dir=index_location(index_dir, index_uri), embedder=embedder, allow_download=allow_download,
        chunk_size=chunk_size, chunk_overlap=overlap, on_error=on_error, max_file_mb=max_file_mb, index_batch=batch,
    )
    given = {name for name, value in (("embedder", embedder), ("chunk_size", chunk_size), ("chunk_overlap", overlap))
             if value is not None}
    try:
        settings = follow_index(settings, settings.index_dir, given=given)
        check_rules(exclude or [], "--exclude")
    except ValueError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    if ray_address is not None and not ray:
        error("--ray-address needs --ray")
        raise typer.Exit(2)
    report = run_or_exit(lambda: _index_with_progress(paths or [Path("seeds")], settings, prune, rebuild, wait,
                                               exclude or [], (ray_address or "local") if ray else None))
    common.out().print(render_index_report(report))
    if rebuild:
        common.out().print(f"Rebuilt from scratch: {report.documents} document(s), {report.passages} passage(s).")
    elif report.embedded_passages == 0 and not report.removed:
        common.out().print("Nothing changed: no embedding work was needed.")
    _prepare_models(settings)


def _prepare_models(settings) -> None:
    """Build the ONNX models once, so the first `qa ask` is as fast as the rest; never fails the index."""
    from qa.factory import models_ready, prepare_models

    if models_ready(settings):
        return
    try:
        with preparing_models():
            prepare_models(settings)
    except QAError as exc:
        common.err().print(f"warning: models not prepared: {exc}", markup=False, soft_wrap=True)


def _index_with_progress(paths, settings, prune, rebuild=False, wait=0.0, exclude=(), ray=None):
    from qa.indexing import build_index

    # files not indexed are listed once, with their reasons, in the report printed at the end
    return with_progress(lambda update: build_index(
        paths, settings=settings, prune=prune, rebuild=rebuild, wait=wait, progress=update, exclude=exclude,
        ray=ray is not None, ray_address=None if ray in (None, "local") else ray,
    ))
