"""`qa ask` and `qa chat`: questions in, cited answers out."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from qa.cli import common
from qa.cli.common import (
    AllowDownload,
    CalibrationOpt,
    IndexDir,
    IndexUri,
    MinScore,
    ReaderOpt,
    RetrieverOpt,
    RuntimeOpt,
    TopK,
    app,
    error,
    index_location,
    make_settings,
    preparing_models,
    print_json,
    run_or_exit,
)
from qa.errors import QAError


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
        error("give one QUESTION or --file QUESTIONS.txt")
        raise typer.Exit(2)
    settings = make_settings(index_dir=index_location(index_dir, index_uri), retriever=retriever, reader=reader,
                         allow_download=allow_download, reader_runtime=runtime, calibration=calibration)
    if file is not None:
        questions = run_or_exit(lambda: _read_questions(file))
        failed = run_or_exit(lambda: _ask_many(settings, questions, top_k, min_score))
        if failed:
            error(f"{failed} of {len(questions)} question(s) could not be asked (their lines say why)")
            raise typer.Exit(1)
        return
    run_or_exit(lambda: check_question(question))  # before any model loads
    result = run_or_exit(lambda: _ask_once(settings, question, top_k, min_score))
    if as_json:
        print_json(result.to_dict())
    else:
        common.out().print(render_result(result, settings.unsure_below))


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
    with preparing_models():
        assistant = Assistant.open(settings=settings)
        try:
            getattr(assistant.reader, "warm_up", lambda: None)()
        except BaseException:
            assistant.close()
            raise
    return assistant


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

    settings = make_settings(index_dir=index_location(index_dir, index_uri), retriever=retriever, reader=reader,
                         allow_download=allow_download,
                         reader_runtime=runtime, calibration=calibration)
    assistant = run_or_exit(lambda: _open_assistant(settings))
    from qa.config import model_cache_dir
    from qa.store import is_milvus_location

    where = assistant.settings.index_dir
    # a Milvus index is not a folder of ours: its history lives in qa's cache, one file per index
    history = (model_cache_dir().parent / "chat_history" / hashlib.sha256(where.encode()).hexdigest()[:16]
               if is_milvus_location(where) else Path(where) / ".chat_history")
    history.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_or_exit(lambda: chat_loop(
            lambda q, k: assistant.ask(q, top_k=k, min_score=min_score),
            common.out(),
            k=top_k or assistant.settings.passages_k,
            read=prompt_reader(history),
            unsure_below=assistant.settings.unsure_below,
        ))
    finally:
        assistant.close()
