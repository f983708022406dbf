"""PassageStore: round trips, upserts and deletes, typed errors, the write lock and crash safety."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from qa.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexNotFoundError, QAError
from qa.schema import Chunk, Document
from qa.store import FORMAT_VERSION, PassageStore, build_fts_query, document_sha256

REPO = Path(__file__).resolve().parents[1]
DIM = 64
EMBEDDER = "fake-hash-64"


def embed(texts: list[str]) -> np.ndarray:
    """Deterministic fake embedder: normalised hashed bag of words, dim 64."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for tok in re.findall(r"\w+", text.lower()):
            out[row, int(hashlib.md5(tok.encode()).hexdigest(), 16) % DIM] += 1.0
        norm = np.linalg.norm(out[row])
        if norm:
            out[row] /= norm
    return out


def chunk(doc: Document, size: int = 80) -> list[Chunk]:
    """Split at the last space before ``size`` chars; offsets index the verbatim text."""
    chunks, start, text = [], 0, doc.text
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + 1, end)
            end = space if space > start else end
        chunks.append(Chunk(f"{doc.doc_id}#{len(chunks)}", doc.doc_id, start, end, text[start:end]))
        start = end
    return chunks


def upsert(doc: Document) -> tuple[Document, list[Chunk], np.ndarray]:
    chunks = chunk(doc)
    return doc, chunks, embed([c.text for c in chunks])


DOCS = [
    Document(
        "paris",
        "Paris is the capital of France. The Eiffel Tower was finished in 1889. "
        "About 2.1 million people live in Paris, on the banks of the Seine.",
        title="Paris",
        source="seeds/paris.md",
    ),
    Document(
        "berlin", "Berlin is the capital of Germany. The Berlin Wall fell in 1989. It has many museums."
    ),
    Document("tokyo", "Tokyo is the capital of Japan. It hosted the Summer Olympics in 1964 and in 2021."),
]


def new_store(path: Path, **kw) -> PassageStore:
    args = {"embedder": EMBEDDER, "dim": DIM, "chunk_size": 20, "chunk_overlap": 0} | kw
    return PassageStore.create(path, **args)


@pytest.fixture
def built(tmp_path) -> Path:
    index_dir = tmp_path / "index"
    with new_store(index_dir) as s:
        s.apply([upsert(d) for d in DOCS], [])
    return index_dir


def faiss_ids(index_dir: Path) -> list[int]:
    import faiss

    with PassageStore.open(index_dir) as s:
        name = s.manifest.faiss_file
    index = faiss.read_index(str(index_dir / name))
    return sorted(int(i) for i in faiss.vector_to_array(index.id_map))


def chunk_rowids(index_dir: Path) -> list[int]:
    with sqlite3.connect(index_dir / "index.sqlite") as conn:
        return [r for (r,) in conn.execute("SELECT rowid FROM chunks ORDER BY rowid")]


def fts_count(index_dir: Path, word: str) -> int:
    with sqlite3.connect(index_dir / "index.sqlite") as conn:
        return conn.execute(
            "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{word}"',)
        ).fetchone()[0]


# ---- round trip ------------------------------------------------------------------------------


