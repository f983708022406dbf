"""Retriever: dense, BM25 and hybrid retrieval, and reciprocal rank fusion."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.errors import QuestionError
from qa.retriever import Retriever, reciprocal_rank_fusion
from qa.schema import Chunk, Document
from qa.store import PassageStore

DIM = 64


class HashEmbedder:
    """Deterministic fake embedder: normalised hashed bag of words; counts query encodings."""

    model_name = "fake-hash-64"
    dim = DIM

    def __init__(self) -> None:
        self.queries = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(DIM, dtype=np.float32)
        for tok in re.findall(r"\w+", text.lower()):
            v[int(hashlib.md5(tok.encode()).hexdigest(), 16) % DIM] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode_passages(self, texts, progress=None) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        self.queries += 1
        return self._vec(text)

    def count_tokens(self, texts) -> list[int]:
        return [len(t.split()) for t in texts]


# One chunk per document keeps ranks easy to reason about.
DOCS = {
    "isis": "Analysts say ISIS-K claimed the attack near the airport; officials counted casualties "
    "and examined security lapses, border crossings, funding networks and recruitment patterns.",
    "csis": "A CSIS report from 2019 reviewed maritime shipping lanes, port congestion and naval budgets.",
    "what1": "What is the weather? What is it like today? It is what it is, the forecast says.",
    "what2": "What is a group? What is an attack? It is what people say it is, near and far.",
    "what3": "What is responsible? Who is responsible for what? It is the group that is responsible.",
    "paris": "Paris is the capital of France. The Eiffel Tower was finished in 1889.",
    "tokyo": "Tokyo is the capital of Japan. It hosted the Summer Olympics in 1964 and 2021.",
}


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def store(tmp_path: Path, embedder: HashEmbedder):
    s = PassageStore.create(
        tmp_path / "index", embedder=embedder.model_name, dim=DIM, chunk_size=64, chunk_overlap=0
    )
    upserts = []
    for doc_id, text in DOCS.items():
        doc = Document(doc_id, text, source=f"seeds/{doc_id}.md")
        chunks = [Chunk(f"{doc_id}#0", doc_id, 0, len(text), text)]
        upserts.append((doc, chunks, embedder.encode_passages([text])))
    s.apply(upserts, [])
    s.close()
    reader = PassageStore.open(tmp_path / "index")
    yield reader
    reader.close()


def ranks(hits) -> list[str]:
    return [h.chunk.doc_id for h in hits]


# ---- fusion ----------------------------------------------------------------------------------


def test_rrf_scores_and_order():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=10, rrf_k=60)
    assert [i for i, _ in fused] == [1, 3, 2]
    assert dict(fused)[1] == pytest.approx(1 / 61 + 1 / 62)
    assert dict(fused)[3] == pytest.approx(1 / 63 + 1 / 61)
    assert dict(fused)[2] == pytest.approx(1 / 62)
    assert reciprocal_rank_fusion([[1, 2, 3]], k=2, rrf_k=60) == [(1, 1 / 61), (2, 1 / 62)]
    assert reciprocal_rank_fusion([], k=5, rrf_k=60) == []
    assert reciprocal_rank_fusion([[1, 2]], k=0, rrf_k=60) == []


def test_rrf_ties_break_by_best_rank_then_id():
    # 7 and 5 tie exactly (each rank 0 and rank 1); 9 and 4 tie at one rank-0 hit each.
    assert [i for i, _ in reciprocal_rank_fusion([[7, 5], [5, 7]], k=5, rrf_k=60)] == [5, 7]
    assert [i for i, _ in reciprocal_rank_fusion([[9], [4]], k=5, rrf_k=60)] == [4, 9]
    # Equal sums (1/1 == 1/2 + 1/2 with rrf_k=0), different best ranks: the one ranked higher
    # somewhere wins, even against a smaller id.
    fused = reciprocal_rank_fusion([[9, 1], [8, 1]], k=5, rrf_k=0)
    assert fused == [(8, 1.0), (9, 1.0), (1, 1.0)]


def test_rrf_is_deterministic_and_independent_of_list_order():
    lists = [[3, 1, 4, 5, 9], [2, 6, 5, 3, 5], [8, 9, 7, 9, 3, 2]]
    expected = reciprocal_rank_fusion(lists, k=10, rrf_k=60)
    for perm in itertools.permutations(lists):
        assert reciprocal_rank_fusion(list(perm), k=10, rrf_k=60) == expected
    # duplicates within one list count once, at their first rank
    assert dict(reciprocal_rank_fusion([[5, 5, 5]], k=3, rrf_k=60)) == {5: pytest.approx(1 / 61)}


def test_rrf_exact_ties_survive_float_rounding():
    # 1/61 + 1/62 + 1/63 summed in different orders can differ in the last bit as floats;
    # fusion compares exact sums, so the tie goes to the smaller id every time.
    lists = [[10, 20, 30], [20, 30, 10], [30, 10, 20]]
    fused = reciprocal_rank_fusion(lists, k=3, rrf_k=60)
    assert [i for i, _ in fused] == [10, 20, 30]
    assert fused[0][1] == fused[1][1] == fused[2][1]


def test_rrf_rejects_bad_arguments():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], k=-1, rrf_k=60)
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], k=1, rrf_k=-1)


# ---- retrieval -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "doc_id"),
    [("What is ISIS-K?", "isis"), ("What is CSIS?", "csis"), ("What is 2019?", "csis")],
)
def test_bm25_finds_a_rare_exact_token_that_dense_ranks_low(store, embedder, question, doc_id):
    r = Retriever(embedder, store)
    dense = ranks(r.retrieve(question, len(DOCS), mode="dense"))
    assert dense.index(doc_id) >= 2  # the fake embedder prefers the "what is" distractors
    assert ranks(r.retrieve(question, 3, mode="bm25"))[0] == doc_id
    assert doc_id in ranks(r.retrieve(question, 3, mode="hybrid"))  # rescued from dense rank >= 2


def test_hits_carry_scores_ranks_and_sources(store, embedder):
    r = Retriever(embedder, store, mode="dense")
    q = "When was the Eiffel Tower finished?"
    dense = r.retrieve(q, 3)
    assert [h.rank for h in dense] == [0, 1, 2]
    assert dense[0].chunk.doc_id == "paris" and dense[0].source == "seeds/paris.md"
    assert -1.0 <= dense[-1].score <= dense[0].score <= 1.0
    bm25 = r.retrieve(q, 3, mode="bm25")
    assert bm25[0].chunk.doc_id == "paris" and bm25[0].score > 0
    hybrid = r.retrieve(q, 3, mode="hybrid")
    assert hybrid[0].chunk.doc_id == "paris"
    assert hybrid[0].score == pytest.approx(2 / (r.rrf_k + 1))  # first in both lists
    assert r.rrf_k == Settings().rrf_k and r.fusion_depth == Settings().fusion_depth  # one home of defaults
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    assert r.retrieve(q, 0) == []
    assert len(r.retrieve(q, 100, mode="hybrid")) == len(DOCS)


def test_hybrid_is_deterministic(store, embedder):
    r = Retriever(embedder, store, fusion_depth=4)
    first = r.retrieve("capital city summer", 5)
    for _ in range(3):
        assert r.retrieve("capital city summer", 5) == first


def test_question_is_embedded_once(store, embedder):
    r = Retriever(embedder, store)
    r.retrieve("Who hosted the Summer Olympics?", 3)
    assert embedder.queries == 1
    r.retrieve("Who hosted the Summer Olympics?", 3, mode="bm25")
    assert embedder.queries == 1


@pytest.mark.parametrize(
    "question",
    [
        '"ISIS-K"',
        "*",
        "-",
        "a:b",
        "(x)",
        "DROP TABLE chunks;",
        "NEAR",
        '""',
        "😀",
        "中国的首都是哪里？",
        "AND OR NOT",
        "what's up? (really) -- yes",
        "to be or not to be",  # nothing but stop words
        "the",
        'unbalanced "quote',
    ],
)
@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_special_characters_never_raise(store, embedder, question, mode):
    hits = Retriever(embedder, store).retrieve(question, 3, mode=mode)
    assert len(hits) <= 3
    assert [h.rank for h in hits] == list(range(len(hits)))


def test_bad_arguments(store, embedder):
    with pytest.raises(ValueError, match="mode"):
        Retriever(embedder, store, mode="sparse")
    r = Retriever(embedder, store)
    with pytest.raises(ValueError, match="mode"):
        r.retrieve("x", 3, mode="nope")
    with pytest.raises(ValueError):
        r.retrieve("x", -1)
    with pytest.raises(QuestionError):
        r.retrieve("   ", 3)
    with pytest.raises(ValueError):
        Retriever(embedder, store, fusion_depth=0)


def test_bm25_follows_the_index_through_add_reindex_and_remove(tmp_path, embedder):
    from qa.config import Settings
    from qa.indexing import index_documents, remove_documents

    settings = Settings(chunk_size=64, chunk_overlap=0)
    index_dir = tmp_path / "idx"
    docs = [Document(d, t) for d, t in DOCS.items()]

    def found(question: str, mode: str = "bm25") -> list[str]:
        with PassageStore.open(index_dir) as s:
            s.verify()  # FTS rows in step with chunk rows and vectors
            return ranks(Retriever(embedder, s).retrieve(question, 3, mode=mode))

    index_documents(docs, index_dir, settings=settings, embedder=embedder)
    assert found("quokka") == []
    index_documents([*docs, Document("new", "A quokka smiled at Rottnest.")], index_dir, settings=settings,
                    embedder=embedder)
    assert found("quokka")[0] == "new" and found("quokka", "hybrid")[0] == "new"
    index_documents([*docs, Document("new", "A numbat dug near Perth.")], index_dir, settings=settings,
                    embedder=embedder)
    assert found("quokka") == [] and found("numbat") == ["new"]
    remove_documents(["new"], index_dir)
    assert found("numbat") == [] and "new" not in found("numbat", "hybrid")


def test_rrf_matches_exact_fractions_on_random_lists():
    import random
    from fractions import Fraction

    def reference(lists, k, rrf_k):
        exact, best = {}, {}
        for ranking in lists:
            seen = set()
            for rank, item in enumerate(ranking):
                if item not in seen:
                    seen.add(item)
                    exact[item] = exact.get(item, Fraction(0)) + Fraction(1, rrf_k + rank + 1)
                    best[item] = min(best.get(item, rank), rank)
        order = sorted(exact, key=lambda i: (-exact[i], best[i], i))
        return [(i, float(exact[i])) for i in order[:k]]

    rng = random.Random(7)
    for _ in range(200):
        rrf_k = rng.choice([0, 1, 5, 60])
        lists = [[rng.randrange(40) for _ in range(rng.randrange(0, 60))] for _ in range(rng.randrange(1, 4))]
        assert reciprocal_rank_fusion(lists, 25, rrf_k) == reference(lists, 25, rrf_k)
    deep = [list(range(300)), list(range(299, -1, -1))]  # BEIR depth: a long common multiple, still exact
    assert reciprocal_rank_fusion(deep, 10, 5) == reference(deep, 10, 5)
