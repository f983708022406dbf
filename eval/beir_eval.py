"""Score dense, BM25 and hybrid retrieval on a BEIR data set (nDCG@10, recall@100) and print a Markdown table.

    python eval/beir_eval.py ../shared/data/scifact --qrels train            # Markdown table on stdout
    python eval/beir_eval.py ../shared/data/scifact --qrels train --json     # JSON on stdout, table on stderr

The corpus is indexed once into a cache folder keyed by the corpus file's hash and the index settings
(~/.cache/qa/beir-index/, or --cache-dir), so a second run embeds nothing. Progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# Run from a checkout without installing: the package lives one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.beir import BeirRun, run_beir  # noqa: E402
from qa.config import RETRIEVERS, Settings  # noqa: E402
from qa.errors import QAError  # noqa: E402
from qa.machine import describe_machine  # noqa: E402


def markdown(run: BeirRun, settings: Settings, host: str, seconds: float) -> str:
    """The results as a Markdown table, with what they were measured on."""
    lines = [
        f"BEIR {run.dataset}, qrels `{run.split}`: {run.n_queries} judged queries (of {run.n_queries_file}), "
        f"{run.n_documents} documents in {run.n_passages} passages "
        f"(chunk {settings.chunk_size}/{settings.chunk_overlap} tokens, {settings.embedder_name}).",
        "",
        "| retriever | nDCG@10 | recall@100 | latency p50 | latency p95 |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in run.results:
        lines.append(
            f"| {r.retriever} | {r.ndcg_at_10:.4f} | {r.recall_at_100:.4f} | "
            f"{r.latency_p50_ms:.1f} ms | {r.latency_p95_ms:.1f} ms |"
        )
    lines += [
        "",
        f"Hybrid: reciprocal rank fusion, rrf_k={settings.rrf_k}, fusion depth max({settings.fusion_depth}, "
        "passages retrieved). A document ranks by its best passage; latency is per query at the depth "
        "needed for 100 distinct documents.",
        f"Machine: {host}. Index: {run.index_dir} ({run.embedded_passages} passages embedded this run, "
        f"{run.index_seconds:.0f} s); total {seconds:.0f} s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the table (and JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="BEIR data set folder (corpus.jsonl, queries.jsonl, qrels/)")
    ap.add_argument("--qrels", default="test", help="qrels split: qrels/SPLIT.tsv [default: test]")
    ap.add_argument("--retriever", action="append", choices=RETRIEVERS, help="repeat; [default: all]")
    ap.add_argument("--limit", type=int, help="only the first N judged queries")
    ap.add_argument("--cache-dir", type=Path, help="where cached indexes live [default: ~/.cache/qa/beir-index]")
    ap.add_argument("--rrf-k", type=int, help="RRF constant for hybrid [default: Settings.rrf_k]")
    ap.add_argument("--fusion-depth", type=int, help="candidates per retriever for hybrid [default: Settings]")
    ap.add_argument("--json", action="store_true", help="JSON on stdout (the table goes to stderr)")
    ap.add_argument("--per-query", action="store_true", help="with --json: each query's metrics and top 10")
    args = ap.parse_args(argv)

    settings = Settings.from_env(rrf_k=args.rrf_k, fusion_depth=args.fusion_depth)
    err = Console(stderr=True)
    host = describe_machine()
    t0 = time.perf_counter()
    columns = (TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            run = run_beir(
                args.folder, split=args.qrels, settings=settings, retrievers=args.retriever or RETRIEVERS,
                cache_root=args.cache_dir, progress=progress, limit=args.limit,
            )
    except QAError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 1
    table = markdown(run, settings, host, time.perf_counter() - t0)
    if args.json:
        d = run.to_dict(queries=args.per_query)
        d["machine"] = host
        d["settings"] = {"rrf_k": settings.rrf_k, "fusion_depth": settings.fusion_depth,
                         "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap,
                         "embedder": settings.embedder_name}
        sys.stdout.write(json.dumps(d, indent=2) + "\n")
        err.print(table, markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
