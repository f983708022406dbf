"""eval/ann_bench.py on tiny sets: exact search is its own reference, and more lists probed never loses recall."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

import ann_bench  # noqa: E402


def test_random_set_reports_recall_that_grows_with_nprobe(tmp_path, capsys):
    out = tmp_path / "ann.json"
    assert ann_bench.main(["--random", "3000", "--queries", "40", "--out", str(out)]) == 0
    assert "| random unit | 3,000 |" in capsys.readouterr().out
    (r,) = json.loads(out.read_text())["results"]
    assert r["nlist"] == 219 and [row["nprobe"] for row in r["ivf"]] == [8, 16, 32, 64, 128]
    recalls = [row["recall_at_10"] for row in r["ivf"]]
    assert recalls == sorted(recalls) and 0 < recalls[0] < recalls[-1] <= 1
    assert all(row["top1_in_10"] >= 0.9 for row in r["ivf"])  # the query is its vector plus a little noise


def test_cached_real_vectors_are_used_without_embedding(tmp_path, monkeypatch):
    squad = tmp_path / "tiny.json"
    squad.write_text("{}")
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((600, 8), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.save(tmp_path / "tiny-sentences.npy", vectors)
    np.save(tmp_path / "tiny-questions-20.npy", vectors[:20])
    monkeypatch.setattr("qa.factory.make_embedder", lambda *_: pytest.fail("the cache was not used"))
    p, q = ann_bench.real_vectors(squad, tmp_path, 20)
    r = ann_bench.measure("real", p, q)
    assert r["passages"] == 600 and r["ivf"][-1]["nprobe"] == 64 and r["ivf"][-1]["recall_at_10"] == 1.0  # all lists


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        ann_bench.main([])
    with pytest.raises(SystemExit):
        ann_bench.main(["--random", "ten"])
