"""BEIR benchmarks: load a BEIR folder, index its corpus once, and score each retriever by nDCG@10 and recall@100."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qa.config import RETRIEVERS, Settings
from qa.errors import GoldFileError, QAError
from qa.metrics import percentile
from qa.schema import Document, Hit

__all__ = [
    "BeirDataset",
    "BeirQueryScore",
    "BeirResult",
    "BeirRun",
    "beir_document",
    "beir_index_dir",
    "evaluate_beir",
    "index_beir",
    "load_beir",
    "ndcg_at_k",
    "rank_documents",
    "recall_at_k",
    "run_beir",
]

log = logging.getLogger(__name__)

#: nDCG cut-off and recall depth of the BEIR paper (Thakur et al. 2021).
NDCG_K = 10
RECALL_K = 100
#: Separator between a BEIR title and its text in the indexed document.
TITLE_SEPARATOR = "\n\n"

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """A BEIR folder: the corpus as documents, and the queries that have relevance judgements.

    ``qrels[qid][doc_id]`` is the graded relevance (> 0 relevant). ``queries`` holds only the
    queries of ``qrels`` (in queries.jsonl order); ``n_queries_file`` counts every line of queries.jsonl.
    """

    path: str
    split: str
    documents: tuple[Document, ...] = field(repr=False)
    queries: dict[str, str] = field(repr=False)
    qrels: dict[str, dict[str, int]] = field(repr=False)
    corpus_sha256: str
    n_queries_file: int


@dataclass(frozen=True, slots=True)
class BeirQueryScore:
    """One query under one retriever: its metrics, its time, and the documents ranked (best first)."""

    qid: str
    ndcg_at_10: float
    recall_at_100: float
    latency_ms: float
    ranking: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class BeirResult:
    """One retriever over every judged query: the mean metrics (0-1) and the latency percentiles."""

    retriever: str
    n_queries: int
    ndcg_at_10: float
    recall_at_100: float
    latency_p50_ms: float
    latency_p95_ms: float
    queries: tuple[BeirQueryScore, ...] = field(repr=False)

    def to_dict(self, *, queries: bool = False) -> dict[str, object]:
        """Plain JSON; ``queries=True`` adds each query's metrics and its top 10 documents."""
        d: dict[str, object] = {
            "retriever": self.retriever,
            "n_queries": self.n_queries,
            "ndcg_at_10": round(self.ndcg_at_10, 4),
            "recall_at_100": round(self.recall_at_100, 4),
            "latency_ms": {"p50": round(self.latency_p50_ms, 2), "p95": round(self.latency_p95_ms, 2)},
        }
        if queries:
            d["queries"] = [
                {"id": q.qid, "ndcg_at_10": round(q.ndcg_at_10, 4), "recall_at_100": round(q.recall_at_100, 4),
                 "top10": list(q.ranking[:NDCG_K])}
                for q in self.queries
            ]
        return d


