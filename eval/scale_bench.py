"""A synthetic corpus of N passages in each index backend: build time, disk size, peak memory, search latency.

    python eval/scale_bench.py --passages 1000000 --backends local,milvus --out runs/scale.json

The passages are generated text (words drawn from a Zipf-like vocabulary, 10 passages a document, fixed seed),
and their vectors are **random unit vectors** (384 dimensions, the packaged embedder's): embedding a million
passages would take this machine hours, and search cost does not depend on what the vectors mean. So the recall
figures here say how well an approximate search finds the exact nearest neighbours, not how relevant they are.

Each backend runs in a child process of its own, so that its peak memory (ru_maxrss) is its own; a server
process that the backend starts (Milvus Lite's) is sampled apart, twice a second, and shown beside it. For each, the
table gives the build time (``PassageStore.apply`` / ``MilvusStore.apply`` in batches of ``--batch`` passages),
the size on disk, the peak memory, p50/p95 latency of dense, BM25 and hybrid search at k = 5 over ``--queries``
queries (each a passage's vector with noise, and 4 of its words), and recall@10 of the dense search against an
exact (brute-force numpy) search over the same vectors.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_io import run_step, save_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DIM = 384
PER_DOC = 10
WORDS_PER_PASSAGE = 60
VOCAB = 20_000


def _vocabulary(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=int(rng.integers(3, 10)))) for _ in range(VOCAB)]


def corpus(n: int, seed: int = 13):
    """``(documents, chunks per document, vectors)`` of n passages, deterministic."""
    from qa.schema import Chunk, Document

    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng)
    weights = 1.0 / np.arange(1, VOCAB + 1)
    weights /= weights.sum()
    docs, chunks_of = [], []
    for d in range(0, n, PER_DOC):
        k = min(PER_DOC, n - d)
        passages = [" ".join(vocab[i] for i in rng.choice(VOCAB, size=WORDS_PER_PASSAGE, p=weights)) + "."
                    for _ in range(k)]
        text = "\n\n".join(passages)
        doc = Document(f"doc{d // PER_DOC:07d}", text, source=f"synthetic/doc{d // PER_DOC:07d}.txt")
        chunks, pos = [], 0
        for j, p in enumerate(passages):
            chunks.append(Chunk(f"{doc.doc_id}#{j}", doc.doc_id, pos, pos + len(p), p))
            pos += len(p) + 2
        docs.append(doc)
        chunks_of.append(chunks)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return docs, chunks_of, vectors


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class _QueryVectors:
    """An embedder stand-in: each bench query's vector, looked up by its text."""

    model_name = "synthetic-random-unit-vectors"
    dim = DIM

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode_query(self, text: str) -> np.ndarray:
        return self.vectors[text]