def test_round_trip_keeps_documents_chunks_and_row_alignment(built):
    import faiss

    with PassageStore.open(built) as s:
        assert s.readonly
        assert s.document_hashes() == {d.doc_id: document_sha256(d) for d in DOCS}
        assert document_sha256(DOCS[0]) == hashlib.sha256(DOCS[0].text.encode()).hexdigest()
        for doc in DOCS:
            assert s.get_document(doc.doc_id) == doc
            stored = s.chunks_of(doc.doc_id)
            assert stored == chunk(doc)
            for c in stored:
                c.check(doc)
        m = s.manifest
        assert (m.format_version, m.embedder, m.dim, m.chunk_size, m.chunk_overlap) == (
            FORMAT_VERSION,
            EMBEDDER,
            DIM,
            20,
            0,
        )
        assert m.n_documents == 3 and m.n_chunks == sum(len(chunk(d)) for d in DOCS)
        assert {"faiss", "numpy", "python"} <= set(m.versions)

        # Row alignment: the vector stored under each FAISS id is the embedding of that rowid's chunk.
        index = faiss.read_index(str(built / m.faiss_file))
        ids = faiss.vector_to_array(index.id_map)
        assert sorted(ids.tolist()) == chunk_rowids(built)
        for rowid in ids:
            c = s.get_chunk(int(rowid))
            np.testing.assert_allclose(index.reconstruct(int(rowid)), embed([c.text])[0], atol=1e-6)

        # Each chunk's own vector finds it first.
        for doc in DOCS:
            for c in chunk(doc):
                top = s.search_dense(embed([c.text])[0], 1)[0]
                assert top.chunk == c and top.score == pytest.approx(1.0, abs=1e-5)

        paris = s.search_dense(embed(["Eiffel Tower finished"])[0], 2)
        assert paris[0].chunk.doc_id == "paris" and paris[0].source == "seeds/paris.md"
        assert paris[0].score >= paris[1].score

        st = s.stats()
        assert st.documents == 3 and st.chunks == m.n_chunks and st.embedder == EMBEDDER
        assert st.sqlite_bytes > 0 and st.faiss_bytes == m.faiss_bytes
        s.verify()


def test_search_edge_cases(built):
    with PassageStore.open(built) as s:
        q = embed(["capital"])[0]
        assert s.search_dense(q, 0) == []
        assert len(s.search_dense(q, 1000)) == s.manifest.n_chunks
        with pytest.raises(ValueError, match="dimension"):
            s.search_dense(np.ones(DIM + 1, np.float32), 3)
        with pytest.raises(ValueError):
            s.search_dense(q, -1)
        with pytest.raises(KeyError):
            s.get_document("nope")
        with pytest.raises(KeyError):
            s.get_chunk(10_000)
        assert s.chunks_of("nope") == []


def test_empty_index_searches(tmp_path):
    with new_store(tmp_path / "i") as s:
        assert s.search_dense(embed(["x"])[0], 5) == []
        assert s.search_bm25("x", 5) == []
        assert s.document_hashes() == {}
        s.verify()


# ---- upsert and delete -----------------------------------------------------------------------


def test_upsert_replaces_a_changed_document(built):
    old = DOCS[0]
    new = Document("paris", "Paris hosted the 2024 Olympics. Zanzibarian lanterns lit the river.")
    with PassageStore.open(built, readonly=False) as s:
        gen = s.manifest.generation
        s.apply([upsert(new)], [])
        assert s.chunks_of("paris") == chunk(new)
        assert s.get_document("paris") == new
        n_chunks = sum(len(chunk(d)) for d in [new, *DOCS[1:]])
        assert s.manifest.n_chunks == n_chunks and s.manifest.n_documents == 3
        assert s.manifest.generation == gen + 1
        assert s.search_bm25("Eiffel", 5) == []
        assert [h.chunk.doc_id for h in s.search_bm25("Zanzibarian", 5)] == ["paris"]
        s.verify()
    assert len(faiss_ids(built)) == len(chunk_rowids(built)) == n_chunks
    assert faiss_ids(built) == chunk_rowids(built)
    assert fts_count(built, "Eiffel") == 0 and fts_count(built, "Zanzibarian") == 1
    # Only the current generation's FAISS file is left.
    assert sorted(p.name for p in built.glob("vectors.*")) == [f"vectors.{gen + 1}.faiss"]
    assert old != new