@dataclass(frozen=True, slots=True)
class BeirRun:
    """A whole benchmark run: the data set, the index it ran on, and one result per retriever."""

    dataset: str
    split: str
    n_documents: int
    n_queries: int  # judged queries that were run
    n_queries_file: int
    index_dir: str
    n_passages: int
    embedded_passages: int  # 0 when the cached index was reused
    index_seconds: float
    results: tuple[BeirResult, ...]

    def to_dict(self, *, queries: bool = False) -> dict[str, object]:
        """Plain JSON of the run (``queries=True`` adds per-query rows)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "n_documents": self.n_documents,
            "n_queries": self.n_queries,
            "n_queries_file": self.n_queries_file,
            "index_dir": self.index_dir,
            "n_passages": self.n_passages,
            "embedded_passages": self.embedded_passages,
            "index_seconds": round(self.index_seconds, 1),
            "results": [r.to_dict(queries=queries) for r in self.results],
        }


# --------------------------------------------------------------------------- loading


def beir_document(doc_id: str, title: str, text: str, source: str = "") -> Document:
    """A BEIR corpus entry as a Document: ``title + "\\n\\n" + text`` (either alone when the other is empty).

    The title is part of the document's text, so BM25 and the embedder see it, and every chunk
    offset indexes this exact string.
    """
    body = TITLE_SEPARATOR.join(part for part in (title, text) if part.strip())
    return Document(doc_id, body, title=title, source=source)


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise GoldFileError(str(path), None, "file not found (a BEIR folder holds corpus.jsonl and queries.jsonl)")
    rows: list[tuple[int, dict]] = []
    with path.open(encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise GoldFileError(str(path), line_no, f"not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("_id"), (str, int)):
                raise GoldFileError(str(path), line_no, "expected a JSON object with an '_id'")
            rows.append((line_no, obj))
    return rows


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.rstrip("\n\r").split("\t")
            if not line.strip() or (line_no == 1 and parts[0] == "query-id"):
                continue
            if len(parts) != 3:
                raise GoldFileError(str(path), line_no, f"expected 3 tab-separated fields, got {len(parts)}")
            try:
                grade = int(parts[2])
            except ValueError:
                raise GoldFileError(str(path), line_no, f"score {parts[2]!r} is not an integer") from None
            qrels.setdefault(parts[0], {})[parts[1]] = grade
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR folder: ``corpus.jsonl`` (_id, title, text), ``queries.jsonl`` (_id, text), ``qrels/SPLIT.tsv``.

    Args:
        folder: the data set folder.
        split: which qrels file to judge with (``test``, ``dev``, ``train``).

    Returns:
        The dataset; only queries that have qrels are kept (as BEIR does).

    Raises:
        GoldFileError: a missing or malformed file (with its line), a duplicate id, or no judged query.
    """
    root = Path(folder)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise GoldFileError(str(qrels_path), None, f"no qrels for split {split!r} (found: {', '.join(have) or 'none'})")
    corpus_path = root / "corpus.jsonl"
    documents: list[Document] = []
    seen: set[str] = set()
    for line_no, obj in _read_jsonl(corpus_path):
        doc_id = str(obj["_id"])
        if doc_id in seen:
            raise GoldFileError(str(corpus_path), line_no, f"duplicate _id {doc_id!r}")
        seen.add(doc_id)
        doc = beir_document(doc_id, str(obj.get("title") or ""), str(obj.get("text") or ""), str(corpus_path))
        if doc.text.strip():
            documents.append(doc)
        else:
            log.warning("%s:%d: document %r has no title or text; skipped", corpus_path, line_no, doc_id)
    qrels = _read_qrels(qrels_path)
    all_queries = {str(obj["_id"]): str(obj.get("text") or "") for _, obj in _read_jsonl(root / "queries.jsonl")}
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels and text.strip()}
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        log.warning("%d judged queries are not in queries.jsonl (or are empty); skipped", len(missing))
    if not queries:
        raise GoldFileError(str(qrels_path), None, "no judged query is in queries.jsonl")
    return BeirDataset(
        path=str(root),
        split=split,
        documents=tuple(documents),
        queries=queries,
        qrels={qid: qrels[qid] for qid in queries},
        corpus_sha256=hashlib.sha256(corpus_path.read_bytes()).hexdigest(),
        n_queries_file=len(all_queries),
    )


# --------------------------------------------------------------------------- metrics


