"""The Milvus backend (qa.store.milvus) on Milvus Lite: the same index, answers and guarantees through `--index-uri`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")
pytestmark = pytest.mark.milvus

from conftest import TINY_DOCS, FakeEmbedder  # noqa: E402
from test_cli_index import cli, patch_models  # noqa: E402

import qa.store  # noqa: E402
from qa import Settings, build_index  # noqa: E402
from qa.errors import IndexLockedError, IndexNotFoundError  # noqa: E402
from qa.store import PassageStore, is_milvus_location, open_index  # noqa: E402
from qa.store.milvus import LEASE_S, MilvusStore, bm25_text  # noqa: E402


@pytest.fixture
def fake_models(monkeypatch):
    return patch_models(monkeypatch)


def test_locations_that_name_milvus():
    assert is_milvus_location("idx.milvus.db") and is_milvus_location("http://host:19530")
    assert is_milvus_location("https://x.zillizcloud.com") and not is_milvus_location("index")
    assert not is_milvus_location(Path("runs/index"))


def test_bm25_words_are_stemmed_without_stop_words():
    assert bm25_text("The stripes of the capitals, ISIS-K!") == "stripe capit isi k"
    assert bm25_text("the of and") == ""


def test_missing_milvus_lite_file_is_index_not_found(tmp_path):
    with pytest.raises(IndexNotFoundError, match="qa index PATH --index-uri"):
        open_index(tmp_path / "none.db")
    assert not (tmp_path / "none.db").exists()  # looking did not create it


def test_same_passages_and_dense_search_as_the_local_store(tmp_path, tiny_corpus):
    uri = str(tmp_path / "idx.db")
    local = build_index([tiny_corpus], tmp_path / "local", embedder=FakeEmbedder())
    remote = build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    assert (remote.documents, remote.passages) == (local.documents, local.passages)
    q = FakeEmbedder().encode_query("capital of France")
    with PassageStore.open(tmp_path / "local") as a, open_index(uri) as b:
        assert a.document_hashes() == b.document_hashes()
        for doc_id in TINY_DOCS:
            assert a.chunks_of(doc_id) == b.chunks_of(doc_id)
            assert a.get_document(doc_id) == b.get_document(doc_id)
        da, db = a.search_dense(q, 4), b.search_dense(q, 4)
        assert [s.chunk for s in da] == [s.chunk for s in db]
        assert np.allclose([s.score for s in da], [s.score for s in db], atol=1e-5)
        assert all(s.source for s in db)
        assert b.search_bm25("capital of France", 1)[0].chunk.doc_id == "paris"
        assert b.search_bm25("museums", 3)[0].chunk.doc_id == "berlin"
        assert b.search_bm25("the of", 3) == []
        b.verify()


def test_cli_index_ask_status_show_remove_on_milvus_lite(tmp_path, tiny_corpus, fake_models, tiny_reader):
    uri = str(tmp_path / "idx.milvus.db")
    cli("index", tiny_corpus, "--index-uri", uri)
    assert "Nothing changed" in cli("index", tiny_corpus, "--index-uri", uri).stdout
    (tiny_corpus / "paris.txt").write_text("Paris is the capital of France. The Louvre opened in 1793.",
                                           encoding="utf-8")
    again = cli("index", tiny_corpus, "--index-uri", uri).stdout
    assert "+0 new, 1 changed" in again
    info = json.loads(cli("status", "--index-uri", uri, "--json").stdout)
    assert (info["documents"], info["embedder"]) == (4, "fake-hash-embedder")
    for retriever in ("dense", "bm25", "hybrid"):
        out = cli("ask", "When did the Louvre open?", "--index-uri", uri, "--reader", tiny_reader, "--json",
                  "--min-score", "0", "--retriever", retriever).stdout
        result = json.loads(out)
        assert result["passages"]
        for p in result["passages"]:
            text = json.loads(cli("show", p["doc_id"], "--index-uri", uri, "--json").stdout)["text"]
            assert text[p["start"] : p["end"]] == p["text"]
        for a in result["answers"] + result["candidates"]:
            text = json.loads(cli("show", a["doc_id"], "--index-uri", uri, "--json").stdout)["text"]
            assert text[a["start"] : a["end"]] == a["text"]
    cli("remove", "tokyo", "--index-uri", uri)
    assert json.loads(cli("status", "--index-uri", uri, "--json").stdout)["documents"] == 3
    both = cli("status", "--index-uri", uri, "--index-dir", tmp_path, code=2)
    assert "not both" in both.stderr
    bad = cli("status", "--index-uri", "ftp://x", code=2)
    assert "--index-uri 'ftp://x'" in bad.stderr


class Killed(BaseException):
    """What a SIGKILL is to the code it interrupts: nothing after it runs."""


def test_a_write_killed_mid_document_is_never_cited_and_the_next_writer_clears_it(tmp_path, tiny_corpus,
                                                                                  monkeypatch):
    uri = str(tmp_path / "idx.db")
    build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    (tiny_corpus / "paris.txt").write_text("Paris is the capital of France. The Louvre opened in 1793.",
                                           encoding="utf-8")

    def die(point):
        if point == "milvus_passages_written":
            raise Killed

    monkeypatch.setattr(qa.store, "_crash_hook", die)
    with pytest.raises(Killed):
        build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    monkeypatch.setattr(qa.store, "_crash_hook", None)

    # readers: paris's new passages are in Milvus, but without its marker row they are never returned
    with MilvusStore.open(uri) as store:
        assert "paris" not in store.document_hashes()
        hits = store.search_bm25("Louvre 1793", 5) + store.search_dense(FakeEmbedder().encode_query("Louvre"), 10)
        assert hits and all(h.chunk.doc_id != "paris" for h in hits)
    # the next writer removes what was left of it, and the rerun puts paris back whole
    report = build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    assert report.added == ("paris",)
    with MilvusStore.open(uri) as store:
        store.verify()
        assert store.search_bm25("Louvre 1793", 1)[0].chunk.doc_id == "paris"
        assert store.manifest.n_chunks == sum(len(store.chunks_of(d)) for d in TINY_DOCS)


def test_one_writer_at_a_time_by_lease(tmp_path, tiny_corpus):
    uri = str(tmp_path / "idx.db")
    build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    with MilvusStore.open_for_write(uri) as writer:
        writer._write_manifest({"writer": {"host": "elsewhere", "pid": 1, "time": time.time()}})
        with pytest.raises(IndexLockedError, match="elsewhere"):
            MilvusStore.open_for_write(uri)
        writer._write_manifest({"writer": {"host": "elsewhere", "pid": 1, "time": time.time() - LEASE_S - 1}})
        MilvusStore.open_for_write(uri).close()  # an expired lease is taken over
        with MilvusStore.open(uri) as reader:  # readers never wait
            assert reader.manifest.n_documents == 4


def test_seed_question_on_milvus_lite_with_the_packaged_models(tmp_path):
    uri = str(tmp_path / "idx.milvus.db")
    cli("index", "seeds", "--index-uri", uri)
    result = json.loads(cli("ask", "When was ISIS-K formed?", "--index-uri", uri, "--json").stdout)
    best = result["answers"][0]
    assert best["text"] == "2015"
    text = json.loads(cli("show", best["doc_id"], "--index-uri", uri, "--json").stdout)["text"]
    assert text[best["start"] : best["end"]] == "2015"
    assert Settings().index_dir == "index"  # the default stays a local folder


def test_serve_answers_from_a_milvus_index(tmp_path, tiny_corpus, fake_models, monkeypatch):
    from conftest import FakeReader
    from fastapi.testclient import TestClient
    from test_server import wait_ready

    import qa.factory
    from qa.server import create_app

    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: FakeReader())
    monkeypatch.delenv("QA_TOKEN", raising=False)
    uri = str(tmp_path / "idx.milvus.db")
    cli("index", tiny_corpus, "--index-uri", uri)
    with TestClient(create_app(uri, Settings(index_dir=uri), workers=1)) as client:
        assert wait_ready(client)["status"] == "ready"
        r = client.post("/ask", json={"question": "When did the Berlin Wall fall?"})
        assert r.status_code == 200, r.text
        best = r.json()["answers"][0]
        assert (best["text"], best["doc_id"]) == ("1989", "berlin")
        assert TINY_DOCS["berlin"][best["start"] : best["end"]] == "1989"


def test_both_backends_implement_the_store_protocol(tmp_path, tiny_corpus):
    from qa.store import Store

    build_index([tiny_corpus], tmp_path / "local", embedder=FakeEmbedder())
    build_index([tiny_corpus], str(tmp_path / "idx.db"), embedder=FakeEmbedder())
    for location in (tmp_path / "local", str(tmp_path / "idx.db")):
        with open_index(location) as store:
            assert isinstance(store, Store)


def test_a_milvus_lite_index_open_in_another_process_is_one_clear_line(tmp_path, tiny_corpus):
    import os
    import subprocess
    import sys

    uri = str(tmp_path / "idx.db")
    build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    repo = Path(__file__).resolve().parents[1]
    with MilvusStore.open(uri):  # Milvus Lite locks its folder for the process that has it open
        out = subprocess.run([sys.executable, "-m", "qa", "status", "--index-uri", uri], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(repo)}, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: another process has the Milvus Lite index {uri} open, and Milvus Lite serves one process at a "
        f"time; to share it, serve it (`milvus-lite server --data-dir {uri}`) and use --index-uri "
        "http://127.0.0.1:19530"
    ]


def test_bench_builds_its_index_in_milvus_lite_and_refuses_one_that_holds_an_index(tmp_path, tiny_reader):
    from test_bench import TINY_SQUAD
    from typer.testing import CliRunner

    from qa.cli import app

    squad = tmp_path / "tiny-squad.json"
    squad.write_text(json.dumps(TINY_SQUAD), encoding="utf-8")
    uri = str(tmp_path / "bench.milvus.db")
    args = ["bench", str(squad), "--reader", str(tiny_reader), "--questions", "2", "--cold-runs", "1", "--json",
            "--index-uri", uri]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["store"] == f"Milvus ({uri})" and d["index"]["passages"] == 2 and d["quality"]["n"] == 2
    assert isinstance(d["cold_start_s"], float)  # fresh `qa ask --index-uri` processes answered from it
    with open_index(uri) as store:
        assert store.stats().documents == 2  # left there
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "already holds an index" in again.output


class _LosingWrites:
    """A Milvus client whose first ``lose`` manifest inserts keep nothing, as Milvus 2.5 does now and then."""

    def __init__(self, client, lose: int) -> None:
        self._client, self.lose = client, lose

    def insert(self, collection, rows):
        if collection.endswith("manifest") and self.lose > 0:
            self.lose -= 1
            return {"insert_count": len(rows)}
        return self._client.insert(collection, rows)

    def __getattr__(self, name):
        return getattr(self._client, name)


class _MissingReads:
    """A Milvus client whose first ``miss`` manifest queries leave out the ``generation`` row."""

    def __init__(self, client, miss: int) -> None:
        self._client, self.miss = client, miss

    def query(self, collection, **kwargs):
        rows = self._client.query(collection, **kwargs)
        if collection.endswith("manifest") and self.miss > 0:
            self.miss -= 1
            rows = [r for r in rows if r["key"] != "generation"]
        return rows

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_manifest_read_that_misses_a_key_is_read_again_and_one_that_keeps_missing_is_corrupt(tmp_path, tiny_corpus):
    import qa.store.milvus_manifest as milvus_store
    from qa.errors import IndexCorruptError

    uri = str(tmp_path / "idx.db")
    build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    with open_index(uri) as store:
        expected = store._read_manifest()
        store._client = _MissingReads(store._client, miss=2)
        assert store._read_manifest() == expected and store._client.miss == 0
        store._client.miss = milvus_store.MANIFEST_TRIES
        with pytest.raises(IndexCorruptError, match="manifest is incomplete"):
            store._read_manifest()
        store._client = store._client._client


def test_a_lost_manifest_write_is_written_again_and_a_server_that_keeps_losing_is_an_error(tmp_path, tiny_corpus):
    import qa.store.milvus_manifest as milvus_store
    from qa.errors import QAError

    uri = str(tmp_path / "idx.db")
    build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    with MilvusStore.open_for_write(uri) as store:
        store._client = _LosingWrites(store._client, lose=2)
        store.set_setting("min_score", 0.25)
        assert store._client.lose == 0 and store.get_setting("min_score") == 0.25
        store._client.lose = milvus_store.MANIFEST_TRIES
        with pytest.raises(QAError, match=r"did not keep the manifest key\(s\) settings"):
            store.set_setting("min_score", 0.5)
        store._client = store._client._client
    with open_index(uri) as store:
        assert store.get_setting("min_score") == 0.25


def test_the_manifest_keeps_one_version_of_each_key_and_never_upserts(tmp_path, tiny_corpus):
    from qa.store.milvus_manifest import COLLECTION

    uri = str(tmp_path / "idx.db")
    build_index([tiny_corpus], uri, embedder=FakeEmbedder())
    with MilvusStore.open_for_write(uri) as store:
        for score in (0.1, 0.2, 0.3):
            store.set_setting("min_score", score)
        store._client.upsert = None  # any upsert would fail
        store.set_setting("min_score", 0.4)
        rows = store._client.query(COLLECTION, filter='key != ""', output_fields=["key", "seq"])
        keys = [r["key"] for r in rows]
        assert len(keys) == len(set(keys)), "older versions of a key are deleted after each write"
        assert store.get_setting("min_score") == 0.4
    with open_index(uri) as store:
        assert store.get_setting("min_score") == 0.4


def test_an_index_with_an_unversioned_manifest_asks_for_a_rebuild(tmp_path):
    from pymilvus import DataType, MilvusClient

    from qa.errors import IndexMismatchError

    uri = str(tmp_path / "old.db")
    client = MilvusClient(uri)
    schema = client.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, max_length=128, is_primary=True)
    schema.add_field("value", DataType.VARCHAR, max_length=65_535)
    schema.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("dummy", index_type="FLAT", metric_type="IP")
    client.create_collection("qa_manifest", schema=schema, index_params=index)
    client.insert("qa_manifest", [{"key": "format_version", "value": "1", "dummy": [0.0, 1.0]}])
    client.close()
    with pytest.raises(IndexMismatchError, match="older qa.*--rebuild"):
        open_index(uri)