def test_delete_removes_rows_vectors_and_fts(built):
    with PassageStore.open(built, readonly=False) as s:
        s.apply([], ["berlin", "not-there"])
        assert "berlin" not in s.document_hashes()
        assert s.chunks_of("berlin") == []
        assert s.search_bm25("Berlin Wall", 10) == []
        hits = s.search_dense(embed(["Berlin Wall fell"])[0], 100)
        assert all(h.chunk.doc_id != "berlin" for h in hits)
        assert s.manifest.n_documents == 2
        s.verify()
    assert fts_count(built, "berlin") == 0
    assert faiss_ids(built) == chunk_rowids(built)


def test_fts_stays_in_step_on_add_reindex_and_remove(tmp_path):
    index_dir = tmp_path / "i"
    doc = Document("d", "The quokka is a small marsupial.")
    with new_store(index_dir) as s:
        s.apply([upsert(doc)], [])
        assert fts_count(index_dir, "quokka") == 1
        s.apply([upsert(doc)], [])  # re-index the same text: no duplicate FTS rows
        assert fts_count(index_dir, "quokka") == 1
        s.apply([upsert(Document("d", "The numbat eats termites."))], [])
        assert fts_count(index_dir, "quokka") == 0 and fts_count(index_dir, "numbat") == 1
        s.apply([], ["d"])
        assert fts_count(index_dir, "numbat") == 0
        s.verify()
        # rowids are never reused, so a stale FAISS id can never name a new chunk
        s.apply([upsert(doc)], [])
        assert min(chunk_rowids(index_dir)) > 3


def test_apply_validates_before_writing(built):
    doc = Document("x", "Some new text here.")
    chunks = chunk(doc)
    with PassageStore.open(built, readonly=False) as s:
        gen = s.manifest.generation
        with pytest.raises(TypeError, match="float32"):
            s.apply([(doc, chunks, embed([c.text for c in chunks]).astype(np.float64))], [])
        with pytest.raises(ValueError, match="shape"):
            s.apply([(doc, chunks, np.zeros((len(chunks) + 1, DIM), np.float32))], [])
        with pytest.raises(ValueError, match="shape"):
            s.apply([(doc, chunks, np.zeros((len(chunks), DIM - 1), np.float32))], [])
        bad = Chunk("x#0", "x", 0, 4, "Nope")
        with pytest.raises(ValueError, match="does not match"):
            s.apply([(doc, [bad], np.zeros((1, DIM), np.float32))], [])
        with pytest.raises(ValueError, match="both upserted and deleted"):
            s.apply([(doc, chunks, embed([c.text for c in chunks]))], ["x"])
        stolen = Chunk("paris#0", "x", 0, len(doc.text), doc.text)
        with pytest.raises(ValueError, match="already belongs"):
            s.apply([(doc, [stolen], embed([doc.text]))], [])
        assert s.manifest.generation == gen
        s.verify()
    with PassageStore.open(built) as s:
        with pytest.raises(ValueError, match="read-only"):
            s.apply([upsert(doc)], [])


def test_settings_are_saved_in_the_manifest(built):
    with PassageStore.open(built, readonly=False) as s:
        assert s.get_setting("min_score") is None
        assert s.get_setting("min_score", 0.5) == 0.5
        s.set_setting("min_score", 0.42)
        s.set_setting("passages_k", 7)
        with pytest.raises(TypeError):
            s.set_setting("bad", object())
    with PassageStore.open(built) as s:
        assert s.get_setting("min_score") == 0.42
        assert s.stats().settings == {"min_score": 0.42, "passages_k": 7}
        with pytest.raises(ValueError, match="read-only"):
            s.set_setting("min_score", 0.1)


def test_overwrite_empties_an_index_for_a_new_embedder(built):
    with pytest.raises(QAError, match="already holds an index"):
        new_store(built)
    with new_store(built, embedder="other", dim=32, overwrite=True) as s:
        assert s.manifest.n_chunks == 0 and s.manifest.embedder == "other" and s.manifest.dim == 32
        s.verify()
    with PassageStore.open(built) as s:
        s.check_embedder("other", 32)


