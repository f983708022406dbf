"""A large local index searches an approximate (IVF) dense index: same ids, recall against exact, and back to flat."""

from __future__ import annotations

import numpy as np

import qa.config
from qa.schema import Chunk, Document
from qa.store import PassageStore

DIM = 16


def docs_with_vectors(n_docs: int, start: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for d in range(start, start + n_docs):
        text = f"Document {d} speaks of topic {d % 7}."
        doc = Document(f"d{d:04d}", text)
        v = rng.standard_normal((1, DIM)).astype(np.float32)
        out.append((doc, [Chunk(f"d{d:04d}#0", doc.doc_id, 0, len(text), text)], v))
    return out


def test_index_turns_approximate_past_the_threshold_and_exact_again_below(tmp_path, monkeypatch):
    monkeypatch.setattr(qa.config, "ANN_MIN_PASSAGES", 300)
    d = tmp_path / "index"
    ups = docs_with_vectors(400)
    with PassageStore.create(d, embedder="e", dim=DIM, chunk_size=160, chunk_overlap=32) as store:
        store.apply(ups[:200], [])
        assert store.stats().dense_index == "exact (flat)"
        store.apply(ups[200:], [])
        assert store.stats().dense_index == "approximate (IVF 80 lists, nprobe 32)"
        store.verify()  # ids in the IVF lists == the chunk rows
    vectors = np.vstack([v for _, _, v in ups])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rng = np.random.default_rng(1)
    with PassageStore.open(d) as store:  # read back from disk
        recalls = []
        for i in rng.choice(400, size=40, replace=False):
            q = vectors[i] + rng.standard_normal(DIM).astype(np.float32) * 0.1
            exact = {f"d{j:04d}" for j in np.argsort(-(vectors @ (q / np.linalg.norm(q))))[:10]}
            found = {s.chunk.doc_id for s in store.search_dense(q, 10)}
            recalls.append(len(found & exact) / 10)
        assert np.mean(recalls) >= 0.9, np.mean(recalls)
        assert store.search_dense(vectors[5], 1)[0].chunk.doc_id == "d0005"
    with PassageStore.open_for_write(d) as store:
        store.apply(docs_with_vectors(3, start=400, seed=2), [f"d{i:04d}" for i in range(10)])  # add and remove
        store.verify()
        assert store.stats().chunks == 393
        store.apply([], [f"d{i:04d}" for i in range(10, 300)])  # below half the threshold: exact again
        assert store.stats().dense_index == "exact (flat)"
        store.verify()
        assert store.search_dense(vectors[350], 1)[0].chunk.doc_id == "d0350"


def test_qa_index_says_which_dense_search_it_built(tmp_path, tiny_corpus, monkeypatch):
    from test_cli_index import cli, patch_models

    patch_models(monkeypatch)
    out = cli("index", tiny_corpus, "-i", tmp_path / "small").stdout
    assert "dense search  exact (flat)" in out
    monkeypatch.setattr(qa.config, "ANN_MIN_PASSAGES", 1)
    out = cli("index", tiny_corpus, "-i", tmp_path / "big").stdout
    assert "dense search  approximate (IVF 4 lists, nprobe 4)" in out  # 4 passages: a list each, at most


def test_probed_lists_are_a_share_of_the_lists_with_a_floor():
    from qa.store.vectors import nprobe_for

    assert [nprobe_for(n) for n in (10, 80, 1_210, 4_000)] == [10, 32, 61, 200]
