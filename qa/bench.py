"""Benchmark on a SQuAD file: indexing speed, query latency, cold start, memory and answer quality."""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import Settings
from qa.errors import QAError
from qa.machine import Machine, machine_info

log = logging.getLogger(__name__)

__all__ = ["BenchReport", "render_markdown", "run_bench", "sample_questions", "write_output"]

#: Questions asked (and not timed) before the timed ones, so one-time loading is excluded.
WARMUP_QUESTIONS = 3
#: Documents indexed into a throwaway index first, so model loading and imports are not timed.
WARMUP_DOCUMENTS = 8
#: Retrieval depth for recall@5: at least 5 even when fewer passages go to the reader.
RECALL_K = 5

Progress = Callable[[str, int, int], None]  # (stage, done, total)

@dataclass(frozen=True, slots=True)
class BenchReport:
    """The measurements of one :func:`run_bench`; times in seconds, per-question times in ms."""

    squad_path: str
    machine: Machine
    settings: dict[str, Any]  # retriever, top_k, reader, embedder, reader_runtime, min_score
    documents: int
    passages: int
    index_s: float  # index_documents over the whole corpus
    encode_s: float  # SentenceTransformer.encode over the same passage texts
    embed_ms: tuple[float, ...]
    search_ms: tuple[float, ...]
    read_ms: tuple[float, ...]
    e2e_ms: tuple[float, ...]  # Assistant.ask
    exact_match: float
    f1: float
    recall_at_5: float | None
    cold_start_runs: tuple[float, ...]  # () when skipped
    peak_rss_mb: float | None
    help_runs: tuple[float, ...]
    warmup_questions: int
    seconds: float  # the whole benchmark

    @property
    def questions(self) -> int:
        """Number of timed questions."""
        return len(self.e2e_ms)

    @property
    def passages_per_s(self) -> float:
        """Passages per second of the whole indexing path (chunk, embed, store)."""
        return self.passages / self.index_s if self.index_s > 0 else 0.0

    @property
    def encode_passages_per_s(self) -> float:
        """Passages per second of the bare SentenceTransformer.encode."""
        return self.passages / self.encode_s if self.encode_s > 0 else 0.0

    @property
    def cold_start_s(self) -> float | None:
        """Median wall time of a fresh `qa ask`, or None when skipped."""
        return statistics.median(self.cold_start_runs) if self.cold_start_runs else None

    @property
    def help_s(self) -> float | None:
        """Median wall time of `qa --help`, or None when skipped."""
        return statistics.median(self.help_runs) if self.help_runs else None

    def latency(self) -> dict[str, float]:
        """p50/p95 of each step and of the whole answer, in ms."""
        out: dict[str, float] = {"p50": _pct(self.e2e_ms, 50), "p95": _pct(self.e2e_ms, 95)}
        for name, values in (("embed", self.embed_ms), ("search", self.search_ms), ("read", self.read_ms)):
            out[f"{name}_p50"] = _pct(values, 50)
            out[f"{name}_p95"] = _pct(values, 95)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``qa bench --json`` object."""
        ratio = self.passages_per_s / self.encode_passages_per_s if self.encode_passages_per_s else None
        return {
            "machine": self.machine.describe(),
            "cpu": self.machine.cpu,
            "cores": self.machine.cores,
            "torch_threads": self.machine.torch_threads,
            "onnx_threads": self.machine.onnx_threads,
            "versions": dict(self.machine.versions),
            "squad": self.squad_path,
            **self.settings,
            "index": {
                "documents": self.documents,
                "passages": self.passages,
                "seconds": round(self.index_s, 3),
                "passages_per_s": round(self.passages_per_s, 2),
                "encode_seconds": round(self.encode_s, 3),
                "encode_passages_per_s": round(self.encode_passages_per_s, 2),
                "ratio": None if ratio is None else round(ratio, 4),
            },
            "questions": self.questions,
            "warmup_questions": self.warmup_questions,
            "latency_ms": {k: round(v, 2) for k, v in self.latency().items()},
            "cold_start_s": _round(self.cold_start_s, 3),
            "cold_start_runs_s": [round(x, 3) for x in self.cold_start_runs],
            "peak_rss_mb": _round(self.peak_rss_mb, 1),
            "help_s": _round(self.help_s, 3),
            "quality": {
                "n": self.questions,
                "exact_match": round(self.exact_match, 2),
                "f1": round(self.f1, 2),
                "recall_at_5": _round(self.recall_at_5, 2),
            },
            "seconds": round(self.seconds, 1),
        }


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


# --------------------------------------------------------------------------- pieces


def sample_questions(examples: Sequence, n: int, seed: int) -> list:
    """``n`` questions drawn deterministically and spread evenly over articles.

    Each article's questions are shuffled, the articles are shuffled, then questions are
    taken round-robin, one per article in turn, so no article dominates.

    Args:
        examples: GoldExamples whose ``doc_id`` is ``"{title}/{paragraph}"`` (see squad_corpus).
        n: how many; all of them when there are fewer.
        seed: the random seed.

    Returns:
        The sample, in the order it was drawn.
    """
    rng = random.Random(seed)
    by_article: dict[str, list] = {}
    for ex in examples:
        by_article.setdefault((ex.doc_id or "").rsplit("/", 1)[0], []).append(ex)
    groups = list(by_article.values())
    for g in groups:
        rng.shuffle(g)
    rng.shuffle(groups)
    out: list = []
    for i in range(max((len(g) for g in groups), default=0)):
        for g in groups:
            if len(out) >= n:
                return out
            if i < len(g):
                out.append(g[i])
    return out


# Runs the measured command as its own child and prints its wall time and rusage. The measured
# process must not be a direct child of the benchmark: on Linux a child's ru_maxrss starts from
# the RSS of the process that forked it, which here holds torch and the models (hundreds of MB).
_TIMER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
proc.returncode = os.waitstatus_to_exitcode(status)
print(json.dumps({"wall": wall, "maxrss": usage.ru_maxrss, "rc": proc.returncode}))
"""