def ndcg_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int = NDCG_K) -> float:
    """nDCG@k as trec_eval / pytrec_eval ``ndcg_cut`` compute it (what BEIR reports).

    Gain is the graded relevance itself (grades <= 0 gain nothing), discounted by ``log2(rank + 1)``
    for 1-based ranks; the ideal ranking orders every judged document by grade.

    Args:
        ranking: document ids, best first (duplicates count once, at their first rank).
        relevance: ``{doc_id: grade}`` for the query.
        k: the cut-off.

    Returns:
        A value in [0, 1]; 0 when the query has no relevant document.
    """
    ideal = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        return 0.0
    dcg = sum(max(relevance.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(_unique(ranking)[:k]))
    return dcg / idcg


def recall_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int = RECALL_K) -> float:
    """Share of the relevant documents (grade > 0) found in the top ``k`` of ``ranking``; 0 if none are relevant."""
    relevant = {d for d, g in relevance.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_unique(ranking)[:k])) / len(relevant)


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def rank_documents(hits: Sequence[Hit], k: int) -> list[str]:
    """Document ids ranked by their best chunk: each document takes the rank of its first hit.

    Args:
        hits: chunk hits, best first.
        k: how many documents to return.

    Returns:
        At most ``k`` distinct document ids, best first.
    """
    return _unique([h.chunk.doc_id for h in hits])[:k]


# --------------------------------------------------------------------------- indexing and running


def beir_index_dir(dataset: BeirDataset, settings: Settings, cache_root: str | Path | None = None) -> Path:
    """The cache folder of a data set's index, keyed by the corpus file's hash and the index settings.

    ``cache_root`` defaults to ``beir-index/`` beside the model cache (``~/.cache/qa``).
    """
    from qa.config import model_cache_dir
    from qa.store import FORMAT_VERSION

    root = Path(cache_root) if cache_root is not None else model_cache_dir().parent / "beir-index"
    key = f"{dataset.corpus_sha256}|{settings.embedder_name}|{settings.chunk_size}|{settings.chunk_overlap}|"
    key += f"format{FORMAT_VERSION}"
    name = Path(dataset.path).name or "beir"
    return root / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def index_beir(
    dataset: BeirDataset,
    settings: Settings,
    *,
    cache_root: str | Path | None = None,
    progress: Progress | None = None,
    embedder=None,
):
    """Index the corpus into its cache folder (:func:`beir_index_dir`); a second call embeds nothing.

    Returns:
        The IndexReport of :func:`qa.indexing.index_documents`.
    """
    from qa.indexing import index_documents

    index_dir = beir_index_dir(dataset, settings, cache_root)
    return index_documents(dataset.documents, index_dir, settings=settings, progress=progress, embedder=embedder)


def evaluate_beir(
    dataset: BeirDataset,
    index_dir: str | Path,
    *,
    settings: Settings,
    retrievers: Sequence[str] = RETRIEVERS,
    embedder=None,
    progress: Progress | None = None,
    limit: int | None = None,
    ignore_identical_ids: bool = True,
) -> list[BeirResult]:
    """Run every judged query through each retriever and score the document ranking.

    Each query retrieves chunks until the best ``RECALL_K`` (100) distinct documents are known (or the
    index is exhausted); a document ranks by its best chunk (:func:`rank_documents`).

    Args:
        dataset: from :func:`load_beir`.
        index_dir: an index of ``dataset.documents`` (see :func:`index_beir`).
        settings: fusion depth and RRF constant for hybrid; the query encoder.
        retrievers: names from ``qa.config.RETRIEVERS``.
        embedder: the query encoder to use instead of the one the settings name (tests).
        progress: called as ``progress(retriever, done, total)`` after each query.
        limit: only the first ``limit`` judged queries.
        ignore_identical_ids: drop a retrieved document whose id equals the query id, as BEIR's
            ``EvaluateRetrieval.evaluate`` does by default.

    Returns:
        One BeirResult per retriever, in the order given; metrics are means over the queries, 0-1.
    """
    from qa.factory import make_query_encoder
    from qa.retriever import Retriever
    from qa.store import PassageStore

    for name in retrievers:
        if name not in RETRIEVERS:
            raise QAError(f"retriever must be one of {', '.join(RETRIEVERS)}, got {name!r}")
    qids = list(dataset.queries)[: limit if limit is not None else None]
    results: list[BeirResult] = []
    with PassageStore.open(index_dir) as store:
        encoder = embedder if embedder is not None else make_query_encoder(settings)
        store.check_embedder(encoder.model_name, encoder.dim)
        retriever = Retriever(encoder, store, fusion_depth=settings.fusion_depth, rrf_k=settings.rrf_k)
        n_chunks = store.manifest.n_chunks
        for mode in retrievers:
            scores: list[BeirQueryScore] = []
            for i, qid in enumerate(qids):
                t0 = time.perf_counter()
                ranking = _retrieve_documents(retriever, dataset.queries[qid], mode, n_chunks)
                latency_ms = (time.perf_counter() - t0) * 1000.0
                if ignore_identical_ids:
                    ranking = [d for d in ranking if d != qid]
                rel = dataset.qrels[qid]
                ranking = ranking[:RECALL_K]
                scores.append(
                    BeirQueryScore(qid, ndcg_at_k(ranking, rel), recall_at_k(ranking, rel), latency_ms, tuple(ranking))
                )
                if progress is not None:
                    progress(mode, i + 1, len(qids))
            results.append(_summarise(mode, scores))
    return results


