"""Indexing throughput: one process against Ray Data (`qa index --ray`), on the same files, into fresh indexes.

    python eval/ray_bench.py ../shared/data/squad/squad11-train.json --articles 60 --out eval/results/ray_bench.json

The first ``--articles`` articles of a SQuAD file become one text file each (paragraphs joined by a blank line),
and are indexed from scratch twice, each in a child process of its own: ``qa.build_index`` in one process, then
``qa.build_index(..., ray=True)`` on a local Ray (or ``--ray-address``). Each time is the whole run as a user
waits for it (model loading, and for Ray its start-up and shutdown, included); Ray's start-up alone
(``ray.init`` to ``ray.shutdown``, nothing run) is measured apart, so its overhead is said, not hidden. The two
indexes must hold the same passages. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_io import run_step, save_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_corpus(squad: Path, articles: int, folder: Path) -> int:
    """One .txt file per article; returns how many were written."""
    from qa.squad import load_squad

    picked = [a for a in load_squad(squad) if a.paragraphs][:articles]
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(picked):
        (folder / f"{i:04d}.txt").write_text("\n\n".join(p.context for p in a.paragraphs) + "\n", encoding="utf-8")
    return len(picked)


def run_child(how: str, corpus: Path, index: Path, address: str | None) -> dict:
    """One timed indexing run (``single``, ``ray``) or Ray's bare start-up (``ray-start``); in a child process."""
    if how == "ray-start":
        import ray

        t0 = time.perf_counter()
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        ray.shutdown()
        return {"how": how, "seconds": round(time.perf_counter() - t0, 2), "workers": cpus}
    from qa import Settings, build_index
    from qa.store import open_index

    t0 = time.perf_counter()
    report = build_index([corpus], index, settings=Settings(), ray=how == "ray", ray_address=address)
    seconds = time.perf_counter() - t0
    with open_index(index) as store:
        passages = sorted((c.doc_id, c.char_start, c.char_end)
                          for d in store.document_hashes() for c in store.chunks_of(d))
    return {"how": how, "seconds": round(seconds, 2), "documents": report.documents, "passages": report.passages,
            "passages_per_s": round(report.passages / seconds, 1), "layout": passages}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("squad", type=Path, help="a SQuAD file; its first --articles articles are the documents")
    ap.add_argument("--articles", type=int, default=60)
    ap.add_argument("--ray-address", default=None, help="a Ray cluster (default: a local Ray on this machine)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        how, corpus, index = args.child
        print(json.dumps(run_child(how, Path(corpus), Path(index), args.ray_address)))
        return 0
    if not args.squad.is_file():
        ap.error(f"{args.squad}: no such file")
    if args.articles < 1:
        ap.error("--articles must be positive")
    work = Path(tempfile.mkdtemp(prefix="qa-ray-bench-"))
    try:
        n = write_corpus(args.squad, args.articles, work / "corpus")
        results = []
        for how in ("single", "ray-start", "ray"):
            cmd = [__file__, str(args.squad), "--child", how, str(work / "corpus"), str(work / f"index-{how}")]
            if args.ray_address:
                cmd += ["--ray-address", args.ray_address]
            results.append(run_step(cmd, how))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    single, start, ray_run = results
    same = single.pop("layout") == ray_run.pop("layout")
    from qa.machine import describe_machine  # CPU, cores, load average, Python: latency depends on them

    report = {"machine": describe_machine(), "squad": str(args.squad), "articles": n, "same_passages": same,
              "single": single, "ray_start": start, "ray": ray_run}
    print(f"Machine: {report['machine']}; {n} articles of {args.squad.name}; same passages: {same}\n")
    print("| indexing | wall time | passages/s |\n|---|---|---|")
    print(f"| one process | {single['seconds']:.1f} s | {single['passages_per_s']:.1f} |")
    where = f"at {args.ray_address}" if args.ray_address else "local"
    print(f"| Ray Data, {where} ({start['workers']} CPUs) | {ray_run['seconds']:.1f} s | "
          f"{ray_run['passages_per_s']:.1f} |")
    print(f"| of which Ray start-up and shutdown alone | {start['seconds']:.1f} s | |")
    save_report(report, args.out)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