def test_open_or_create(tmp_path):
    index_dir = tmp_path / "i"
    kw = {"embedder": EMBEDDER, "dim": DIM, "chunk_size": 20, "chunk_overlap": 0}
    with PassageStore.open_or_create(index_dir, **kw) as s:
        s.apply([upsert(DOCS[0])], [])
    with PassageStore.open_or_create(index_dir, **kw) as s:
        assert list(s.document_hashes()) == ["paris"]
    with pytest.raises(IndexMismatchError, match="chunked"):
        PassageStore.open_or_create(index_dir, **(kw | {"chunk_size": 30}))
    # the failed attempt released the lock
    PassageStore.open(index_dir, readonly=False).close()


# ---- typed errors ----------------------------------------------------------------------------


def test_mismatched_embedder_is_refused(built):
    with PassageStore.open(built) as s:
        s.check_embedder(EMBEDDER, DIM)
        with pytest.raises(IndexMismatchError) as err:
            s.check_embedder("sentence-transformers/all-MiniLM-L6-v2", DIM)
        assert EMBEDDER in str(err.value) and "all-MiniLM-L6-v2" in str(err.value)
        assert "qa index --rebuild" in str(err.value)
        with pytest.raises(IndexMismatchError, match="dim 32"):
            s.check_embedder(EMBEDDER, 32)
        s.check_embedder(EMBEDDER)  # name only: no model load needed to know the dim
        with pytest.raises(IndexMismatchError, match="'other'"):
            s.check_embedder("other")
    with pytest.raises(IndexMismatchError):
        PassageStore.open_or_create(built, embedder=EMBEDDER, dim=32, chunk_size=20, chunk_overlap=0)


def test_other_format_version_is_refused(built):
    with sqlite3.connect(built / "index.sqlite") as conn:
        conn.execute("UPDATE manifest SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(IndexMismatchError, match="format version 99"):
        PassageStore.open(built)


def test_missing_or_foreign_folders(tmp_path):
    with pytest.raises(IndexNotFoundError, match="qa index"):
        PassageStore.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError, match="qa index"):
        PassageStore.open(tmp_path / "empty")
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("milk")
    with pytest.raises(IndexNotFoundError):
        PassageStore.open(foreign)
    with pytest.raises(QAError, match="todo.txt"):
        new_store(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["todo.txt"]


def test_truncated_faiss_file_is_corrupt(built):
    with PassageStore.open(built) as s:
        name = s.manifest.faiss_file
    path = built / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexCorruptError) as err:
        PassageStore.open(built)
    assert name in str(err.value) and "rebuild" in str(err.value)


def test_missing_faiss_file_is_corrupt(built):
    for p in built.glob("vectors.*"):
        p.unlink()
    with pytest.raises(IndexCorruptError, match=r"vectors\.\d+\.faiss"):
        PassageStore.open(built)


def test_faiss_file_of_another_generation_is_corrupt(built, tmp_path):
    # A well-formed FAISS file whose contents the database does not describe.
    other = tmp_path / "other"
    with new_store(other) as s:
        s.apply([upsert(DOCS[0])], [])
        other_file = other / s.manifest.faiss_file
    with PassageStore.open(built) as s:
        name = s.manifest.faiss_file
    (built / name).write_bytes(other_file.read_bytes())
    with pytest.raises(IndexCorruptError, match=re.escape(name)):
        PassageStore.open(built)