def _retrieve_documents(retriever, question: str, mode: str, n_chunks: int) -> list[str]:
    """The best RECALL_K + 1 documents (one spare for ignore_identical_ids), best chunk first."""
    want = RECALL_K + 1
    depth = 3 * want
    while True:
        hits = retriever.retrieve(question, depth, mode=mode)
        docs = rank_documents(hits, want)
        if len(docs) >= want or len(hits) < depth or depth >= n_chunks:
            return docs
        depth *= 2


def _summarise(mode: str, scores: Sequence[BeirQueryScore]) -> BeirResult:
    n = len(scores)
    return BeirResult(
        retriever=mode,
        n_queries=n,
        ndcg_at_10=sum(s.ndcg_at_10 for s in scores) / n if n else 0.0,
        recall_at_100=sum(s.recall_at_100 for s in scores) / n if n else 0.0,
        latency_p50_ms=percentile([s.latency_ms for s in scores], 0.5) or 0.0,
        latency_p95_ms=percentile([s.latency_ms for s in scores], 0.95) or 0.0,
        queries=tuple(scores),
    )


def run_beir(
    folder: str | Path,
    *,
    split: str = "test",
    settings: Settings | None = None,
    retrievers: Sequence[str] = RETRIEVERS,
    cache_root: str | Path | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    embedder=None,
) -> BeirRun:
    """Load a BEIR folder, index it once (cached), and evaluate each retriever.

    Args:
        folder: the BEIR data set folder.
        split: the qrels split.
        settings: chunking, embedder and fusion settings (default: ``Settings.from_env()``).
        retrievers: which retrievers to score.
        cache_root: where cached indexes live (see :func:`beir_index_dir`).
        progress: ``progress(stage, done, total)`` for indexing stages and each retriever.
        limit: only the first ``limit`` judged queries.
        embedder: an Embedder for both passages and queries instead of the configured one (tests).

    Returns:
        The BeirRun.
    """
    settings = settings or Settings.from_env()
    dataset = load_beir(folder, split)
    report = index_beir(dataset, settings, cache_root=cache_root, progress=progress, embedder=embedder)
    results = evaluate_beir(
        dataset, report.index_dir, settings=settings, retrievers=retrievers, embedder=embedder,
        progress=progress, limit=limit,
    )
    return BeirRun(
        dataset=Path(dataset.path).name,
        split=split,
        n_documents=len(dataset.documents),
        n_queries=results[0].n_queries if results else 0,
        n_queries_file=dataset.n_queries_file,
        index_dir=report.index_dir,
        n_passages=report.passages,
        embedded_passages=report.embedded_passages,
        index_seconds=report.seconds,
        results=tuple(results),
    )
