"""eval/scale_bench.py on a tiny corpus: the synthetic corpus slices back, and the table reports what it measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

import scale_bench  # noqa: E402


def test_synthetic_corpus_is_deterministic_and_slices_back():
    docs, chunks_of, vectors = scale_bench.corpus(23)
    assert sum(len(c) for c in chunks_of) == 23 == len(vectors) and len(docs) == 3
    for doc, chunks in zip(docs, chunks_of, strict=True):
        for c in chunks:
            c.check(doc)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = scale_bench.corpus(23)
    assert again[0] == docs and np.array_equal(again[2], vectors)


def test_bench_builds_searches_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert scale_bench.main(["--passages", "400", "--batch", "150", "--queries", "10", "--backends", "local",
                             "--out", str(out), "--workdir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| local | 400 |" in printed and "random unit vectors" in printed
    report = json.loads(out.read_text())
    (local,) = report["results"]
    assert local["documents"] == 40 and local["recall_at_10"] == 1.0  # flat search is exact
    assert set(local["search_ms"]) == {"dense", "bm25", "hybrid"} and local["disk_mb"] > 0
    assert list(tmp_path.iterdir()) == [out]  # the indexes it built are gone