def _child_env() -> dict[str, str]:
    """This environment, with the folder holding this ``qa`` first on PYTHONPATH so children run the same code."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _time_process(argv: Sequence[str]) -> tuple[float, float | None]:
    """Wall time of a fresh process until it exits, and its peak resident memory in MB (None if unknown).

    Raises:
        QAError: the process failed (its stderr is quoted).
    """
    argv = list(argv)
    with tempfile.TemporaryFile() as err:
        if hasattr(os, "wait4"):
            done = subprocess.run([sys.executable, "-c", _TIMER, *argv], stdout=subprocess.PIPE, stderr=err,
                                  stdin=subprocess.DEVNULL, env=_child_env(), check=False)
            try:
                timed = json.loads(done.stdout.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                timed = {"rc": done.returncode or 1}
            rc = timed["rc"]
        else:  # no rusage of children here (Windows): wall time only
            t0 = time.perf_counter()
            rc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                                env=_child_env(), check=False).returncode
            timed = {"wall": time.perf_counter() - t0}
        if rc != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip()[-800:]
            raise QAError(f"`{' '.join(argv[1:4])} ...` exited with {rc}: {tail}")
    rss = timed.get("maxrss")
    # ru_maxrss is KB on Linux, bytes on macOS.
    rss_mb = None if rss is None else rss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return float(timed["wall"]), rss_mb


# --------------------------------------------------------------------------- the run


def run_bench(
    squad_path: str | Path,
    *,
    settings: Settings | None = None,
    questions: int = 500,
    seed: int = 13,
    cold_start: bool = True,
    cold_runs: int = 5,
    progress: Progress | None = None,
    index_uri: str | None = None,
) -> BenchReport:
    """Benchmark the whole assistant on a SQuAD file: its paragraphs are the corpus, its questions the load.

    1. Indexing: after indexing a few documents into a throwaway index (model loading, imports),
       the whole corpus is indexed into a fresh temporary index with
       :func:`qa.indexing.index_documents`, then the same passage texts are encoded with a bare
       ``SentenceTransformer.encode`` (same batch size, normalised): the ceiling for indexing.
    2. Questions: ``questions`` of them, sampled with ``seed`` evenly over articles. After
       :data:`WARMUP_QUESTIONS` untimed ones, each is answered end to end with ``Assistant.ask``,
       then again step by step: query embedding, search (given the vector), reader.
    3. Quality: EM and F1 of the end-to-end answers at ``settings.min_score`` and recall@5 of the
       search, scored by :func:`qa.evaluation.score_question`.
    4. Start-up (unless ``cold_start`` is False): ``cold_runs`` fresh ``python -m qa ask`` processes
       on the same index after one untimed run (median wall time, largest peak RSS), and
       ``python -m qa --help`` as often.

    Args:
        squad_path: a SQuAD v1.1/v2.0 JSON file.
        settings: models, retriever and ``passages_k`` (the top-k); index_dir is ignored (see ``index_uri``).
        questions: how many questions to time (fewer if the file has fewer).
        seed: the sampling seed.
        cold_start: measure the fresh `qa ask` and `qa --help` processes.
        cold_runs: timed runs of each process.
        progress: called as ``progress(stage, done, total)``.
        index_uri: build the benchmark's index in Milvus here (a Milvus Lite ``*.db`` file or a server URI)
            instead of a temporary folder; it must hold no index yet, and the one built is left there.

    Returns:
        The BenchReport.

    Raises:
        QAError: the file is not SQuAD, a model cannot be loaded, a `qa` process fails, or ``index_uri``
            already holds an index.
    """
    from qa.evaluation import EvalSummary, recall_at_k, score_question, squad_corpus
    from qa.factory import make_embedder
    from qa.indexing import index_documents
    from qa.pipeline import Assistant
    from qa.store import is_milvus_location, open_index, peek_index_manifest

    if questions < 1:
        raise ValueError(f"questions must be at least 1, got {questions}")
    if cold_runs < 1:
        raise ValueError(f"cold_runs must be at least 1, got {cold_runs}")
    if index_uri is not None:
        if not is_milvus_location(index_uri):
            raise QAError(f"{index_uri!r} names no Milvus index (a *.db file or a server URI)")
        if peek_index_manifest(index_uri) is not None:
            raise QAError(f"{index_uri} already holds an index; the benchmark builds its own: give a new location")
    t_start = time.perf_counter()
    settings = settings or Settings.from_env()
    report = progress or (lambda stage, done, total: None)
    documents, examples = squad_corpus(squad_path)
    # The timed questions are sample_questions(examples, questions, seed); the warm-up ones come
    # next in the same draw, or are the first timed ones when the file has no more.
    drawn = sample_questions(examples, questions + WARMUP_QUESTIONS, seed)
    sample = drawn[:questions]
    warmup = drawn[questions:] or sample[:WARMUP_QUESTIONS]
    top_k = settings.passages_k
    depth = max(top_k, RECALL_K)

    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        location = index_uri or str(Path(tmp) / "index")
        embedder = make_embedder(settings)
        index_documents(documents[:WARMUP_DOCUMENTS], Path(tmp) / "warmup", settings=settings, embedder=embedder)

        t0 = time.perf_counter()
        indexed = index_documents(
            documents, location, settings=settings, embedder=embedder,
            progress=lambda stage, done, total: report(f"index: {stage}", done, total),
        )
        index_s = time.perf_counter() - t0
        with open_index(location) as store:
            texts = [c.text for d in documents for c in store.chunks_of(d.doc_id)]
        report("raw encode", 0, len(texts))
        t0 = time.perf_counter()
        embedder.model.encode(
            texts, batch_size=embedder.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        encode_s = time.perf_counter() - t0
        report("raw encode", len(texts), len(texts))
        machine = machine_info(settings)

        assistant = Assistant.open(location, settings)
        try:
            s = assistant.settings
            retriever = assistant.retriever
            for ex in warmup:
                assistant.ask(ex.question, top_k=top_k, min_score=0.0)
                retriever.retrieve_vector(
                    ex.question, None if s.retriever == "bm25" else retriever.embedder.encode_query(ex.question), depth
                )
            embed_ms, search_ms, read_ms, e2e_ms, rows, ranks = [], [], [], [], [], []
            for i, ex in enumerate(sample):
                t0 = time.perf_counter()
                result = assistant.ask(ex.question, top_k=top_k, min_score=0.0)
                t1 = time.perf_counter()
                # bm25 embeds no question (so neither does Assistant.ask): its embedding time is 0
                vec = None if s.retriever == "bm25" else retriever.embedder.encode_query(ex.question)
                t2 = time.perf_counter() if vec is not None else t1
                hits = retriever.retrieve_vector(ex.question, vec, depth)
                t3 = time.perf_counter()
                assistant.read(ex.question, hits[:top_k], min_score=0.0)
                t4 = time.perf_counter()
                e2e_ms.append((t1 - t0) * 1000)
                embed_ms.append((t2 - t1) * 1000)
                search_ms.append((t3 - t2) * 1000)
                read_ms.append((t4 - t3) * 1000)
                row = score_question(ex, result, given=result.hits, retrieved=hits, threshold=s.min_score,
                                     latency_ms=e2e_ms[-1])
                rows.append(row)
                if row.retrieval_judged:
                    ranks.append(row.rank)
                report("questions", i + 1, len(sample))
            reader_runtime = getattr(assistant.reader, "active_runtime", None)
            query_encoder = type(retriever.embedder).__name__
        finally:
            assistant.close()
        quality = EvalSummary(mode="pipeline", threshold=s.min_score, retriever=s.retriever, passages_k=top_k,
                              gold_path=str(squad_path), gold_kind="squad", rows=tuple(rows))

        cold_runs_s: list[float] = []
        help_runs_s: list[float] = []
        peak_rss: float | None = None
        if cold_start:
            where = ["--index-uri", location] if index_uri else ["--index-dir", location]
            argv = [sys.executable, "-m", "qa", "ask", sample[0].question, *where,
                    "--top-k", str(top_k), "--retriever", s.retriever]
            if settings.reader is not None:
                argv += ["--reader", settings.reader]
            if settings.reader_runtime != Settings().reader_runtime:
                argv += ["--runtime", settings.reader_runtime]
            if settings.calibration != Settings().calibration:
                argv += ["--calibration", settings.calibration]
            total = 2 * cold_runs + 1
            report("start-up", 0, total)
            _time_process(argv)  # untimed: builds any missing ONNX cache, warms the file cache
            report("start-up", 1, total)
            rss: list[float] = []
            for i in range(cold_runs):
                wall, mb = _time_process(argv)
                cold_runs_s.append(wall)
                if mb is not None:
                    rss.append(mb)
                report("start-up", 2 + i, total)
            peak_rss = max(rss) if rss else None
            for i in range(cold_runs):
                help_runs_s.append(_time_process([sys.executable, "-m", "qa", "--help"])[0])
                report("start-up", 2 + cold_runs + i, total)

    return BenchReport(
        squad_path=str(squad_path),
        machine=machine,
        settings={
            "retriever": s.retriever,
            "top_k": top_k,
            "reader": s.reader_path,
            "reader_runtime": reader_runtime,
            "embedder": s.embedder_name,
            "query_encoder": query_encoder,
            "min_score": s.min_score,
            "calibration": s.calibration,
            "seed": seed,
            "store": f"Milvus ({index_uri})" if index_uri else "local (SQLite + FAISS)",
        },
        documents=len(documents),
        passages=indexed.passages,
        index_s=index_s,
        encode_s=encode_s,
        embed_ms=tuple(embed_ms),
        search_ms=tuple(search_ms),
        read_ms=tuple(read_ms),
        e2e_ms=tuple(e2e_ms),
        exact_match=quality.exact_match or 0.0,
        f1=quality.f1 or 0.0,
        recall_at_5=recall_at_k(ranks, RECALL_K),
        cold_start_runs=tuple(cold_runs_s),
        peak_rss_mb=peak_rss,
        help_runs=tuple(help_runs_s),
        warmup_questions=len(warmup),
        seconds=time.perf_counter() - t_start,
    )


# --------------------------------------------------------------------------- rendering


def _f(x: float | None, fmt: str, unit: str = "") -> str:
    return "skipped" if x is None else f"{x:{fmt}}{unit}"


def render_markdown(report: BenchReport) -> str:
    """The report as Markdown: a setup line, a results table and the library versions."""
    r = report
    lat = r.latency()
    ratio = r.passages_per_s / r.encode_passages_per_s if r.encode_passages_per_s else None
    st = r.settings
    m = r.machine
    cold_n = len(r.cold_start_runs)
    rows = [
        ("indexing (`index_documents`: chunk + embed + store)",
         f"{r.passages_per_s:.1f} passages/s ({r.passages:,} passages from {r.documents:,} paragraphs "
         f"in {r.index_s:.1f} s)"),
        ("raw `SentenceTransformer.encode`, same passages", f"{r.encode_passages_per_s:.1f} passages/s"),
        ("indexing / raw encode", _f(None if ratio is None else 100 * ratio, ".0f", "%")),
        ("query embedding p50 / p95", "none (bm25 embeds no question)" if st["retriever"] == "bm25"
         else f"{lat['embed_p50']:.1f} / {lat['embed_p95']:.1f} ms"),
        ("search p50 / p95", f"{lat['search_p50']:.1f} / {lat['search_p95']:.1f} ms"),
        ("reader p50 / p95", f"{lat['read_p50']:.1f} / {lat['read_p95']:.1f} ms"),
        ("end to end (`Assistant.ask`) p50 / p95", f"{lat['p50']:.1f} / {lat['p95']:.1f} ms"),
        (f"cold start `qa ask` (median of {cold_n})" if cold_n else "cold start `qa ask`",
         _f(r.cold_start_s, ".2f", " s")),
        ("peak RSS of `qa ask`", _f(r.peak_rss_mb, ".0f", " MB")),
        (f"`qa --help` (median of {len(r.help_runs)})" if r.help_runs else "`qa --help`", _f(r.help_s, ".2f", " s")),
        ("exact match / F1", f"{r.exact_match:.2f} / {r.f1:.2f}"),
        ("recall@5", _f(r.recall_at_5, ".2f", "%")),
    ]
    torch_threads = "not imported" if m.torch_threads is None else str(m.torch_threads)
    onnx_threads = "default" if m.onnx_threads is None else str(m.onnx_threads)
    lines = [
        f"**Machine:** {m.describe()}; torch threads {torch_threads}, onnxruntime threads {onnx_threads}",
        "",
        f"**Run:** `{Path(r.squad_path).name}`, {r.questions} questions (seed {st['seed']}, spread over articles, "
        f"after {r.warmup_questions} untimed warm-up questions), top-k {st['top_k']}, {st['retriever']} retriever, "
        f"reader `{Path(str(st['reader'])).name}` ({st['reader_runtime']}), query encoder {st['query_encoder']}, "
        f"score {st['calibration']} calibration, min score {st['min_score']}, index store {st['store']}; "
        f"{r.seconds:.0f} s in all",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "**Versions:** " + ", ".join(f"{k} {v}" for k, v in m.versions.items() if v is not None),
    ]
    return "\n".join(lines) + "\n"


def write_output(report: BenchReport, path: str | Path, *, as_json: bool = False) -> Path:
    """Write the report: JSON when ``as_json`` or the name ends in .json, else Markdown."""
    p = Path(path)
    text = (
        json.dumps(report.to_dict(), indent=2) + "\n"
        if as_json or p.suffix.lower() == ".json"
        else render_markdown(report)
    )
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise QAError(f"cannot write {str(p)!r}: {exc.strerror or exc}") from None
    return p
