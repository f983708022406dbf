"""The `qa` command line: a thin Typer layer over the library. Only here do errors become exit codes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from qa.errors import QAError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Ask questions about a folder of documents; get exact answer spans with citations. Fully offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@cache
def _out() -> Console:
    """Console for results (made on first use: `qa --help` imports no Rich)."""
    from rich.console import Console

    return Console()


@cache
def _err() -> Console:
    """Console for errors, warnings and progress bars."""
    from rich.console import Console

    return Console(stderr=True)


T = TypeVar("T")

IndexDir = Annotated[
    Path | None,
    typer.Option("--index-dir", "-i", help="Index folder. [default: index/, or $QA_INDEX_DIR]", file_okay=False),
]
IndexUri = Annotated[
    str | None,
    typer.Option("--index-uri", metavar="URI", help="Index in Milvus instead of a folder: a Milvus Lite file "
                 "(./idx.milvus.db) or a server (http://host:19530; token from $QA_MILVUS_TOKEN). Needs qa[milvus]."),
]
TopK = Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="Passages handed to the reader. [default: 5]")]
RetrieverOpt = Annotated[
    str | None,
    typer.Option("--retriever", help="dense, bm25 or hybrid (both, fused). [default: hybrid]"),
]
ReaderOpt = Annotated[
    str | None, typer.Option("--reader", help="Reader: a Hugging Face id or local folder. [default: the shipped one]")
]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        "--runtime", help="Reader runtime: auto (ONNX fp32 for a local model), onnx, onnx-int8 (faster), torch."
    ),
]
AllowDownload = Annotated[
    bool | None,
    typer.Option("--allow-download", help="Let a --reader/--embedder Hugging Face id that is not in the local cache "
                 "be downloaded (default: fail at once; HF_HUB_OFFLINE=0 allows it too)."),
]
CalibrationOpt = Annotated[
    str | None,
    typer.Option("--calibration", help="How answers are scored: auto (the probability the answer is right, from "
                 "the calibration shipped with the reader), none (the reader's own score), or a calibration file."),
]
MinScore = Annotated[
    float | None,
    typer.Option("--min-score", min=0.0, max=1.0, help="Abstain below this answer score. [default: 0.5 or saved]"),
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("qa")
        except PackageNotFoundError:  # run from a source tree that was never installed
            v = "unknown (not installed)"
        sys.stdout.write(f"qa {v}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print qa's version and exit.")] = False,
) -> None:
    """Ask questions about a folder of documents; get exact answer spans with citations. Fully offline."""


def _quiet_libraries() -> None:
    """Keep third-party progress bars and advisories out of the user's terminal."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    for name in ("sentence_transformers", "transformers", "faiss", "onnxruntime", "trafilatura", "pypdf"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _error(message: str) -> None:
    """One line on stderr, never wrapped or parsed as markup."""
    _err().print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


