"""BEIR benchmarks: loading a BEIR folder, nDCG@10 and recall@100 by hand, cached indexing, each retriever."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FakeEmbedder

from qa.beir import (
    beir_document,
    beir_index_dir,
    evaluate_beir,
    index_beir,
    load_beir,
    ndcg_at_k,
    rank_documents,
    recall_at_k,
    run_beir,
)
from qa.config import Settings
from qa.errors import GoldFileError, QAError
from qa.schema import Chunk, Hit
from qa.store import PassageStore

CORPUS = [
    {"_id": "d1", "title": "Zebra stripes", "text": "The zebra has black and white stripes."},
    {"_id": "d2", "title": "Savanna", "text": "A lion hunts a zebra at dawn."},
    {"_id": "d3", "title": "Penguin", "text": "A penguin swims under the ice."},
    {"_id": "d4", "title": "Kelp", "text": "Kelp grows in cold water."},
    {"_id": "d5", "title": "", "text": "   "},  # nothing to index: skipped
    {"_id": 6, "title": "", "text": "Numeric ids are read as strings."},
]
QUERIES = [
    {"_id": "q1", "text": "zebra stripes"},
    {"_id": "q2", "text": "penguin ice"},
    {"_id": "q3", "text": "kelp"},  # no qrels: not run
    {"_id": "d3", "text": "penguin ice"},  # its id is a document id (BEIR ignores that document)
]
# q1 judges d2 higher than d1, which BM25 ranks first; q2's relevant documents are never found
# (one is not even in the corpus); q9 is judged but not in queries.jsonl.
QRELS = ["q1\td2\t2", "q1\td1\t1", "q1\td4\t0", "q2\td4\t1", "q2\tgone\t1", "d3\td4\t1", "q9\td1\t1"]
SETTINGS = Settings(chunk_size=16, chunk_overlap=4)


def write_beir(folder: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS, split: str = "test") -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(line + "\n" for line in qrels), encoding="utf-8"
    )
    return folder


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny")


# ---- metrics ---------------------------------------------------------------------------------


def test_ndcg_at_10_matches_a_hand_computation():
    rel = {"a": 2, "b": 1, "c": 0, "d": 1}
    # ranks 1..4 = x, b, a, c: gains 0, 1, 2, 0; the ideal order is a(2), b(1), d(1)
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(["x", "b", "a", "c"], rel) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b", "d"], rel) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "a", "b", "d"], rel) == pytest.approx(1.0)  # a duplicate counts once
    assert ndcg_at_k([], rel) == 0.0 and ndcg_at_k(["a"], {"a": 0}) == 0.0
    # the cut-off: a relevant document at rank 11 gains nothing, and the ideal is cut at 10 too
    ranking = [f"x{i}" for i in range(10)] + ["a"]
    assert ndcg_at_k(ranking, rel) == 0.0
    many = {f"r{i}": 1 for i in range(15)}
    assert ndcg_at_k([f"r{i}" for i in range(10)], many) == pytest.approx(1.0)
    assert ndcg_at_k(["b"], rel, k=1) == pytest.approx(1 / 2)


def test_recall_at_100():
    rel = {"a": 2, "b": 1, "c": 0}
    assert recall_at_k(["c", "a"], rel) == pytest.approx(0.5)
    assert recall_at_k(["x", "y", "z", "w", "v", "a", "b"], rel, k=6) == pytest.approx(0.5)
    assert recall_at_k(["x"] * 5 + ["a", "b"], rel, k=3) == 1.0  # duplicates collapse before the cut
    assert recall_at_k(["a"], {"a": 0}) == 0.0


def test_documents_rank_by_their_best_chunk():
    def hit(doc_id: str, n: int, rank: int) -> Hit:
        return Hit(Chunk(f"{doc_id}#{n}", doc_id, 0, 1, "x"), 1.0 - rank / 10, rank)

    hits = [hit("b", 2, 0), hit("a", 0, 1), hit("b", 0, 2), hit("c", 1, 3), hit("a", 1, 4)]
    assert rank_documents(hits, 10) == ["b", "a", "c"]
    assert rank_documents(hits, 2) == ["b", "a"]


# ---- loading ---------------------------------------------------------------------------------


def test_load_keeps_judged_queries_and_honest_documents(beir_folder):
    data = load_beir(beir_folder, "test")
    assert [d.doc_id for d in data.documents] == ["d1", "d2", "d3", "d4", "6"]
    d1 = data.documents[0]
    assert d1.text == "Zebra stripes\n\nThe zebra has black and white stripes." and d1.title == "Zebra stripes"
    assert data.documents[-1].text == "Numeric ids are read as strings."  # no title, no separator
    assert list(data.queries) == ["q1", "q2", "d3"]  # q3 has no qrels, q9 no query text
    assert data.qrels["q1"] == {"d2": 2, "d1": 1, "d4": 0}
    assert data.n_queries_file == 4 and len(data.corpus_sha256) == 64
    assert beir_document("x", "T", "").text == "T"


def test_load_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(GoldFileError, match=r"no qrels for split 'dev' \(found: test\)"):
        load_beir(write_beir(tmp_path / "a"), "dev")
    bad = write_beir(tmp_path / "b")
    (bad / "corpus.jsonl").write_text('{"_id": "1", "text": "ok"}\n{oops\n', encoding="utf-8")
    with pytest.raises(GoldFileError, match=r"corpus\.jsonl:2: not valid JSON"):
        load_beir(bad, "test")
    dup = write_beir(tmp_path / "c", corpus=[{"_id": "1", "text": "a"}, {"_id": "1", "text": "b"}])
    with pytest.raises(GoldFileError, match=r"corpus\.jsonl:2: duplicate _id '1'"):
        load_beir(dup, "test")
    with pytest.raises(GoldFileError, match=r"test\.tsv:2: expected 3 tab-separated fields"):
        load_beir(write_beir(tmp_path / "d", qrels=["q1 d1 1"]), "test")
    with pytest.raises(GoldFileError, match="no judged query"):
        load_beir(write_beir(tmp_path / "e", qrels=["q9\td1\t1"]), "test")
    with pytest.raises(GoldFileError, match="file not found"):
        (tmp_path / "a" / "queries.jsonl").unlink()
        load_beir(tmp_path / "a", "test")


# ---- indexing and evaluation -----------------------------------------------------------------


def test_bm25_scores_match_the_hand_computation(beir_folder, tmp_path):
    run = run_beir(
        beir_folder, split="test", settings=SETTINGS, retrievers=("bm25",), cache_root=tmp_path / "cache",
        embedder=FakeEmbedder(),
    )
    (bm25,) = run.results
    by_id = {q.qid: q for q in bm25.queries}
    assert by_id["q1"].ranking == ("d1", "d2")  # only these contain "zebra" or "stripes"
    # q1: d1 (grade 1) at rank 1, d2 (grade 2) at rank 2; ideal: d2 then d1
    q1 = (1 / math.log2(2) + 2 / math.log2(3)) / (2 / math.log2(2) + 1 / math.log2(3))
    assert by_id["q1"].ndcg_at_10 == pytest.approx(q1) and by_id["q1"].recall_at_100 == 1.0
    assert by_id["q2"].ranking == ("d3",) and by_id["q2"].ndcg_at_10 == 0.0 and by_id["q2"].recall_at_100 == 0.0
    assert by_id["d3"].ranking == ()  # d3 itself is dropped: its id is the query's
    assert bm25.n_queries == 3
    assert bm25.ndcg_at_10 == pytest.approx(q1 / 3) and bm25.recall_at_100 == pytest.approx(1 / 3)
    assert bm25.latency_p50_ms >= 0 and bm25.latency_p95_ms >= bm25.latency_p50_ms
    d = run.to_dict(queries=True)
    assert d["results"][0]["queries"][0] == {"id": "q1", "ndcg_at_10": round(q1, 4), "recall_at_100": 1.0,
                                             "top10": ["d1", "d2"]}
    json.dumps(d)


def test_every_retriever_runs_and_identical_ids_can_be_kept(beir_folder, tmp_path):
    data = load_beir(beir_folder, "test")
    report = index_beir(data, SETTINGS, cache_root=tmp_path / "cache", embedder=FakeEmbedder())
    done: list[tuple[str, int, int]] = []
    results = evaluate_beir(
        data, report.index_dir, settings=SETTINGS, embedder=FakeEmbedder(), ignore_identical_ids=False,
        progress=lambda s, i, n: done.append((s, i, n)),
    )
    assert [r.retriever for r in results] == ["dense", "bm25", "hybrid"]
    for r in results:
        assert r.n_queries == 3 and 0.0 <= r.ndcg_at_10 <= 1.0 and 0.0 <= r.recall_at_100 <= 1.0
        q = {s.qid: s for s in r.queries}
        assert q["d3"].ranking[0] == "d3"  # kept this time
        # dense and hybrid rank every document (each has some cosine); all five are in the index
        if r.retriever != "bm25":
            assert sorted(q["q1"].ranking) == ["6", "d1", "d2", "d3", "d4"]
    assert done[-1] == ("hybrid", 3, 3)
    only = evaluate_beir(data, report.index_dir, settings=SETTINGS, embedder=FakeEmbedder(), retrievers=["bm25"],
                         limit=1)
    assert only[0].n_queries == 1
    with pytest.raises(QAError, match="retriever must be one of"):
        evaluate_beir(data, report.index_dir, settings=SETTINGS, embedder=FakeEmbedder(), retrievers=["sparse"])


def test_the_index_is_built_once_and_keeps_offsets(beir_folder, tmp_path):
    cache = tmp_path / "cache"
    data = load_beir(beir_folder, "test")
    first = index_beir(data, SETTINGS, cache_root=cache, embedder=FakeEmbedder())
    assert first.embedded_passages > 0 and first.documents == 5
    again = index_beir(data, SETTINGS, cache_root=cache, embedder=FakeEmbedder())
    assert again.embedded_passages == 0 and again.index_dir == first.index_dir
    # another chunking, or another corpus, gets another folder
    assert beir_index_dir(data, replace(SETTINGS, chunk_size=32), cache) != Path(first.index_dir)
    other = load_beir(write_beir(tmp_path / "other", corpus=CORPUS[:2]), "test")
    assert beir_index_dir(other, SETTINGS, cache) != beir_index_dir(data, SETTINGS, cache)
    with PassageStore.open(first.index_dir) as store:
        store.verify()  # chunk offsets slice the stored text, FTS and vectors in step
        doc = store.get_document("d1")
        assert doc.text == "Zebra stripes\n\nThe zebra has black and white stripes."
        for c in store.chunks_of("d1"):
            assert doc.text[c.char_start : c.char_end] == c.text
