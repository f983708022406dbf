"""`qa index --ray`: reading, chunking and embedding on a local Ray give the index the single process builds.

Marked ``ray`` (a local Ray takes tens of seconds to start): excluded from the default run, run by `.ci/run`.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray")

from test_cli_index import cli  # noqa: E402

from qa import Settings, build_index, factory  # noqa: E402
from qa.store import open_index  # noqa: E402

pytestmark = pytest.mark.ray


def test_ray_builds_the_same_passages_and_vectors_as_one_process(tmp_path, tiny_corpus):
    (tiny_corpus / "notes.md").write_text("# Notes\n\nThe [Louvre](https://louvre.fr) opened in\n1793.\n",
                                          encoding="utf-8")
    (tiny_corpus / "bad.txt").write_bytes(b"\x00binary")
    one = build_index([tiny_corpus], tmp_path / "one")
    many = build_index([tiny_corpus], tmp_path / "ray", ray=True)
    assert (many.documents, many.passages, many.added) == (one.documents, one.passages, one.added)
    assert [s.split(":")[0] for s in many.skipped] == [s.split(":")[0] for s in one.skipped]  # bad.txt, once
    query = factory.make_embedder(Settings()).encode_query("When did the Louvre open?")
    with open_index(tmp_path / "one") as a, open_index(tmp_path / "ray") as b:
        assert a.document_hashes() == b.document_hashes()
        for doc_id in a.document_hashes():
            assert a.chunks_of(doc_id) == b.chunks_of(doc_id)
        ha, hb = a.search_dense(query, 20), b.search_dense(query, 20)
        assert [h.chunk for h in ha] == [h.chunk for h in hb]
        assert np.allclose([h.score for h in ha], [h.score for h in hb], atol=1e-5)
        b.verify()
    again = build_index([tiny_corpus], tmp_path / "ray", ray=True)
    assert again.embedded_passages == 0 and len(again.unchanged) == one.documents


def test_cli_index_with_ray_into_milvus_lite(tmp_path, tiny_corpus):
    pytest.importorskip("pymilvus")
    uri = str(tmp_path / "idx.milvus.db")
    out = cli("index", tiny_corpus, "--index-uri", uri, "--ray").stdout
    assert "+4 new" in out
    assert "--ray-address needs --ray" in cli("index", tiny_corpus, "--ray-address", "auto", code=2).stderr


def test_ray_bench_times_both_paths_on_the_same_passages(tmp_path, capsys):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
    import ray_bench
    from test_bench import TINY_SQUAD

    squad = tmp_path / "tiny.json"
    squad.write_text(json.dumps(TINY_SQUAD), encoding="utf-8")
    out = tmp_path / "ray.json"
    assert ray_bench.main([str(squad), "--articles", "5", "--out", str(out)]) == 0
    assert "| one process |" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["articles"] == 2 and d["same_passages"] is True
    assert d["single"]["passages"] == d["ray"]["passages"] == 2 and d["ray_start"]["workers"] >= 1
