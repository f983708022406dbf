"""What every `qa` command shares: the Typer app, the options several commands take, the consoles, and the one
place where a library error becomes a message and an exit code."""

from __future__ import annotations

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
def out() -> Console:
    """Console for results (made on first use: `qa --help` imports no Rich)."""
    from rich.console import Console

    return Console()


@cache
def err() -> Console:
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


def quiet_libraries() -> None:
    """Keep third-party progress bars and advisories out of the user's terminal."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    for name in ("sentence_transformers", "transformers", "faiss", "onnxruntime", "trafilatura", "pypdf"):
        logging.getLogger(name).setLevel(logging.ERROR)


def error(message: str) -> None:
    """One line on stderr, never wrapped or parsed as markup."""
    err().print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


def run_or_exit(fn: Callable[[], T]) -> T:
    """Call into the library; a QAError becomes one line on stderr and exit code 1."""
    quiet_libraries()
    try:
        return fn()
    except QAError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err().print("interrupted", markup=False)
        raise typer.Exit(130) from None


def index_location(index_dir: Path | None, index_uri: str | None) -> str | None:
    """The index location the options name: --index-dir or --index-uri (not both); exit 2 on a bad URI."""
    from qa.store import is_milvus_location

    if index_dir is not None and index_uri is not None:
        error("give --index-dir (a folder) or --index-uri (Milvus), not both")
        raise typer.Exit(2)
    if index_uri is not None:
        if not is_milvus_location(index_uri):
            error(f"--index-uri {index_uri!r} is neither a Milvus Lite file (*.db) nor a Milvus server URI "
                   "(http://host:19530); a folder index is --index-dir")
            raise typer.Exit(2)
        return index_uri
    return str(index_dir) if index_dir is not None else None


def make_settings(**overrides: Any):
    from qa.config import Settings

    try:
        settings = Settings.from_env(**overrides)
    except ValueError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    if not settings.allow_download:
        # a cached model then loads without asking the hub for updates (no minute of retries offline)
        os.environ["HF_HUB_OFFLINE"] = "1"
    return settings


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


@contextmanager
def preparing_models() -> Iterator[None]:
    """The status line (and quiet libraries) while ONNX models are built: once per model and export recipe."""
    quiet_libraries()
    with err().status("Preparing the models for fast answers (once)…"):
        yield


def with_progress(fn: Callable[[Callable[[str, int, int], None]], T]) -> T:
    """Call ``fn(update)`` under progress bars on stderr, one per stage named by ``update(stage, done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err(), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return fn(update)