def test_faiss_ids_disagreeing_with_rows_is_corrupt(built):
    with sqlite3.connect(built / "index.sqlite") as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM chunks WHERE rowid = (SELECT max(rowid) FROM chunks)")
    with pytest.raises(IndexCorruptError, match="disagree"):
        PassageStore.open(built)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_sqlite_is_corrupt(built, damage):
    db = built / "index.sqlite"
    data = db.read_bytes()
    db.write_bytes(
        {"garbage": os.urandom(4096) * 4, "truncated": data[: len(data) // 3], "empty": b""}[damage]
    )
    for extra in built.glob("index.sqlite-*"):
        extra.unlink()
    with pytest.raises(IndexCorruptError, match="index.sqlite") as err:
        PassageStore.open(built)
    assert "rebuild" in str(err.value)


def test_overwrite_replaces_a_damaged_index(built):
    (built / "index.sqlite").write_bytes(b"not a database" * 100)
    with new_store(built, overwrite=True) as s:
        s.apply([upsert(DOCS[1])], [])
        s.verify()


# ---- concurrency -----------------------------------------------------------------------------


def test_second_writer_is_locked_out(built):
    with PassageStore.open(built, readonly=False) as writer:
        with pytest.raises(IndexLockedError, match="another qa index is writing"):
            PassageStore.open(built, readonly=False)
        with pytest.raises(IndexLockedError):
            PassageStore.open_or_create(built, embedder=EMBEDDER, dim=DIM, chunk_size=20, chunk_overlap=0)
        with pytest.raises(IndexLockedError):
            new_store(built, overwrite=True)
        started = time.monotonic()
        with pytest.raises(IndexLockedError):
            PassageStore.open(built, readonly=False, lock_timeout=0.2)
        assert time.monotonic() - started >= 0.15
        with PassageStore.open(built) as reader:  # readers are not blocked
            assert reader.search_bm25("Paris", 1)
        writer.apply([], ["tokyo"])
    with PassageStore.open_for_write(built) as again:
        assert "tokyo" not in again.document_hashes()
        assert not again.readonly


def test_reader_follows_writers_and_survives_a_deleted_generation(built, monkeypatch):
    reader = PassageStore.open(built)
    writer = PassageStore.open(built, readonly=False)
    try:
        writer.apply([upsert(Document("oslo", "Oslo is the capital of Norway."))], [])
        hits = reader.search_dense(embed(["Oslo is the capital of Norway."])[0], 1)
        assert hits[0].chunk.doc_id == "oslo"

        # Race: the reader's snapshot names generation N, then a writer commits N+1 and deletes
        # file N before the reader reads it. The reader must retry once and see N+1.
        real = Path.read_bytes
        raced = []

        def racing_read(path):
            if path.name.startswith("vectors.") and not raced:
                raced.append(path.name)
                writer.apply([upsert(Document("lima", "Lima is the capital of Peru."))], [])
            return real(path)

        monkeypatch.setattr(Path, "read_bytes", racing_read)
        writer.apply([], ["oslo"])
        hits = reader.search_dense(embed(["Lima is the capital of Peru."])[0], 1)
        assert raced and hits[0].chunk.doc_id == "lima"
        assert reader.manifest.generation == writer.manifest.generation
    finally:
        reader.close()
        writer.close()


def test_stray_generations_are_ignored_then_cleaned(built):
    stray = [built / "vectors.999.faiss", built / "vectors.1000.faiss.tmp", built / "index.sqlite.tmp"]
    for p in stray:
        p.write_bytes(b"junk")
    with PassageStore.open(built) as s:
        s.verify()
    assert all(p.exists() for p in stray)
    PassageStore.open(built, readonly=False).close()
    assert not any(p.exists() for p in stray)


# ---- crash safety ----------------------------------------------------------------------------

CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from qa import store as st
    from qa.schema import Document
    from test_store import upsert

    index_dir, point = sys.argv[1], sys.argv[2]
    if point != "loop":
        st._crash_hook = lambda p: os.kill(os.getpid(), signal.SIGKILL) if p == point else None
    s = st.PassageStore.open(index_dir, readonly=False)
    print("ready", flush=True)
    if point != "loop":
        s.apply([upsert(Document("a", "alpha version two, now longer than before " * 3))], ["b"])
        sys.exit(3)  # not reached: the hook kills the process
    i = 0
    while True:
        i += 1
        docs = [Document(f"d{{j}}", f"d{{j}} version {{i}}. " * (1 + (i + j) % 4)) for j in range(3)]
        docs.append(Document(f"x{{i}}", f"extra {{i}}"))
        s.apply([upsert(d) for d in docs], [f"x{{i - 1}}"])
        if i == 1:
            print("committed", flush=True)  # the random kill comes after this first change
    """
).format(tests=str(REPO / "tests"))


def _run_crash(index_dir: Path, point: str, delay: float | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(index_dir), point],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()
        if delay is not None:
            assert proc.stdout.readline().strip() == "committed", proc.stderr.read()
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_consistent(index_dir: Path) -> dict[str, str]:
    with PassageStore.open(index_dir) as s:
        s.verify()  # FAISS ids == chunk rows, FTS in step, every chunk's document exists and slices
        hashes = s.document_hashes()
        for doc_id in hashes:
            doc = s.get_document(doc_id)
            assert [c.text for c in s.chunks_of(doc_id)] == [c.text for c in chunk(doc)]
    # the next writer cleans up whatever the killed one left behind
    with PassageStore.open(index_dir, readonly=False) as s:
        current = s.manifest.faiss_file
    assert sorted(p.name for p in index_dir.glob("vectors.*")) == [current]
    assert not list(index_dir.glob("*.tmp"))
    return hashes


@pytest.mark.parametrize(
    ("point", "after"),
    [("faiss_tmp_written", False), ("faiss_replaced", False), ("rows_written", False), ("committed", True)],
)
def test_sigkill_during_apply_leaves_before_or_after(tmp_path, point, after):
    index_dir = tmp_path / "i"
    a1 = Document("a", "alpha version one")
    b = Document("b", "bravo stays until deleted")
    with new_store(index_dir) as s:
        s.apply([upsert(a1), upsert(b)], [])
        before = s.document_hashes()
    rc = _run_crash(index_dir, point)
    assert rc == -signal.SIGKILL
    hashes = _check_consistent(index_dir)
    if after:
        assert set(hashes) == {"a"} and hashes["a"] != before["a"]
    else:
        assert hashes == before


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.12])
def test_sigkill_at_random_moments_never_mixes_changes(tmp_path, delay):
    index_dir = tmp_path / "i"
    new_store(index_dir).close()
    rc = _run_crash(index_dir, "loop", delay)
    assert rc == -signal.SIGKILL
    _check_consistent(index_dir)
    with PassageStore.open(index_dir) as s:
        docs = {d: s.get_document(d).text for d in s.document_hashes()}
    assert docs  # killed after the first change at the earliest
    # one change upserts d0..d2 at version i and swaps x{i-1} for x{i}: all or nothing
    versions = {int(m) for d, t in docs.items() if d.startswith("d") for m in re.findall(r"version (\d+)", t)}
    extras = [d for d in docs if d.startswith("x")]
    assert len(versions) == 1 and sorted(docs) == ["d0", "d1", "d2", f"x{versions.pop()}"]
    assert len(extras) == 1


# ---- FTS query building ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is ISIS-K?", '"What" OR "ISIS" OR "K" OR "ISIS K"'),  # stop word "is" dropped
        ("a:b", '"b" OR "a b"'),  # a stop word survives inside the phrase
        ('say "hi"', '"say" OR "hi"'),
        ("*", ""),
        ("", ""),
        ("😀 🎉", ""),
        ("NEAR AND OR NOT", '"NEAR"'),
        ("To be or not to be", '"To" OR "be" OR "or" OR "not"'),  # nothing but stop words: keep them
        ("Paris paris PARIS", '"Paris"'),
        ("中国的首都", '"中国的首都"'),
    ],
)
def test_build_fts_query(question, expected):
    assert build_fts_query(question) == expected


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
        "",
        "😀",
        "中国的首都是哪里？",
        "col:Paris",
        "Paris*",
        "^Paris",
        "NEAR(Paris Berlin, 2)",
        "'; --",
        "\x00",
        "AND OR NOT",
        "a" * 5000,
    ],
)
def test_bm25_never_raises(built, question):
    with PassageStore.open(built) as s:
        hits = s.search_bm25(question, 5)
        assert all(h.score > 0 or h.score == pytest.approx(0) for h in hits)
        assert s.search_bm25("Paris", 5)  # the table survived "DROP TABLE"


def test_bm25_scores_are_higher_for_better_matches(built):
    with PassageStore.open(built) as s:
        hits = s.search_bm25("Berlin Wall", 5)
        assert hits[0].chunk.doc_id == "berlin"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert s.search_bm25("Berlin Wall", 0) == []
        assert s.search_bm25("Summer Olympics 1964", 1)[0].chunk.doc_id == "tokyo"


def test_bm25_folds_case_and_diacritics(tmp_path):
    with new_store(tmp_path / "i") as s:
        s.apply([upsert(Document("z", "Ein Café in Zürich, 1999 eröffnet."))], [])
        assert [h.chunk.doc_id for h in s.search_bm25("cafe ZURICH", 5)] == ["z"]
        assert [h.chunk.doc_id for h in s.search_bm25("1999", 5)] == ["z"]


def test_bm25_stems_english_words(tmp_path):
    with new_store(tmp_path / "i") as s:
        s.apply([upsert(Document("z", "Zebras were running across the plains.")),
                 upsert(Document("k", "Kelp grows in cold water."))], [])
        assert [h.chunk.doc_id for h in s.search_bm25("zebra runs on a plain", 5)] == ["z"]
        assert [h.chunk.doc_id for h in s.search_bm25("growing kelps", 5)] == ["k"]
        # a question of nothing but stop words still searches them
        assert sorted(h.chunk.doc_id for h in s.search_bm25("in the", 5)) == ["k", "z"]


def test_stats_survive_a_generation_removed_between_reading_the_manifest_and_its_file(built, monkeypatch):
    """A reader's stats() must not fail when a writer commits and removes the old FAISS file in between
    (qa serve answered 500 under eval/load_test.py): the missing file counts as 0 bytes."""
    import pathlib

    with PassageStore.open(built) as s:
        gone = built / s.manifest.faiss_file
        real_stat = pathlib.Path.stat

        def stat_after_removal(self, *a, **kw):
            if self == gone:
                raise FileNotFoundError(2, "No such file or directory", str(self))
            return real_stat(self, *a, **kw)

        real_exists = pathlib.Path.exists
        monkeypatch.setattr(pathlib.Path, "exists", lambda self, *a, **kw: self == gone or real_exists(self, *a, **kw))
        monkeypatch.setattr(pathlib.Path, "stat", stat_after_removal)
        st = s.stats()
    assert st.faiss_bytes == 0 and st.sqlite_bytes > 0 and st.documents == 3


def test_search_outlasts_a_writer_replacing_generation_after_generation(built, monkeypatch):
    """A writer deletes each generation's FAISS file once it commits the next: a reader that misses several in a
    row reads again, and only a file that stays missing is an error."""
    from qa.store import passage_store
    from qa.store.vectors import _VectorsGone

    with PassageStore.open(built) as s:
        real = PassageStore._sync_vectors
        misses = {"left": passage_store.VANISHED_RETRIES - 1}

        def flaky(self, *, force=False):
            if misses["left"] > 0:
                misses["left"] -= 1
                raise _VectorsGone()
            return real(self, force=force)

        monkeypatch.setattr(PassageStore, "_sync_vectors", flaky)
        q = embed([DOCS[0].text])[0]
        assert s.search_dense(q, 1)  # found after VANISHED_RETRIES - 1 misses
        misses["left"] = passage_store.VANISHED_RETRIES
        with pytest.raises(IndexCorruptError, match="keeps vanishing"):
            s.search_dense(q, 1)
