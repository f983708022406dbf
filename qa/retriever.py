"""Retriever: dense, BM25 or hybrid (reciprocal rank fusion) search over a PassageStore."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from qa.config import RETRIEVERS, Settings
from qa.embedding import Embedder
from qa.errors import QuestionError
from qa.schema import Hit
from qa.store import PassageStore, ScoredChunk

log = logging.getLogger(__name__)
_DEFAULTS = Settings()  # the one home of defaults; constructors take theirs from it


def reciprocal_rank_fusion(
    ranked_lists: Sequence[Sequence[int]], k: int, rrf_k: int
) -> list[tuple[int, float]]:
    """Fuse ranked lists of ids: each id scores the sum of 1 / (rrf_k + r) over the lists it is in.

    r is the id's 1-based rank in a list (as in Cormack et al.); an id repeated within one list
    counts at its first rank. Ties are broken
    by the best rank the id has in any list, then by the id, so the result never depends on
    dict order or float rounding (sums are compared exactly, as integer multiples of 1 / lcm of
    the denominators: the same order as fractions at a fraction of their cost).

    Args:
        ranked_lists: ids, best first, one list per retriever.
        k: how many fused ids to return.
        rrf_k: the smoothing constant (60 in Cormack et al. 2009).

    Returns:
        ``(id, score)`` pairs, best first, at most ``k``.
    """
    if k < 0:
        raise ValueError(f"k must not be negative, got {k}")
    if rrf_k < 0:
        raise ValueError(f"rrf_k must not be negative, got {rrf_k}")
    longest = max((len(r) for r in ranked_lists), default=0)
    scale = math.lcm(*range(rrf_k + 1, rrf_k + longest + 1)) if longest else 1
    exact: dict[int, int] = {}  # sum of scale / (rrf_k + r), an integer because scale is a common multiple
    best_rank: dict[int, int] = {}
    for ranking in ranked_lists:
        seen: set[int] = set()
        for rank, item in enumerate(ranking):
            if item in seen:
                continue
            seen.add(item)
            exact[item] = exact.get(item, 0) + scale // (rrf_k + rank + 1)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    order = sorted(exact, key=lambda i: (-exact[i], best_rank[i], i))
    return [(i, exact[i] / scale) for i in order[:k]]


class Retriever:
    """Finds the passages most likely to answer a question."""

    def __init__(
        self,
        embedder: Embedder,
        store: PassageStore,
        *,
        mode: str = _DEFAULTS.retriever,
        fusion_depth: int = _DEFAULTS.fusion_depth,
        rrf_k: int = _DEFAULTS.rrf_k,
    ) -> None:
        """Args: mode is dense, bm25 or hybrid; fusion_depth and rrf_k tune hybrid fusion."""
        _check_mode(mode)
        if fusion_depth < 1:
            raise ValueError(f"fusion_depth must be at least 1, got {fusion_depth}")
        if rrf_k < 0:
            raise ValueError(f"rrf_k must not be negative, got {rrf_k}")
        self.embedder = embedder
        self.store = store
        self.mode = mode
        self.fusion_depth = fusion_depth
        self.rrf_k = rrf_k

    def retrieve(self, question: str, k: int, *, mode: str | None = None) -> list[Hit]:
        """The ``k`` best passages for ``question``, best first.

        Args:
            question: free text; any characters are accepted.
            k: how many hits to return.
            mode: dense, bm25 or hybrid; None uses the retriever's mode.

        Returns:
            Hits with 0-based ranks. ``Hit.score`` is the cosine (dense), the negated FTS5
            bm25 (bm25) or the reciprocal-rank-fusion score (hybrid); higher is better.
        """
        mode = self._check(question, k, mode)
        if k == 0:
            return []
        query_vec = None if mode == "bm25" else self.embedder.encode_query(question)  # once, whatever the mode
        return self.retrieve_vector(question, query_vec, k, mode=mode)

    def retrieve_vector(
        self, question: str, query_vec: np.ndarray | None, k: int, *, mode: str | None = None
    ) -> list[Hit]:
        """:meth:`retrieve` with the question's vector already computed (so it can be timed apart).

        Args:
            question: the question (BM25 and hybrid search its words).
            query_vec: ``embedder.encode_query(question)``; may be None in bm25 mode.
            k: how many hits to return.
            mode: dense, bm25 or hybrid; None uses the retriever's mode.

        Returns:
            The same hits as :meth:`retrieve`.
        """
        mode = self._check(question, k, mode)
        if k == 0:
            return []
        if mode == "bm25":
            return _hits(self.store.search_bm25(question, k), dense=False)
        if query_vec is None:
            raise ValueError(f"{mode} retrieval needs the query vector")
        if mode == "dense":
            return _hits(self.store.search_dense(query_vec, k), dense=True)
        depth = max(self.fusion_depth, k)
        dense = self.store.search_dense(query_vec, depth)
        bm25 = self.store.search_bm25(question, depth)
        found = {c.rowid: c for c in bm25} | {c.rowid: c for c in dense}
        fused = reciprocal_rank_fusion([[c.rowid for c in dense], [c.rowid for c in bm25]], k, self.rrf_k)
        log.debug("hybrid: %d dense + %d bm25 candidates -> %d hits", len(dense), len(bm25), len(fused))
        cosine = {c.rowid: c.score for c in dense}
        floor = dense[-1].score if dense else None  # a chunk only BM25 found lies below every dense candidate
        return [
            Hit(found[rowid].chunk, score, rank, found[rowid].source, cosine.get(rowid, floor))
            for rank, (rowid, score) in enumerate(fused)
        ]

    def _check(self, question: str, k: int, mode: str | None) -> str:
        """The mode to use, after validating the arguments."""
        mode = self.mode if mode is None else mode
        _check_mode(mode)
        if k < 0:
            raise ValueError(f"k must not be negative, got {k}")
        if not question.strip():
            raise QuestionError("the question is empty")
        return mode


def _hits(results: Sequence[ScoredChunk], *, dense: bool) -> list[Hit]:
    return [Hit(r.chunk, r.score, rank, r.source, r.score if dense else None) for rank, r in enumerate(results)]


def _check_mode(mode: str) -> None:
    if mode not in RETRIEVERS:
        raise ValueError(f"retriever mode must be one of {', '.join(RETRIEVERS)}, got {mode!r}")
