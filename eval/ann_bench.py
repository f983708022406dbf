"""How the local backend's approximate (IVF) dense search trades recall for speed, to choose when it is used.

    python eval/ann_bench.py --squad ../shared/data/squad/squad11-train.json --cache ~/qa-runs/ann \\
        --random 200000,500000,1000000 --out eval/results/ann_bench.json

Two kinds of vectors:

* **real**: the sentences of a SQuAD file's paragraphs (split by ``qa.chunking.sentence_spans``), embedded with
  the packaged embedder (cached as ``.npy`` under ``--cache``: embedding them takes minutes), searched with the
  file's questions, embedded the same way. Real embeddings cluster by topic, as an index's passages do.
* **random**: unit vectors drawn uniformly at the sizes given, searched with a stored vector plus noise. They
  have no cluster structure at all, the worst case for an inverted-file index: its recall on them is a floor.

For each set it builds the exact index the local store uses (flat inner product) and the IVF index it switches to
(``qa.store.vectors``: about 4 * sqrt(n) lists, trained on a fixed sample), then runs single queries on one thread
(as ``qa ask`` does) and reports p50/p95 latency, recall@10 against the exact top 10, and how often the exact
nearest passage is in the approximate top 10, for several ``nprobe``, among them the one
``qa`` uses for that many lists (marked "(qa)", ``qa.store.vectors.nprobe_for``).
The table says which machine measured it; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from bench_io import save_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NPROBES = (8, 16, 32, 64, 128)
K = 10


def real_vectors(squad: Path, cache: Path, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """``(passage vectors, query vectors)`` of a SQuAD file's paragraph sentences and questions, cached."""
    cache.mkdir(parents=True, exist_ok=True)
    p_file, q_file = cache / f"{squad.stem}-sentences.npy", cache / f"{squad.stem}-questions-{queries}.npy"
    if p_file.exists() and q_file.exists():
        return np.load(p_file), np.load(q_file)
    from qa.chunking import sentence_spans
    from qa.config import Settings
    from qa.factory import make_embedder
    from qa.squad import load_squad

    articles = load_squad(squad)
    sentences, questions = [], []
    for article in articles:
        for para in article.paragraphs:
            sentences.extend(para.context[s.start : s.end] for s in sentence_spans(para.context))
            questions.extend(q.question for q in para.questions)
    rng = np.random.default_rng(3)
    picked = [questions[i] for i in rng.choice(len(questions), size=min(queries, len(questions)), replace=False)]
    embedder = make_embedder(Settings())
    print(f"embedding {len(sentences):,} sentences and {len(picked):,} questions ...", file=sys.stderr)
    t0 = time.perf_counter()
    passages = embedder.encode_passages(sentences)
    print(f"  {len(sentences) / (time.perf_counter() - t0):.0f} sentences/s", file=sys.stderr)
    qvecs = np.stack([embedder.encode_query(q) for q in picked])
    np.save(p_file, passages)
    np.save(q_file, qvecs)
    return passages, qvecs


def random_vectors(n: int, queries: int, dim: int = 384, seed: int = 13) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    noise = rng.standard_normal((queries, dim)).astype(np.float32) * 0.05
    q = vectors[rng.choice(n, size=queries, replace=False)] + noise
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return vectors, q


def _timed_search(index, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    ids, ms = np.zeros((len(queries), K), np.int64), []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        _, found = index.search(q[None, :], K)
        ms.append((time.perf_counter() - t0) * 1000)
        ids[i] = found[0]
    return ids, ms


def measure(name: str, vectors: np.ndarray, queries: np.ndarray) -> dict:
    """Exact and IVF search over ``vectors``: build time, latency and recall@10 per nprobe."""
    import faiss

    from qa.store.vectors import _lists_for, nprobe_for

    faiss.omp_set_num_threads(1)
    n, dim = vectors.shape
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    exact, flat_ms = _timed_search(flat, queries)
    nlist = _lists_for(n)
    t0 = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    faiss.omp_set_num_threads(0)  # training and adding may use every core; searching does not
    ivf.train(vectors[rng.choice(n, size=min(n, 64 * nlist), replace=False)])
    ivf.add(vectors)
    build_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    rows = []
    rule = nprobe_for(nlist)
    for nprobe in sorted({p for p in NPROBES if p <= nlist} | {rule}):
        ivf.nprobe = nprobe
        found, ms = _timed_search(ivf, queries)
        recall = np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact, strict=True)])
        top1 = np.mean([e[0] in set(f) for f, e in zip(found, exact, strict=True)])
        rows.append({"nprobe": nprobe, "qa_default": nprobe == rule, "recall_at_10": round(float(recall), 4),
                     "top1_in_10": round(float(top1), 4),
                     "p50_ms": round(float(np.percentile(ms, 50)), 3),
                     "p95_ms": round(float(np.percentile(ms, 95)), 3)})
    return {"set": name, "passages": n, "queries": len(queries), "nlist": nlist, "ivf_build_s": round(build_s, 1),
            "flat_p50_ms": round(float(np.percentile(flat_ms, 50)), 3),
            "flat_p95_ms": round(float(np.percentile(flat_ms, 95)), 3), "ivf": rows}


def table(results: list[dict]) -> str:
    lines = ["| vectors | passages | exact p50 / p95 | IVF lists (build) | nprobe | recall@10 | exact top 1 in top 10 "
             "| IVF p50 / p95 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for j, row in enumerate(r["ivf"]):
            head = (f"| {r['set']} | {r['passages']:,} | {r['flat_p50_ms']:.2f} / {r['flat_p95_ms']:.2f} ms | "
                    f"{r['nlist']:,} ({r['ivf_build_s']:.0f} s) |") if j == 0 else "| | | | |"
            mark = " (qa)" if row.get("qa_default") else ""
            lines.append(f"{head} {row['nprobe']}{mark} | {row['recall_at_10']:.3f} | {row['top1_in_10']:.3f} | "
                         f"{row['p50_ms']:.2f} / {row['p95_ms']:.2f} ms |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--squad", type=Path, help="a SQuAD file whose paragraph sentences are the real vectors")
    ap.add_argument("--cache", type=Path, default=Path("runs/ann"), help="where the real vectors are cached")
    ap.add_argument("--random", default="", help="comma-separated sizes of random unit-vector sets")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.random.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--random takes comma-separated whole numbers, not {args.random!r}")
    if not args.squad and not sizes:
        ap.error("give --squad FILE, --random SIZES, or both")
    if args.squad and not args.squad.is_file():
        ap.error(f"--squad {args.squad}: no such file")
    if args.queries < 1 or any(s < K for s in sizes):
        ap.error(f"--queries must be positive and every --random size at least {K}")
    results = []
    if args.squad:
        vectors, queries = real_vectors(args.squad, args.cache, args.queries)
        results.append(measure("real (SQuAD sentences)", vectors, queries))
        print(table(results[-1:]), file=sys.stderr)
    for n in sizes:
        vectors, queries = random_vectors(n, args.queries)
        results.append(measure("random unit", vectors, queries))
        print(table(results[-1:]), file=sys.stderr)
        del vectors
    from qa.machine import describe_machine  # CPU, cores, load average, Python: latency depends on them

    report = {"machine": describe_machine(), "results": results}
    print(f"Machine: {report['machine']}\n")
    print(table(results))
    save_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