def _run(fn: Callable[[], T]) -> T:
    """Call into the library; a QAError becomes one line on stderr and exit code 1."""
    _quiet_libraries()
    try:
        return fn()
    except QAError as exc:
        _error(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _err().print("interrupted", markup=False)
        raise typer.Exit(130) from None


def _location(index_dir: Path | None, index_uri: str | None) -> str | None:
    """The index location the options name: --index-dir or --index-uri (not both); exit 2 on a bad URI."""
    from qa.store import is_milvus_location

    if index_dir is not None and index_uri is not None:
        _error("give --index-dir (a folder) or --index-uri (Milvus), not both")
        raise typer.Exit(2)
    if index_uri is not None:
        if not is_milvus_location(index_uri):
            _error(f"--index-uri {index_uri!r} is neither a Milvus Lite file (*.db) nor a Milvus server URI "
                   "(http://host:19530); a folder index is --index-dir")
            raise typer.Exit(2)
        return index_uri
    return str(index_dir) if index_dir is not None else None


def _settings(**overrides: Any):
    from qa.config import Settings

    try:
        settings = Settings.from_env(**overrides)
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    if not settings.allow_download:
        # a cached model then loads without asking the hub for updates (no minute of retries offline)
        os.environ["HF_HUB_OFFLINE"] = "1"
    return settings


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


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

    Text files that are not UTF-8 are read in the encoding detected. Files not indexed (unreadable, other
    formats) and missing paths are listed with their reasons in the final report (exit 0). Folders skip hidden
    files, tool folders (node_modules, build, .venv, ...), the rules of a .qaignore file and --exclude. An
    existing index keeps the embedder and chunking it was built with; other ones need --rebuild. Work is
    committed in batches (--batch): an interrupted run keeps what it finished, and running it again goes on.

    Exit 1 on errors: no path exists, nothing readable, another `qa index` is writing (see --wait), or a bad
    file with --on-error stop.
    """
    from qa.indexing import follow_index
    from qa.loader import check_rules
    from qa.render import render_index_report

    if rebuild and not paths:
        # without PATHS a rebuild would hold seeds/ alone and drop every other document
        _error("--rebuild keeps only the documents in PATHS: name the files and folders to rebuild from "
               "(`qa index --rebuild seeds` for the demo article)")
        raise typer.Exit(2)
    settings = _settings(
        index_dir=_location(index_dir, index_uri), embedder=embedder, allow_download=allow_download,
        chunk_size=chunk_size, chunk_overlap=overlap, on_error=on_error, max_file_mb=max_file_mb, index_batch=batch,
    )
    given = {name for name, value in (("embedder", embedder), ("chunk_size", chunk_size), ("chunk_overlap", overlap))
             if value is not None}
    try:
        settings = follow_index(settings, settings.index_dir, given=given)
        check_rules(exclude or [], "--exclude")
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    if ray_address is not None and not ray:
        _error("--ray-address needs --ray")
        raise typer.Exit(2)
    report = _run(lambda: _index_with_progress(paths or [Path("seeds")], settings, prune, rebuild, wait,
                                               exclude or [], (ray_address or "local") if ray else None))
    _out().print(render_index_report(report))
    if rebuild:
        _out().print(f"Rebuilt from scratch: {report.documents} document(s), {report.passages} passage(s).")
    elif report.embedded_passages == 0 and not report.removed:
        _out().print("Nothing changed: no embedding work was needed.")
    _prepare_models(settings)


def _prepare_models(settings) -> None:
    """Build the ONNX models once, so the first `qa ask` is as fast as the rest; never fails the index."""
    from qa.factory import models_ready, prepare_models

    if models_ready(settings):
        return
    try:
        with _preparing_models():
            prepare_models(settings)
    except QAError as exc:
        _err().print(f"warning: models not prepared: {exc}", markup=False, soft_wrap=True)


def _index_with_progress(paths, settings, prune, rebuild=False, wait=0.0, exclude=(), ray=None):
    from qa.indexing import build_index

    # files not indexed are listed once, with their reasons, in the report printed at the end
    return _with_progress(lambda update: build_index(
        paths, settings=settings, prune=prune, rebuild=rebuild, wait=wait, progress=update, exclude=exclude,
        ray=ray is not None, ray_address=None if ray in (None, "local") else ray,
    ))


@app.command(short_help="Answer one question (or a file of them): the best span, its citation, the runners-up.")
def ask(
    question: Annotated[str | None, typer.Argument(help="The question, in quotes.")] = None,
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    top_k: TopK = None,
    retriever: RetrieverOpt = None,
    reader: ReaderOpt = None,
    allow_download: AllowDownload = None,
    runtime: RuntimeOpt = None,
    calibration: CalibrationOpt = None,
    min_score: MinScore = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", exists=True, dir_okay=False, help="Answer every line of this file (one question a line; "
        "blank lines and lines starting with # are skipped) with one model load, as JSON Lines on stdout.")] = None,
) -> None:
    """Answer one question with the best span, its citation and the runners-up.

    With --file, each question's `--json` object is one line of output, in the file's order; a question that
    cannot be asked (empty, too long) gets a line with its "error" and the rest go on (exit 1 at the end).
    """
    from qa.pipeline import check_question
    from qa.render import render_result

    if (question is None) == (file is None):
        _error("give one QUESTION or --file QUESTIONS.txt")
        raise typer.Exit(2)
    settings = _settings(index_dir=_location(index_dir, index_uri), retriever=retriever, reader=reader,
                         allow_download=allow_download, reader_runtime=runtime, calibration=calibration)
    if file is not None:
        questions = _run(lambda: _read_questions(file))
        failed = _run(lambda: _ask_many(settings, questions, top_k, min_score))
        if failed:
            _error(f"{failed} of {len(questions)} question(s) could not be asked (their lines say why)")
            raise typer.Exit(1)
        return
    _run(lambda: check_question(question))  # before any model loads
    result = _run(lambda: _ask_once(settings, question, top_k, min_score))
    if as_json:
        _print_json(result.to_dict())
    else:
        _out().print(render_result(result, settings.unsure_below))


def _read_questions(path: Path) -> list[tuple[int, str]]:
    """(line number, question) of every line that is not blank or a # comment."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise QAError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise QAError(f"cannot read {path}: {exc.strerror or exc}") from None
    out = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise QAError(f"{path}: no questions (one a line; blank lines and # comments are skipped)")
    return out


def _ask_many(settings, questions: list[tuple[int, str]], top_k, min_score) -> int:
    """Answer each question, one JSON line each (as they come); returns how many could not be asked."""
    from qa.errors import QuestionError
    from qa.pipeline import check_question

    failed = 0
    assistant = _open_assistant(settings)
    try:
        for line, q in questions:
            try:
                check_question(q)
                row = assistant.ask(q, top_k=top_k, min_score=min_score).to_dict()
            except QuestionError as exc:
                failed += 1
                row = {"question": q, "line": line, "error": str(exc)}
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    finally:
        assistant.close()
    return failed


def _open_assistant(settings):
    """Assistant.open, under a status line when the ONNX models must be built first (about 20 s, once)."""
    from qa.factory import models_ready
    from qa.pipeline import Assistant

    if models_ready(settings):
        return Assistant.open(settings=settings)
    with _preparing_models():
        assistant = Assistant.open(settings=settings)
        try:
            getattr(assistant.reader, "warm_up", lambda: None)()
        except BaseException:
            assistant.close()
            raise
    return assistant


@contextmanager
def _preparing_models() -> Iterator[None]:
    """The status line (and quiet libraries) while ONNX models are built: once per model and export recipe."""
    _quiet_libraries()
    with _err().status("Preparing the models for fast answers (once)…"):
        yield


def _ask_once(settings, question: str, top_k, min_score):
    assistant = _open_assistant(settings)
    try:
        return assistant.ask(question, top_k=top_k, min_score=min_score)
    finally:
        assistant.close()


@app.command(short_help="Ask one question after another in the terminal.")
def chat(
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    top_k: TopK = None,
    retriever: RetrieverOpt = None,
    reader: ReaderOpt = None,
    allow_download: AllowDownload = None,
    runtime: RuntimeOpt = None,
    calibration: CalibrationOpt = None,
    min_score: MinScore = None,
) -> None:
    """Chat with your documents: ask one question after another (:help inside lists commands)."""
    from qa.chat import chat_loop, prompt_reader

    settings = _settings(index_dir=_location(index_dir, index_uri), retriever=retriever, reader=reader,
                         allow_download=allow_download,
                         reader_runtime=runtime, calibration=calibration)
    assistant = _run(lambda: _open_assistant(settings))
    from qa.config import model_cache_dir
    from qa.store import is_milvus_location

    where = assistant.settings.index_dir
    # a Milvus index is not a folder of ours: its history lives in qa's cache, one file per index
    history = (model_cache_dir().parent / "chat_history" / hashlib.sha256(where.encode()).hexdigest()[:16]
               if is_milvus_location(where) else Path(where) / ".chat_history")
    history.parent.mkdir(parents=True, exist_ok=True)
    try:
        _run(lambda: chat_loop(
            lambda q, k: assistant.ask(q, top_k=k, min_score=min_score),
            _out(),
            k=top_k or assistant.settings.passages_k,
            read=prompt_reader(history),
            unsure_below=assistant.settings.unsure_below,
        ))
    finally:
        assistant.close()


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

    settings = _settings(index_dir=_location(index_dir, index_uri))
    info = _run(lambda: index_status(settings.index_dir, documents=docs))
    if as_json:
        _print_json(info)
        return
    listing = info.pop("document_list", None)
    _out().print(render_status(info))
    if listing is not None:
        _out().print(render_documents(listing))
    else:
        _out().print("`qa status --docs` lists the documents (ids for `qa remove`).", markup=False)


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

    settings = _settings(index_dir=_location(index_dir, index_uri))
    try:
        cited = parse_span(span) if span is not None else None
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    ex = _run(lambda: show_document(settings.index_dir, doc_id, cited, context=context))
    if as_json:
        _print_json(ex.to_dict())
    elif cited is None:
        sys.stdout.write(ex.text if ex.text.endswith("\n") else ex.text + "\n")
    else:
        from qa.render import render_excerpt

        _out().print(render_excerpt(ex))


@app.command(short_help="Remove documents from the index by id.")
def remove(
    doc_ids: Annotated[list[str], typer.Argument(help="Document ids to remove (see `qa status --docs`).")],
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    wait: Annotated[float, typer.Option(min=0.0, help="Seconds to wait for a running `qa index` to finish.")] = 0.0,
) -> None:
    """Remove documents from the index (exit 1 if one of them is not there)."""
    from qa.indexing import remove_documents

    settings = _settings(index_dir=_location(index_dir, index_uri))
    removed = _run(lambda: remove_documents(doc_ids, settings.index_dir, wait=wait))
    missing = [d for d in doc_ids if d not in removed]
    if removed:
        _out().print(f"Removed {len(removed)} document(s): {', '.join(removed)}", markup=False)
    if missing:
        _error(f"not in the index: {', '.join(missing)}")
        raise typer.Exit(1)


@app.command("eval", short_help="Score answers against a gold file (JSONL or SQuAD): EM, F1, abstention, "
             "recall.")
def eval_(
    gold: Annotated[Path, typer.Argument(help="Gold file: JSONL (id, question, answers) or SQuAD v1.1/v2.0 JSON.",
                                         exists=True, dir_okay=False)] = Path("eval/gold.jsonl"),
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    mode: Annotated[str, typer.Option(help="pipeline (retrieve, then read), reader (gold paragraph; SQuAD) or "
                                           "retrieval (recall@k and MRR only; no reader).")]
    = "pipeline",
    top_k: TopK = None,
    retriever: RetrieverOpt = None,
    reader: ReaderOpt = None,
    allow_download: AllowDownload = None,
    runtime: RuntimeOpt = None,
    calibration: CalibrationOpt = None,
    min_score: MinScore = None,
    sweep: Annotated[bool, typer.Option(help="Find the no-answer threshold that maximises F1; print the curve.")]
    = False,
    save_threshold: Annotated[bool, typer.Option(
        help="With --sweep and a JSONL gold file: store it in the index for `qa ask`.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write one row per question (.jsonl or .csv).")] = None,
    min_f1: Annotated[float | None, typer.Option(help="Exit 1 when F1 is below this (for CI).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    article: Annotated[list[str] | None, typer.Option(
        "--article", help="SQuAD: only questions of this article title (repeat).")] = None,
    skip_article: Annotated[list[str] | None, typer.Option(
        "--skip-article", help="SQuAD: leave out the questions of this article title (repeat); the corpus "
        "stays whole.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="Draw the score's reliability diagram and the threshold curve into this PNG (needs matplotlib).",
        dir_okay=False)] = None,
) -> None:
    """Score answers against a gold file: EM, F1, abstention, recall@k, MRR, latency, why each miss failed, and
    how well the score is calibrated (expected calibration error and a reliability table)."""
    from qa import evaluation, render_eval

    settings = _settings(index_dir=_location(index_dir, index_uri), retriever=retriever, reader=reader,
                         allow_download=allow_download,
                         passages_k=top_k, reader_runtime=runtime, calibration=calibration)
    # checked before any work: a typo must not cost an indexing run, or the results at the end
    if mode not in evaluation.MODES:
        _error(f"--mode must be one of {', '.join(evaluation.MODES)}, got {mode!r}")
        raise typer.Exit(2)
    if report is not None and report.suffix.lower() not in evaluation.REPORT_SUFFIXES:
        _error(f"--report {report}: the name must end in {' or '.join(evaluation.REPORT_SUFFIXES)}")
        raise typer.Exit(2)
    if save_threshold and not sweep:
        _error("--save-threshold needs --sweep")
        raise typer.Exit(2)
    squad = _run(lambda: evaluation.gold_kind(gold)) == "squad"
    if index_dir is not None and mode != "reader" and squad:  # (a Milvus --index-uri receives the paragraphs)
        _err().print(f"note: a SQuAD file is asked against its own paragraphs, indexed into "
                     f"{evaluation.squad_index_dir(gold, settings)}; --index-dir is not used", markup=False,
                     soft_wrap=True)
    if save_threshold and (mode != "pipeline" or squad):
        # reader mode uses no index, and a SQuAD file is asked against a cache index of its own paragraphs
        _error("--save-threshold stores the threshold in the index `qa ask` uses, so it needs --mode pipeline "
               "and a JSONL gold file asked against that index")
        raise typer.Exit(2)
    if mode == "retrieval" and (sweep or min_f1 is not None or plot is not None):
        _error("--sweep, --min-f1 and --plot need the reader; --mode retrieval runs none")
        raise typer.Exit(2)
    summary, used_index = _run(lambda: _eval_with_progress(gold, settings, mode, min_score, limit, article,
                                                                 skip_article))
    if sweep:
        best = evaluation.best_threshold(summary.rows)
        if not as_json:
            _out().print(render_eval.sweep_table(evaluation.sweep_thresholds(summary.rows), best))
        summary = summary.with_threshold(best)
        if save_threshold and used_index is not None:
            _run(lambda: evaluation.save_threshold(used_index, best))
            _err().print(f"saved min_score={best:.4f} in {used_index}", markup=False)
    if report is not None:
        _run(lambda: evaluation.write_report(summary, report))
    if plot is not None:
        from qa.plots import plot_eval

        _run(lambda: plot_eval(summary, plot))
        _err().print(f"wrote {plot}", markup=False)
    if as_json:
        _print_json(summary.to_dict())
    else:
        _out().print(render_eval.summary_table(summary))
        if summary.expected_calibration_error is not None:
            _out().print(render_eval.reliability_table(summary))
        if any(r.label is not None for r in summary.rows):
            _out().print(render_eval.failures_table(summary.rows))
    if min_f1 is not None and summary.f1 is not None and summary.f1 < min_f1:
        _err().print(f"F1 {summary.f1:.2f} is below --min-f1 {min_f1}", markup=False, soft_wrap=True)
        raise typer.Exit(1)


def _eval_with_progress(gold, settings, mode, threshold, limit, articles, skip_articles=None):
    from qa.evaluation import evaluate_file

    return _with_progress(lambda update: evaluate_file(
        gold, settings=settings, mode=mode, threshold=threshold, limit=limit, articles=articles,
        skip_articles=skip_articles,
        progress=lambda d, t: update("questions", d, t), index_progress=update,
    ))


@app.command(short_help="Benchmark indexing, latency, memory and quality on a SQuAD file.")
def bench(
    squad: Annotated[Path, typer.Argument(help="SQuAD v1.1/v2.0 JSON: its paragraphs are the corpus, its questions "
                                          "the load.", exists=True, dir_okay=False)],
    questions: Annotated[int, typer.Option(min=1, help="Questions timed (sampled evenly over articles).")] = 500,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Passages handed to the reader.")] = 5,
    retriever: RetrieverOpt = None,
    reader: ReaderOpt = None,
    allow_download: AllowDownload = None,
    runtime: RuntimeOpt = None,
    embedder: Annotated[str | None, typer.Option(help="Embedder: a Hugging Face id or local folder.")] = None,
    index_uri: Annotated[str | None, typer.Option(
        "--index-uri", metavar="URI", help="Build the benchmark's index in Milvus (a new Milvus Lite file "
        "./bench.milvus.db, or a server http://host:19530) instead of a temporary folder; it is left there. "
        "Needs qa[milvus].")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the question sample.")] = 13,
    skip_cold_start: Annotated[bool, typer.Option(help="Skip the fresh `qa ask` and `qa --help` processes.")]
    = False,
    cold_runs: Annotated[int, typer.Option(min=1, help="Timed runs of each fresh process (median).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the results here "
                                                "(JSON if --json or the name ends in .json, else Markdown).",
                                                dir_okay=False)] = None,
) -> None:
    """Benchmark on a SQuAD file: indexing speed, query latency, cold start, memory and answer quality."""
    from qa import bench as qa_bench

    settings = _settings(retriever=retriever, reader=reader, embedder=embedder, passages_k=top_k,
                         allow_download=allow_download,
                         reader_runtime=runtime)
    location = _location(None, index_uri)
    report = _run(lambda: _with_progress(lambda update: qa_bench.run_bench(
        squad, settings=settings, questions=questions, seed=seed, cold_start=not skip_cold_start,
        cold_runs=cold_runs, progress=update, index_uri=location)))
    if output is not None:
        _run(lambda: qa_bench.write_output(report, output, as_json=as_json))
    if as_json:
        _print_json(report.to_dict())
    else:
        sys.stdout.write(qa_bench.render_markdown(report))


def _with_progress(fn: Callable[[Callable[[str, int, int], None]], T]) -> T:
    """Call ``fn(update)`` under progress bars on stderr, one per stage named by ``update(stage, done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_err(), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return fn(update)


@app.command(short_help="Serve questions over HTTP: a JSON API and a web page (on 127.0.0.1 by default).")
def serve(
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on. One other than loopback (127.0.0.1, ::1) needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    token: Annotated[str | None, typer.Option(
        help="Require `Authorization: Bearer TOKEN` on API requests. [default: $QA_TOKEN, which also keeps it "
        "out of the process list]")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Questions answered at once (they share one copy of the models). [default: one per CPU core]")]
    = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Let pages from this origin (e.g. a site's scheme://host:port) call the API; repeat "
        "for more. [default: none]")] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a question may take (waiting included) before "
                                           "the server answers 504.")] = 30.0,
) -> None:
    """Serve the index over HTTP: POST /ask, GET /documents[/ID], GET /status, GET /healthz, docs at /docs,
    and a web page at /.

    The models load once, in the background (/healthz says when they are ready). Beyond loopback a token is
    required (--token or QA_TOKEN), else the command refuses to start (exit 2).
    """
    from qa.config import server_token

    settings = _settings(index_dir=_location(index_dir, index_uri))
    token = token if token is not None else server_token()
    from qa import server

    try:
        server.check_bind(host, token)
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    allowed = server.LOOPBACK_HOSTS if server.is_loopback(host) else None  # no DNS rebinding onto loopback
    web = _run(lambda: server.create_app(
        settings.index_dir, settings, token=token, workers=workers, timeout_s=timeout,
        cors_origins=tuple(cors_origin or ()), allowed_hosts=allowed))
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    _err().print(f"qa: serving {settings.index_dir} at http://{shown}:{port}/ (Ctrl-C stops)", markup=False)
    uvicorn.run(web, host=host, port=port, log_level="info")


@app.command("train-reader", short_help="Train an extractive reader on SQuAD-format files (the shipped recipe).")
def train_reader(
    train: Annotated[list[str], typer.Argument(
        metavar="FILE[:WEIGHT]", help="SQuAD v1.1/v2.0 JSON files to train on. FILE:WEIGHT mixes them: each "
        "question of FILE (and the negatives mined from it) is used WEIGHT times per epoch in expectation "
        "(2 doubles it, 0.5 keeps a seeded half; default 1).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the trained model.")],
    base_model: Annotated[str | None, typer.Option(help="Encoder to start from. [default: all-MiniLM-L6-v2]")] = None,
    dev_article: Annotated[list[str] | None, typer.Option(
        "--dev-article", help="Title of an article held out and scored at the end (repeat).")] = None,
    max_length: Annotated[int, typer.Option(help="Tokens per window (question + passage).")] = 256,
    doc_stride: Annotated[int, typer.Option(help="Overlap of windows over a long paragraph.")] = 128,
    epochs: Annotated[float, typer.Option(help="Passes over the training windows.")] = 5.0,
    batch_size: Annotated[int, typer.Option()] = 32,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate (10% warm-up, linear decay).")]
    = 1e-4,
    seed: Annotated[int, typer.Option()] = 13,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    save_every: Annotated[int, typer.Option(help="Steps between resumable checkpoints (0: none).")] = 100,
    resume: Annotated[bool, typer.Option(
        help="Continue from OUTPUT/checkpoint if present: the same settings give the same weights as a run never "
        "interrupted (the device and --threads may change).")] = False,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch. [default: every core]")] = None,
    log_file: Annotated[Path | None, typer.Option(
        "--log", dir_okay=False, help="Append progress lines (step, loss, seconds a step, time left, checkpoints) "
        "to this file: the record of a run in the background or across sessions.")] = None,
    synthetic_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of answerable questions also trained as unanswerable, over their paragraph "
        "with the answer's sentence(s) deleted.")] = 0.0,
    paragraph_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of answerable questions also trained as unanswerable over another paragraph "
        "of their article that lacks every gold answer.")] = 0.0,
    retrieved_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of answerable questions also trained as unanswerable over the best BM25 "
        "paragraph of another training article that lacks every gold answer.")] = 0.0,
    perturbed_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of answerable questions also trained as unanswerable over their own paragraph, "
        "changed so that it no longer answers them (a name, number or antonym swapped, a negation: SQuAD 2.0's "
        "kind).")] = 0.0,
    negative_weight: Annotated[float, typer.Option(
        min=0.01, help="Loss weight of unanswerable windows (mined or real) against answerable "
        "ones.")] = 1.0,
    attention_dropout: Annotated[float | None, typer.Option(
        min=0.0, max=0.99, help="Dropout on attention probabilities. [default: the base model's own]")] = None,
    teacher: Annotated[list[str] | None, typer.Option(
        "--teacher", help="Reader (folder or Hugging Face id) whose logits, averaged over every --teacher, the model "
        "also learns from: knowledge distillation (repeat; same tokenizer).")] = None,
    distill_weight: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of the loss from the teachers' soft targets (the rest: the gold spans).")] = 0.9,
    distill_temperature: Annotated[float, typer.Option(
        min=0.01, help="Softmax temperature of the distillation targets.")] = 2.0,
) -> None:
    """Fine-tune an extractive reader (encoder + span head) on SQuAD-format files.

    Recipe: windows of MAX_LENGTH tokens with DOC_STRIDE overlap; unanswerable (v2.0) questions
    point at [CLS] so the reader learns to abstain; AdamW with warm-up and linear decay;
    length-bucketed batches; optionally distilled from --teacher readers. Deterministic for a seed.
    At the end, EM/F1 and no-answer accuracy on the --dev-article titles (held out of training) are
    printed and saved in training.json.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from transformers.utils import logging as hf_logging

    from qa.training import TrainConfig
    from qa.training import train_reader as run_training
    from qa.trainset import parse_source

    hf_logging.disable_progress_bar()  # our own bar shows the progress

    if log_file is not None:
        import logging

        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        for name in ("qa.training", "qa.trainset"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
    sources = _run(lambda: [parse_source(spec) for spec in train])
    cfg = TrainConfig(
        train_files=tuple(s.path for s in sources), output_dir=str(output), base_model=base_model,
        train_weights=tuple(s.weight for s in sources) if any(s.weight != 1.0 for s in sources) else (),
        threads=threads, paragraph_negatives=paragraph_negatives, retrieved_negatives=retrieved_negatives,
        negative_weight=negative_weight, attention_dropout=attention_dropout,
        dev_articles=tuple(dev_article or ()), max_length=max_length, doc_stride=doc_stride, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed, device=device, max_steps=max_steps,
        save_every=save_every, resume=resume, synthetic_negatives=synthetic_negatives,
        perturbed_negatives=perturbed_negatives,
        teachers=tuple(teacher or ()), distill_weight=distill_weight, distill_temperature=distill_temperature,
    )
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    with Progress(*cols, console=_err()) as bar:
        prep = bar.add_task("featurizing", total=None, loss=0.0)
        task = bar.add_task("training", total=None, loss=0.0, visible=False)

        def on_step(s: int, n: int, loss: float) -> None:
            bar.update(task, completed=s, total=n, loss=loss, visible=True)

        result = _run(lambda: run_training(
            cfg, progress=on_step, featurize_progress=lambda d, n: bar.update(prep, completed=d, total=n)))
    _print_json({"output_dir": result.output_dir, "steps": result.steps, "seconds": round(result.seconds, 1),
                 "examples": result.example_counts, "windows": result.train_features,
                 "featurize_seconds": round(result.featurize_seconds, 1),
                 "dev": None if result.dev is None else {k: getattr(result.dev, k) for k in result.dev.__slots__}})


def main() -> None:
    """Entry point for `python -m qa`."""
    app()