class _ChildMemory:
    """The peak resident memory of this process's children (Milvus Lite's server runs as one), sampled twice a
    second in a thread while the benchmark runs."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.5):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_mb, 1)


def run_backend(backend: str, n: int, batch: int, queries: int, workdir: Path) -> dict:
    """Build and search one backend; called in a child process."""
    from qa.retriever import Retriever
    from qa.store import open_index, open_or_create_index

    children = _ChildMemory()

    docs, chunks_of, vectors = corpus(n)
    location = workdir / ("idx.milvus.db" if backend == "milvus" else "index")
    spec = {"embedder": _QueryVectors.model_name, "dim": DIM, "chunk_size": 160, "chunk_overlap": 32}
    t0 = time.perf_counter()
    store = open_or_create_index(str(location) if backend == "milvus" else location, **spec)
    pos, pending, size = 0, [], 0
    for doc, chunks in zip(docs, chunks_of, strict=True):
        pending.append((doc, chunks, vectors[pos : pos + len(chunks)]))
        pos += len(chunks)
        size += len(chunks)
        if size >= batch:
            store.apply(pending, [])
            pending, size = [], 0
    if pending:
        store.apply(pending, [])
    store.close()
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(7)
    picks = rng.choice(n, size=min(queries, n), replace=False)
    flat = [c for chunks in chunks_of for c in chunks]
    texts, qvecs = [], {}
    for i in picks:
        words = flat[i].text.rstrip(".").split()
        text = " ".join(rng.choice(words, size=4, replace=False))
        q = vectors[i] + rng.standard_normal(DIM).astype(np.float32) * 0.05
        q /= np.linalg.norm(q)
        texts.append(text)
        qvecs[text] = q
    exact_top = {t: set(np.argsort(-(vectors @ qvecs[t]))[:10].tolist()) for t in texts}
    row_of = {c.chunk_id: i for i, c in enumerate(flat)}
    store = open_index(str(location) if backend == "milvus" else location)
    latency: dict[str, list[float]] = {"dense": [], "bm25": [], "hybrid": []}
    recall = []
    try:
        retriever = Retriever(_QueryVectors(qvecs), store, mode="hybrid")
        for t in texts:
            for mode in latency:
                t1 = time.perf_counter()
                retriever.retrieve(t, 5, mode=mode)
                latency[mode].append((time.perf_counter() - t1) * 1000)
            found = {row_of[s.chunk.chunk_id] for s in store.search_dense(qvecs[t], 10)}
            recall.append(len(found & exact_top[t]) / 10)
        stats = store.stats()
    finally:
        store.close()
    return {
        "backend": backend,
        "passages": n,
        "documents": stats.documents,
        "build_s": round(build_s, 1),
        "disk_mb": round(_size(location) / 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "server_peak_rss_mb": children.stop(),
        "search_ms": {m: {"p50": round(float(np.percentile(v, 50)), 2), "p95": round(float(np.percentile(v, 95)), 2)}
                      for m, v in latency.items()},
        "recall_at_10": round(float(np.mean(recall)), 4),
        "dense_index": stats.dense_index,
    }


def _server(r: dict) -> str:
    """`` (+ N MB server)`` where the backend ran a server process of its own (Milvus Lite)."""
    mb = r.get("server_peak_rss_mb") or 0
    return f" (+ {mb:,.0f} MB server)" if mb else ""


def table(results: list[dict]) -> str:
    head = ("| backend | passages | build | disk | peak memory (server) | dense p50/p95 | BM25 p50/p95 | "
            "hybrid p50/p95 | recall@10 (dense index) |\n|---|---|---|---|---|---|---|---|---|")
    rows = [head]
    for r in results:
        s = r["search_ms"]
        rows.append(
            f"| {r['backend']} | {r['passages']:,} | {r['build_s']:.0f} s | {r['disk_mb']:,.0f} MB | "
            f"{r['peak_rss_mb']:,.0f} MB{_server(r)} | " + " | ".join(f"{s[m]['p50']:.1f} / {s[m]['p95']:.1f} ms"
                                                        for m in ("dense", "bm25", "hybrid"))
            + f" | {r['recall_at_10']:.3f} ({r['dense_index']}) |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument("--backends", default="local,milvus", help="comma-separated: local, milvus")
    ap.add_argument("--batch", type=int, default=100_000, help="passages per apply() (one commit)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--workdir", type=Path, help="where the indexes are built (default: a temporary folder)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.passages < 1 or args.queries < 1 or args.batch < 1:
        ap.error("--passages, --queries and --batch must be positive")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(backends) - {"local", "milvus"}:
        ap.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.child:
        print(json.dumps(run_backend(args.child, args.passages, args.batch, args.queries, args.workdir)))
        return 0
    results = []
    for backend in backends:
        work = Path(tempfile.mkdtemp(prefix=f"qa-scale-{backend}-", dir=args.workdir))
        try:
            results.append(run_step(
                [__file__, "--child", backend, "--passages", str(args.passages), "--batch", str(args.batch),
                 "--queries", str(args.queries), "--workdir", str(work)], backend))
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        finally:
            shutil.rmtree(work, ignore_errors=True)
    from qa.machine import describe_machine  # CPU, cores, load average, Python: latency depends on them

    report = {"machine": describe_machine(), "vectors": "random unit vectors (not embedded)", "results": results}
    print(f"Machine: {report['machine']}; vectors: {report['vectors']}\n")
    print(table(results))
    save_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
