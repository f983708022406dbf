"""`qa eval` and `qa bench`: scores against a gold file, and a benchmark on a SQuAD file."""

from __future__ import annotations

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
    print_json,
    run_or_exit,
    with_progress,
)


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

    settings = make_settings(index_dir=index_location(index_dir, index_uri), retriever=retriever, reader=reader,
                         allow_download=allow_download,
                         passages_k=top_k, reader_runtime=runtime, calibration=calibration)
    # checked before any work: a typo must not cost an indexing run, or the results at the end
    if mode not in evaluation.MODES:
        error(f"--mode must be one of {', '.join(evaluation.MODES)}, got {mode!r}")
        raise typer.Exit(2)
    if report is not None and report.suffix.lower() not in evaluation.REPORT_SUFFIXES:
        error(f"--report {report}: the name must end in {' or '.join(evaluation.REPORT_SUFFIXES)}")
        raise typer.Exit(2)
    if save_threshold and not sweep:
        error("--save-threshold needs --sweep")
        raise typer.Exit(2)
    squad = run_or_exit(lambda: evaluation.gold_kind(gold)) == "squad"
    if index_dir is not None and mode != "reader" and squad:  # (a Milvus --index-uri receives the paragraphs)
        common.err().print(f"note: a SQuAD file is asked against its own paragraphs, indexed into "
                     f"{evaluation.squad_index_dir(gold, settings)}; --index-dir is not used", markup=False,
                     soft_wrap=True)
    if save_threshold and (mode != "pipeline" or squad):
        # reader mode uses no index, and a SQuAD file is asked against a cache index of its own paragraphs
        error("--save-threshold stores the threshold in the index `qa ask` uses, so it needs --mode pipeline "
               "and a JSONL gold file asked against that index")
        raise typer.Exit(2)
    if mode == "retrieval" and (sweep or min_f1 is not None or plot is not None):
        error("--sweep, --min-f1 and --plot need the reader; --mode retrieval runs none")
        raise typer.Exit(2)
    summary, used_index = run_or_exit(lambda: _eval_with_progress(gold, settings, mode, min_score, limit, article,
                                                                 skip_article))
    if sweep:
        best = evaluation.best_threshold(summary.rows)
        if not as_json:
            common.out().print(render_eval.sweep_table(evaluation.sweep_thresholds(summary.rows), best))
        summary = summary.with_threshold(best)
        if save_threshold and used_index is not None:
            run_or_exit(lambda: evaluation.save_threshold(used_index, best))
            common.err().print(f"saved min_score={best:.4f} in {used_index}", markup=False)
    if report is not None:
        run_or_exit(lambda: evaluation.write_report(summary, report))
    if plot is not None:
        from qa.plots import plot_eval

        run_or_exit(lambda: plot_eval(summary, plot))
        common.err().print(f"wrote {plot}", markup=False)
    if as_json:
        print_json(summary.to_dict())
    else:
        common.out().print(render_eval.summary_table(summary))
        if summary.expected_calibration_error is not None:
            common.out().print(render_eval.reliability_table(summary))
        if any(r.label is not None for r in summary.rows):
            common.out().print(render_eval.failures_table(summary.rows))
    if min_f1 is not None and summary.f1 is not None and summary.f1 < min_f1:
        common.err().print(f"F1 {summary.f1:.2f} is below --min-f1 {min_f1}", markup=False, soft_wrap=True)
        raise typer.Exit(1)


def _eval_with_progress(gold, settings, mode, threshold, limit, articles, skip_articles=None):
    from qa.evaluation import evaluate_file

    return with_progress(lambda update: evaluate_file(
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
    calibration: CalibrationOpt = None,
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

    settings = make_settings(retriever=retriever, reader=reader, embedder=embedder, passages_k=top_k,
                         allow_download=allow_download,
                         reader_runtime=runtime, calibration=calibration)
    location = index_location(None, index_uri)
    report = run_or_exit(lambda: with_progress(lambda update: qa_bench.run_bench(
        squad, settings=settings, questions=questions, seed=seed, cold_start=not skip_cold_start,
        cold_runs=cold_runs, progress=update, index_uri=location)))
    if output is not None:
        run_or_exit(lambda: qa_bench.write_output(report, output, as_json=as_json))
    if as_json:
        print_json(report.to_dict())
    else:
        sys.stdout.write(qa_bench.render_markdown(report))
