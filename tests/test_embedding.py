"""The sentence-transformers embedder: rows come back in input order however the batches are cut."""

from __future__ import annotations

import numpy as np
import pytest

from qa.config import Settings
from qa.embedding import SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    settings = Settings()
    return SentenceTransformerEmbedder(settings.embedder_name, settings.embedder_path, device="cpu")


def test_passages_keep_input_order_across_length_sorted_batches(embedder):
    # Lengths vary so that sorting longest-first moves rows, and there are more texts than one slice.
    texts = [("word " * (1 + (i * 37) % 90)) + f"passage {i}" for i in range(embedder.batch_size * 4 + 9)]
    done: list[int] = []
    got = embedder.encode_passages(texts, progress=done.append)
    assert got.shape == (len(texts), embedder.dim) and got.dtype == np.float32
    assert done[-1] == len(texts) and done == sorted(done)
    for i in (0, 1, 7, len(texts) // 2, len(texts) - 1):
        one = embedder.encode_passages([texts[i]])[0]
        assert np.allclose(got[i], one, atol=1e-5), f"row {i} is not the embedding of text {i}"
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_no_passages(embedder):
    assert embedder.encode_passages([]).shape == (0, embedder.dim)
