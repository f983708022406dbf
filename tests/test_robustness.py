"""An index that survives real life, through the CLI: bad input, corruption, SIGKILL, concurrent writers, no pickle.

Most tests use the fake embedder (see test_cli_index.patch_models). Kill and concurrency tests run
`qa` in a subprocess through DRIVER, which is the real CLI with that fake embedder and a named point
(QA_TEST_STOP_AT: "embedding" or a PassageStore.apply checkpoint) where it is killed or paused.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TINY_DOCS
from test_cli_index import FAKE, check_citations, cli, error_line, hashes, patch_models, status, widen_output

import qa.factory
from qa.indexing import text_digest
from qa.pipeline import MAX_QUESTION_CHARS
from qa.store import PassageStore

TESTS = REPO / "tests"
REBUILD_HINT = "qa index --rebuild --index-dir"
LOCKED = "another qa index is writing"


@pytest.fixture
def fake_models(monkeypatch):
    widen_output(monkeypatch)  # the report of files not indexed keeps each one on one line
    return patch_models(monkeypatch)


@pytest.fixture
def indexed(tmp_path, tiny_corpus, fake_models) -> tuple[Path, Path]:
    index_dir = tmp_path / "index"
    cli("index", tiny_corpus, "-i", index_dir)
    return tiny_corpus, index_dir


def only_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def not_indexed(result, path: Path) -> str:
    """The one report line about ``path`` ("PATH: reason"): on stdout, in the final box, once; none on stderr."""
    assert result.stderr.strip() == "", result.stderr
    lines = [line for line in result.stdout.splitlines() if f"{path}: " in line]
    assert len(lines) == 1, result.stdout
    return lines[0][lines[0].index(f"{path}: ") :].rstrip(" │")


# ---- bad documents ----------------------------------------------------------------------------

BAD_FILES = {
    "empty.txt": (b"", "empty file (0 bytes)"),
    "blank.md": (b"  \n\t\r\n  ", "only whitespace"),
    "picture.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary content"),
    "noise.txt": (bytes(range(1, 256)) * 4, "no other text encoding fits"),
    "utf16.txt": ("Hello there".encode("utf-16-le"), "binary content"),  # no byte-order mark to say so
    "broken.docx": (b"PK\x03\x04 not really a zip", "cannot read DOCX"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_is_one_line_and_the_rest_is_indexed(tmp_path, tiny_corpus, fake_models, name):
    data, reason = BAD_FILES[name]
    (tiny_corpus / name).write_bytes(data)

    result = cli("index", tiny_corpus, "-i", tmp_path / "index")
    assert reason in not_indexed(result, tiny_corpus / name)
    assert sorted(hashes(tmp_path / "index")) == sorted(TINY_DOCS)

    stopped = cli("index", tiny_corpus, "-i", tmp_path / "strict", "--on-error", "stop", code=1)
    assert reason in error_line(stopped) and name in error_line(stopped)
    assert not (tmp_path / "strict").exists()  # nothing was written


def test_huge_file_is_refused_by_size_without_being_read(tmp_path, tiny_corpus, fake_models, monkeypatch):
    huge = tiny_corpus / "huge.txt"
    with open(huge, "wb") as f:
        f.truncate(600 * 2**20)  # sparse: 600 MB long, no disk used
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == huge.name:
            raise AssertionError(f"{self} was read into memory")
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = cli("index", tiny_corpus, "-i", tmp_path / "index")
    line = not_indexed(result, huge)
    assert line.startswith(f"{huge}: file too large: 600.0 MB")
    assert "50 MB limit" in line
    assert len(hashes(tmp_path / "index")) == 4


def test_one_enormous_sentence_indexes(tmp_path, fake_models):
    doc = tmp_path / "docs" / "run-on.txt"
    doc.parent.mkdir()
    text = " ".join(f"word{i % 997}" for i in range(40_000))  # ~330 KB, no punctuation at all
    doc.write_text(text, encoding="utf-8")
    cli("index", doc.parent, "-i", tmp_path / "index")  # finishing at all is the point (a quadratic split hung)
    with PassageStore.open(tmp_path / "index") as store:
        store.verify()  # every passage slices back out of the document
        chunks = store.chunks_of("run-on")
    assert len(chunks) > 100
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)


def test_missing_paths(tmp_path, tiny_corpus, fake_models):
    nowhere = tmp_path / "nowhere"
    alone = cli("index", nowhere, "-i", tmp_path / "index", code=1)
    assert error_line(alone) == f"error: {nowhere}: no such file or directory"
    assert not (tmp_path / "index").exists()

    mixed = cli("index", tiny_corpus, nowhere, "-i", tmp_path / "index")
    assert not_indexed(mixed, nowhere) == f"{nowhere}: no such file or directory"
    assert len(hashes(tmp_path / "index")) == 4

    for command in (["status"], ["ask", "Where?"], ["remove", "paris"]):
        result = cli(*command, "-i", tmp_path / "no-index", code=1)
        assert error_line(result) == f"error: no index at {tmp_path / 'no-index'}/: run `qa index` to build one"


def test_index_folder_that_is_not_an_index(tmp_path, tiny_corpus, fake_models):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("buy milk", encoding="utf-8")

    for command in (["status"], ["ask", "Where?"], ["remove", "paris"]):
        line = error_line(cli(*command, "-i", folder, code=1))
        assert "holds no qa index" in line
    for extra in ([], ["--rebuild"]):
        line = error_line(cli("index", tiny_corpus, "-i", folder, *extra, code=1))
        assert "is not empty and holds no qa index (found todo.txt)" in line
    assert os.listdir(folder) == ["todo.txt"]  # nothing created or deleted

    a_file = tmp_path / "index-file"
    a_file.write_text("x")
    for command in (["status"], ["index", str(tiny_corpus)]):
        result = cli(*command, "-i", a_file, code=None)
        assert result.exit_code in (1, 2) and "index-file" in result.stderr
    assert a_file.read_text() == "x"


# ---- bad questions, other scripts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "error: the question is empty"),
        ("  \n\t ", "error: the question is empty"),
        ("why " * 25_000, f"error: the question is 100,000 characters long; the limit is {MAX_QUESTION_CHARS:,}"),
    ],
)
def test_bad_question_is_one_line(indexed, tiny_reader, question, message):
    corpus, index_dir = indexed
    result = cli("ask", question, "-i", index_dir, "--reader", tiny_reader, code=1)
    assert error_line(result) == message


SCRIPTS = {
    "москва": "Москва — столица России. Кремль был построен в XV веке, а метро открыли в 1935 году.",
    "cairo": "القاهرة هي عاصمة مصر. بنيت الأهرامات قبل أكثر من أربعة آلاف سنة.",
    "beijing": "北京是中国的首都。故宫建于1420年，现在是一座博物馆。",
    "party": "🎉 Party time! 🐍 Python 3.12 came out in 2023 🚀, and 👩‍👩‍👧 families cheered.",
}
SCRIPT_QUESTIONS = ["Когда открыли метро в Москве?", "ما هي عاصمة مصر؟", "故宫建于哪一年？",
                    "🐍 When did Python 3.12 come out? 🚀", "🤔🤔🤔"]


@pytest.fixture
def scripts_corpus(tmp_path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name, text in SCRIPTS.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def check_scripts(corpus: Path, index_dir: Path, reader: Path) -> None:
    with PassageStore.open(index_dir) as store:
        store.verify()
        assert set(store.document_hashes()) == set(SCRIPTS)
    for question in SCRIPT_QUESTIONS:
        result = cli("ask", question, "-i", index_dir, "--reader", reader, "--json", "--min-score", "0")
        answer = json.loads(result.stdout)
        assert answer["question"] == question
        assert check_citations(answer, corpus) <= set(SCRIPTS)
    assert cli("remove", "москва", "-i", index_dir).stdout.startswith("Removed 1 document(s): москва")


def test_other_scripts_and_emoji(tmp_path, scripts_corpus, fake_models, tiny_reader):
    cli("index", scripts_corpus, "-i", tmp_path / "index")
    check_scripts(scripts_corpus, tmp_path / "index", tiny_reader)


@pytest.mark.slow
def test_other_scripts_with_the_real_embedder(tmp_path, scripts_corpus, tiny_reader, monkeypatch):
    monkeypatch.setattr(qa.factory, "models_ready", lambda settings: True, raising=False)
    cli("index", scripts_corpus, "-i", tmp_path / "index")
    assert status(tmp_path / "index")["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    check_scripts(scripts_corpus, tmp_path / "index", tiny_reader)


def test_one_enormous_sentence_with_the_real_tokenizer():
    from qa.chunking import chunk_document
    from qa.config import Settings
    from qa.schema import Document

    settings = Settings()
    count_tokens = qa.factory.make_embedder(settings).count_tokens  # tokenizers only: no model is loaded
    text = " ".join(f"слово{i % 97} 词{i % 89} word{i % 13}" for i in range(15_000))  # ~330 KB, one sentence
    chunks = chunk_document(Document("run-on", text), size=settings.chunk_size, overlap=settings.chunk_overlap,
                            count_tokens=count_tokens)
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)
    assert max(count_tokens([c.text for c in chunks])) <= settings.chunk_size


# ---- corruption -------------------------------------------------------------------------------


def _faiss_file(index_dir: Path) -> Path:
    (path,) = index_dir.glob("vectors.*.faiss")
    return path


def _damage(index_dir: Path, how: str) -> str:
    """Damage the index; returns the name of the file the message must name."""
    db = index_dir / "index.sqlite"
    if how.startswith("faiss"):
        path = _faiss_file(index_dir)
        data = path.read_bytes()
        if how == "faiss-truncated":
            path.write_bytes(data[: len(data) // 2])
        elif how == "faiss-flipped":
            path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
        else:
            path.unlink()
        return path.name
    for extra in index_dir.glob("index.sqlite-*"):
        extra.unlink()
    data = db.read_bytes()
    db.write_bytes({"sqlite-garbage": os.urandom(4096) * 4, "sqlite-truncated": data[: len(data) // 3],
                    "sqlite-empty": b""}[how])
    return db.name


@pytest.mark.parametrize(
    "how", ["faiss-truncated", "faiss-flipped", "faiss-missing", "sqlite-garbage", "sqlite-truncated", "sqlite-empty"]
)
def test_corrupt_index_is_named_with_the_way_out(indexed, tiny_reader, how):
    corpus, index_dir = indexed
    name = _damage(index_dir, how)
    for command in (["status"], ["ask", "Where is Paris?", "--reader", str(tiny_reader)], ["index", str(corpus)],
                    ["remove", "paris"]):
        line = error_line(cli(*command, "-i", index_dir, code=1))
        assert name in line and f"{REBUILD_HINT} {index_dir}" in line, line

    cli("index", corpus, "-i", index_dir, "--rebuild")
    with PassageStore.open(index_dir) as store:
        store.verify()
        assert set(store.document_hashes()) == set(TINY_DOCS)
    assert cli("ask", "Where is Paris?", "-i", index_dir, "--reader", tiny_reader).exit_code == 0


# ---- crash safety: SIGKILL in the middle of `qa index` -----------------------------------------

DRIVER = '''
import os, signal, sys, time
from pathlib import Path

sys.path.insert(0, sys.argv.pop(1))
import qa.factory
import qa.store
from test_cli_index import patch_models

STOP_AT = os.environ.get("QA_TEST_STOP_AT", "")


STOP_NTH = int(os.environ.get("QA_TEST_STOP_NTH", "1"))
REACHED = {}


def stop(point):
    REACHED[point] = REACHED.get(point, 0) + 1
    if point != STOP_AT or REACHED[point] != STOP_NTH:
        return
    if os.environ.get("QA_TEST_HOW") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    Path(os.environ["QA_TEST_MARKER"]).write_text(point)
    hold, deadline = Path(os.environ["QA_TEST_HOLD"]), time.monotonic() + 120
    while not hold.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


patch_models(qa.factory)
fake = qa.factory.make_embedder


def make_embedder(settings):
    embedder = fake(settings)
    encode = embedder.encode_passages

    def encode_passages(texts, progress=None):
        stop("embedding")
        return encode(texts, progress)

    embedder.encode_passages = encode_passages
    return embedder


qa.factory.make_embedder = make_embedder
qa.store._crash_hook = stop
from qa.cli import app

app(prog_name="qa")
'''


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("driver") / "qa_driver.py"
    path.write_text(DRIVER, encoding="utf-8")
    return path


class Run:
    """`qa ARGS` in a subprocess (real CLI, fake embedder) that stops at a named point."""

    def __init__(self, driver: Path, workdir: Path, *args, stop_at: str = "", how: str = "pause", nth: int = 1) -> None:
        self.marker = workdir / f"reached-{id(self)}"
        self.hold = workdir / "hold"
        env = {**os.environ, "PYTHONPATH": str(REPO), "QA_TEST_STOP_AT": stop_at, "QA_TEST_HOW": how,
               "QA_TEST_STOP_NTH": str(nth),
               "QA_TEST_MARKER": str(self.marker), "QA_TEST_HOLD": str(self.hold)}
        self.proc = subprocess.Popen([sys.executable, str(driver), str(TESTS), *map(str, args)], env=env, cwd=workdir,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_reached(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"qa exited with {self.proc.returncode} before its stop point: {self.proc.stderr.read()}")
            assert time.monotonic() < deadline, "qa did not reach its stop point"
            time.sleep(0.01)

    def release(self) -> None:
        self.hold.touch()

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        assert "Traceback" not in out + err
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=60)


@pytest.fixture
def runs():
    started: list[Run] = []
    yield started
    for run in started:  # never leave a child behind, whatever failed
        if run.proc.poll() is None:
            run.kill()


@pytest.fixture
def changing(indexed) -> tuple[Path, Path, dict[str, str], dict[str, str]]:
    """An index of the tiny corpus whose files then change: (corpus, index, hashes before, hashes after)."""
    corpus, index_dir = indexed
    before = hashes(index_dir)
    (corpus / "paris.txt").write_text("Paris is the capital of France. The Louvre opened in 1793.", encoding="utf-8")
    (corpus / "tokyo.txt").unlink()
    (corpus / "rome.txt").write_text("Rome is the capital of Italy. " * 30, encoding="utf-8")
    after = {f.stem: text_digest(f.read_bytes().decode("utf-8")) for f in corpus.glob("*.txt")}
    assert before != after
    return corpus, index_dir, before, after


def check_index(index_dir: Path, corpus: Path, reader: Path, *, writing: bool = False) -> dict[str, str]:
    """The index passes every integrity check and answers; returns its document hashes.

    ``writing``: another process is inside its write transaction, so skip PassageStore.verify(), whose
    FTS5 integrity check needs SQLite's write lock; opening still checks FAISS ids against the rows.
    """
    with PassageStore.open(index_dir) as store:
        if not writing:
            store.verify()  # FAISS ids == chunk rows, FTS in step, every passage slices out of its document
        docs = store.document_hashes()
        for doc_id in docs:
            text = store.get_document(doc_id).text
            assert all(text[c.char_start : c.char_end] == c.text for c in store.chunks_of(doc_id))
        assert store.stats().chunks == sum(len(store.chunks_of(d)) for d in docs)
    result = cli("ask", "What is the capital?", "-i", index_dir, "--reader", reader, "--json", "--min-score", "0")
    for cited in json.loads(result.stdout)["passages"]:
        assert cited["doc_id"] in docs
    return docs


def check_clean(index_dir: Path) -> None:
    """Only the database, the current FAISS generation and the lock file are left."""
    names = sorted(os.listdir(index_dir))
    with PassageStore.open(index_dir) as store:
        assert [n for n in names if n.endswith(".faiss")] == [store.manifest.faiss_file]
    assert not [n for n in names if n.endswith(".tmp")], names


@pytest.mark.parametrize("point", ["embedding", "faiss_tmp_written", "faiss_replaced", "rows_written", "committed"])
def test_sigkill_during_index_leaves_before_or_after_and_a_rerun_finishes(changing, driver, runs, tiny_reader,
                                                                          tmp_path, point):
    corpus, index_dir, before, after = changing
    if point == "embedding":  # killed from outside, once it is busy embedding
        run = Run(driver, tmp_path, "index", corpus, "-i", index_dir, "--prune", stop_at=point, how="pause")
        runs.append(run)
        run.wait_reached()
        run.kill()
    else:  # kills itself at that point of PassageStore.apply
        run = Run(driver, tmp_path, "index", corpus, "-i", index_dir, "--prune", stop_at=point, how="kill")
        runs.append(run)
        run.proc.communicate(timeout=60)
    assert run.proc.returncode == -signal.SIGKILL

    assert check_index(index_dir, corpus, tiny_reader) == (after if point == "committed" else before)

    rerun = cli("index", corpus, "-i", index_dir, "--prune")
    assert ("Nothing changed" in rerun.stdout) == (point == "committed")
    assert check_index(index_dir, corpus, tiny_reader) == after
    check_clean(index_dir)


@pytest.mark.parametrize("point", ["embedding", "rows_written"])
def test_sigkill_during_rebuild_for_another_embedder(indexed, driver, runs, tmp_path, tiny_reader, point):
    corpus, index_dir = indexed
    before = hashes(index_dir)
    run = Run(driver, tmp_path, "index", corpus, "-i", index_dir, "--rebuild", "--embedder", "fake-other",
              stop_at=point, how="kill")
    runs.append(run)
    run.proc.communicate(timeout=60)
    assert run.proc.returncode == -signal.SIGKILL

    docs = check_index(index_dir, corpus, tiny_reader)
    embedder = status(index_dir)["embedder"]
    # one atomic change: killed while embedding or just before the commit, the old index is whole
    assert (embedder, docs) == (FAKE, before)

    cli("index", corpus, "-i", index_dir, "--rebuild", "--embedder", "fake-other")
    assert status(index_dir)["embedder"] == "fake-other"
    assert check_index(index_dir, corpus, tiny_reader) == before
    check_clean(index_dir)


@pytest.mark.parametrize(("point", "nth"), [("embedding", 3), ("faiss_tmp_written", 2), ("rows_written", 2),
                                           ("committed", 2)])
def test_sigkill_in_a_batched_index_keeps_whole_batches_and_a_rerun_goes_on(tmp_path, fake_models, driver, runs,
                                                                            tiny_reader, point, nth):
    corpus, index_dir = tmp_path / "many", tmp_path / "index"
    corpus.mkdir()
    (corpus / "doc0.txt").write_text("City number 0 is the capital of region 0.", encoding="utf-8")
    cli("index", corpus, "-i", index_dir)
    for i in range(1, 6):  # one passage each: with --batch 1, every document is its own batch, in doc_id order
        (corpus / f"doc{i}.txt").write_text(f"City number {i} is the capital of region {i}.", encoding="utf-8")
    every = {f.stem: text_digest(f.read_text(encoding="utf-8")) for f in corpus.glob("*.txt")}
    run = Run(driver, tmp_path, "index", corpus, "-i", index_dir, "--batch", "1", stop_at=point, how="kill",
              nth=nth)
    runs.append(run)
    run.proc.communicate(timeout=60)
    assert run.proc.returncode == -signal.SIGKILL

    # the batches committed before the kill are all there, each whole, and nothing of the batch killed
    committed = nth if point == "committed" else nth - 1
    kept = check_index(index_dir, corpus, tiny_reader)
    assert kept == {f"doc{i}": every[f"doc{i}"] for i in range(committed + 1)}

    rerun = cli("index", corpus, "-i", index_dir, "--batch", "1")
    assert f"+{5 - committed} new" in rerun.stdout  # only what the killed run had not committed
    assert check_index(index_dir, corpus, tiny_reader) == every
    check_clean(index_dir)


# ---- concurrent writers and readers -----------------------------------------------------------


def test_two_concurrent_writers_one_gets_the_lock_message(changing, driver, runs, tmp_path, tiny_reader):
    corpus, index_dir, before, after = changing
    for _ in range(2):
        runs.append(Run(driver, tmp_path, "index", corpus, "-i", index_dir, "--prune", stop_at="embedding"))
    deadline = time.monotonic() + 60
    while all(r.proc.poll() is None for r in runs):
        assert time.monotonic() < deadline, "neither writer stopped"
        time.sleep(0.01)
    loser, winner = sorted(runs, key=lambda r: r.proc.poll() is None)
    code, _, err = loser.finish()
    assert code == 1
    assert only_line(err) == (
        f"error: {LOCKED} to {index_dir}; wait for it to finish or stop it, then try again (or pass --wait SECONDS)"
    )
    winner.wait_reached()

    # readers keep working while the winner writes, and see the index as it was
    assert status(index_dir)["documents"] == len(before)
    assert check_index(index_dir, corpus, tiny_reader) == before

    winner.release()
    code, out, _ = winner.finish()
    assert code == 0 and "1 changed" in out and "1 removed" in out
    assert check_index(index_dir, corpus, tiny_reader) == after
    check_clean(index_dir)


def test_waiting_writer_runs_after_the_first_and_readers_see_before(changing, driver, runs, tmp_path, tiny_reader):
    corpus, index_dir, before, after = changing
    first = Run(driver, tmp_path, "index", corpus, "-i", index_dir, "--prune", stop_at="rows_written")
    runs.append(first)
    first.wait_reached()  # paused inside its SQLite transaction, new FAISS file already written

    assert check_index(index_dir, corpus, tiny_reader, writing=True) == before
    assert status(index_dir)["documents"] == len(before)

    second = Run(driver, tmp_path, "index", corpus, "-i", index_dir, "--prune", "--wait", "60")
    runs.append(second)
    try:
        second.proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass  # still waiting for the lock, as it should
    assert second.proc.returncode is None, second.proc.stderr.read()
    first.release()
    assert first.finish()[0] == 0
    code, out, _ = second.finish()
    assert code == 0 and "Nothing changed" in out  # it ran after the first had done the work
    assert check_index(index_dir, corpus, tiny_reader) == after
    check_clean(index_dir)


# ---- nothing unsafe loaded --------------------------------------------------------------------


def test_index_folder_holds_only_sqlite_faiss_and_lock(indexed, tiny_reader):
    corpus, index_dir = indexed
    cli("ask", "Where is Paris?", "-i", index_dir, "--reader", tiny_reader)
    cli("remove", "tokyo", "-i", index_dir)
    for name in os.listdir(index_dir):
        assert re.fullmatch(r"index\.sqlite(-wal|-shm)?|vectors\.\d+\.faiss|write\.lock", name), name

    import faiss

    path = _faiss_file(index_dir)
    assert not path.read_bytes().startswith(b"\x80")  # a pickle starts with its protocol opcode
    native = faiss.read_index(str(path))  # FAISS's own format, read by FAISS alone
    assert isinstance(native, faiss.IndexIDMap2) and native.ntotal == 3

    db = sqlite3.connect(index_dir / "index.sqlite")
    try:
        for table in ("manifest", "documents", "chunks"):
            cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            for col in cols:
                kinds = {k for (k,) in db.execute(f"SELECT DISTINCT typeof({col}) FROM {table}")}
                assert kinds <= {"text", "integer"}, (table, col, kinds)
        for _, value in db.execute("SELECT key, value FROM manifest"):
            json.loads(value)
    finally:
        db.close()


def _sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in sorted((REPO / "qa").rglob("*.py"))}


def test_no_pickle_in_the_code():
    for path, src in _sources().items():
        assert not re.search(r"\bimport (c?pickle|dill|joblib|shelve)\b|\bpickle\.|allow_pickle\s*=\s*True", src), path
    vectors = (REPO / "qa" / "store" / "vectors.py").read_text(encoding="utf-8")
    assert "faiss.serialize_index" in vectors and "faiss.deserialize_index" in vectors


def test_models_are_loaded_without_remote_code_or_pickled_weights():
    for path, src in _sources().items():
        assert "trust_remote_code=True" not in src.replace(" ", ""), path
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "trust_remote_code":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value is False, (path, node.lineno)
            name = ast.unparse(node.func)
            if name.endswith("torch.load"):
                weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                assert weights_only and ast.unparse(weights_only[0].value) == "True", (path, node.lineno)
    embedding = (REPO / "qa" / "embedding.py").read_text(encoding="utf-8")
    assert "trust_remote_code=False" in embedding
