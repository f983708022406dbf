"""`qa index`, `qa remove` and `qa status` through the CLI: incremental runs, --prune, --rebuild, --wait, answers
that follow the documents.

The embedder is a deterministic fake (patched into qa.factory), so these tests run in seconds; the
real embedder is covered in test_robustness.py and test_cli.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from conftest import TINY_DOCS, FakeEmbedder
from typer.testing import CliRunner

import qa.factory
from qa.chunking import chunk_document
from qa.cli import app
from qa.config import Settings
from qa.schema import Document
from qa.store import PassageStore

FAKE = "fake-hash-embedder"


class NamedFakeEmbedder(FakeEmbedder):
    """The fake embedder under any name (``--embedder NAME``), counting the passages it embeds."""

    def __init__(self, name: str = FAKE) -> None:
        super().__init__()
        self.model_name = name
        self.embedded = 0

    def encode_passages(self, texts, progress=None):
        self.embedded += len(texts)
        return super().encode_passages(texts, progress)


def patch_models(target) -> list[NamedFakeEmbedder]:
    """Make qa.factory build fake embedders and query encoders; returns the list of those built.

    ``target`` is a pytest monkeypatch, or the qa.factory module itself (subprocess drivers).
    """
    made: list[NamedFakeEmbedder] = []

    def make(settings: Settings) -> NamedFakeEmbedder:
        made.append(NamedFakeEmbedder(settings.embedder or FAKE))
        return made[-1]

    def ready(settings: Settings) -> bool:
        return True  # nothing to prepare for fakes: `qa index` must not build ONNX files of the real models

    if isinstance(target, pytest.MonkeyPatch):
        target.setattr(qa.factory, "make_embedder", make)
        target.setattr(qa.factory, "make_query_encoder", make)
        target.setattr(qa.factory, "models_ready", ready, raising=False)
    else:
        target.make_embedder = make
        target.make_query_encoder = make
        target.models_ready = ready
    return made


@pytest.fixture
def fake_models(monkeypatch) -> list[NamedFakeEmbedder]:
    return patch_models(monkeypatch)


def widen_output(monkeypatch) -> None:
    """Make `qa` print its results 1000 columns wide, so that a long tmp path in the report stays on one line."""
    from rich.console import Console

    import qa.cli.common

    monkeypatch.setattr(qa.cli.common, "out", lambda: Console(width=1000))


def embedded(made: list[NamedFakeEmbedder]) -> int:
    return sum(e.embedded for e in made)


def cli(*args: str | Path, code: int | None = 0):
    """Run `qa ARGS` in-process; check the exit code and that no traceback reached the user."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if code is not None:
        assert result.exit_code == code, output
    return result


def error_line(result) -> str:
    """The one line a failed command printed on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def status(index_dir: Path) -> dict:
    return json.loads(cli("status", "-i", index_dir, "--json").stdout)


def hashes(index_dir: Path) -> dict[str, str]:
    with PassageStore.open(index_dir) as store:
        return store.document_hashes()


def expected_chunks(folder: Path) -> int:
    """Passages the files in ``folder`` make with the default settings and the fake embedder's tokens."""
    s = Settings()
    count = FakeEmbedder().count_tokens
    total = 0
    for f in sorted(folder.glob("*.txt")):
        doc = Document(f.stem, f.read_text(encoding="utf-8"))
        total += len(chunk_document(doc, size=s.chunk_size, overlap=s.chunk_overlap, count_tokens=count))
    return total


@pytest.fixture
def indexed(tmp_path, tiny_corpus, fake_models) -> tuple[Path, Path]:
    """The tiny corpus indexed through the CLI: (corpus folder, index folder)."""
    index_dir = tmp_path / "index"
    cli("index", tiny_corpus, "-i", index_dir)
    return tiny_corpus, index_dir


# ---- incremental indexing ---------------------------------------------------------------------


def test_rerun_on_unchanged_files_embeds_nothing_and_says_so(tmp_path, tiny_corpus, fake_models):
    index_dir = tmp_path / "index"
    first = cli("index", tiny_corpus, "-i", index_dir)
    assert "+4 new" in first.stdout
    assert "Nothing changed" not in first.stdout
    work = embedded(fake_models)
    assert work == expected_chunks(tiny_corpus) > 0
    generation = status(index_dir)["generation"]

    again = cli("index", tiny_corpus, "-i", index_dir)
    assert "4 unchanged" in again.stdout
    assert "0 embedded in this run" in again.stdout
    assert "Nothing changed: no embedding work was needed." in again.stdout
    assert embedded(fake_models) == work
    assert status(index_dir)["generation"] == generation  # nothing was written either


def test_changed_file_has_its_passages_replaced(indexed, fake_models):
    corpus, index_dir = indexed
    before = hashes(index_dir)
    work = embedded(fake_models)
    new_text = "Paris is the capital of France. The Louvre opened in 1793.\nIt is on the Seine."
    (corpus / "paris.txt").write_text(new_text, encoding="utf-8")

    result = cli("index", corpus, "-i", index_dir)
    assert "1 changed" in result.stdout and "3 unchanged" in result.stdout
    assert embedded(fake_models) - work == 1  # only the changed document's one passage
    after = hashes(index_dir)
    assert after["paris"] != before["paris"]
    assert {k: v for k, v in after.items() if k != "paris"} == {k: v for k, v in before.items() if k != "paris"}
    with PassageStore.open(index_dir) as store:
        store.verify()
        chunks = store.chunks_of("paris")
        assert "".join(c.text for c in chunks) == new_text  # one passage, the new text verbatim
        assert not [h for h in store.search_bm25("Eiffel", 10) if h.chunk.doc_id == "paris"]
        assert store.search_bm25("Louvre", 10)[0].chunk.doc_id == "paris"
    assert status(index_dir)["passages"] == expected_chunks(corpus)


def test_prune_removes_documents_whose_files_are_gone(indexed):
    corpus, index_dir = indexed
    (corpus / "tokyo.txt").unlink()

    kept = cli("index", corpus, "-i", index_dir)
    assert "0 removed" in kept.stdout
    assert "tokyo" in hashes(index_dir)  # without --prune a vanished file's document stays

    pruned = cli("index", corpus, "-i", index_dir, "--prune")
    assert "1 removed" in pruned.stdout
    assert sorted(hashes(index_dir)) == ["berlin", "jean", "paris"]
    info = status(index_dir)
    assert (info["documents"], info["passages"]) == (3, expected_chunks(corpus))


def test_prune_keeps_documents_indexed_from_other_folders(indexed, tmp_path):
    corpus, index_dir = indexed
    other = tmp_path / "other"
    other.mkdir()
    (other / "rome.txt").write_text("Rome is the capital of Italy.", encoding="utf-8")
    cli("index", other, "-i", index_dir, "--prune")
    assert sorted(hashes(index_dir)) == ["berlin", "jean", "paris", "rome", "tokyo"]


def test_remove_command(indexed):
    corpus, index_dir = indexed
    result = cli("remove", "berlin", "-i", index_dir)
    assert "Removed 1 document(s): berlin" in result.stdout
    assert "berlin" not in hashes(index_dir)

    again = cli("remove", "berlin", "tokyo", "-i", index_dir, code=1)
    assert "Removed 1 document(s): tokyo" in again.stdout
    assert error_line(again) == "error: not in the index: berlin"
    info = status(index_dir)
    assert (info["documents"], info["passages"]) == (2, 2)
    with PassageStore.open(index_dir) as store:
        store.verify()

    missing = cli("remove", "x", "-i", index_dir.parent / "nowhere", code=1)
    assert "no index at" in error_line(missing)


def test_status_shows_counts_models_settings_size_and_times(indexed):
    corpus, index_dir = indexed
    info = status(index_dir)
    assert info["documents"] == 4
    assert info["passages"] == expected_chunks(corpus)
    assert info["embedder"] == FAKE and info["dim"] == 64
    assert (info["chunk_size"], info["chunk_overlap"]) == (Settings().chunk_size, Settings().chunk_overlap)
    assert info["size_on_disk_mb"] > 0
    assert info["created_at"] and info["updated_at"] >= info["created_at"]
    assert {"settings", "versions", "generation"} <= set(info)

    text = cli("status", "-i", index_dir).stdout
    for word in ("documents", "passages", "embedder", FAKE, "chunk_size", "size_on_disk_mb", "created_at",
                 "updated_at"):
        assert word in text


# ---- --rebuild --------------------------------------------------------------------------------


def test_rebuild_drops_documents_not_given(indexed, fake_models):
    corpus, index_dir = indexed
    result = cli("index", corpus / "paris.txt", "-i", index_dir, "--rebuild")
    assert "Rebuilt from scratch: 1 document(s)" in result.stdout
    assert sorted(hashes(index_dir)) == ["paris"]
    with PassageStore.open(index_dir) as store:
        store.verify()


@pytest.mark.parametrize(
    ("option", "complaint"),
    [(("--embedder", "fake-other"), "was built with embedder"), (("--chunk-size", "64"), "was chunked with size")],
)
def test_other_settings_need_rebuild(indexed, option, complaint):
    corpus, index_dir = indexed
    refused = cli("index", corpus, "-i", index_dir, *option, code=1)
    line = error_line(refused)
    assert complaint in line and f"qa index --rebuild --index-dir {index_dir}" in line
    assert status(index_dir)["embedder"] == FAKE  # untouched

    cli("index", corpus, "-i", index_dir, *option, "--rebuild")
    info = status(index_dir)
    assert info["documents"] == 4
    if option[0] == "--embedder":
        assert info["embedder"] == "fake-other"
    else:
        assert info["chunk_size"] == 64
    with PassageStore.open(index_dir) as store:
        store.verify()
    cli("index", corpus, "-i", index_dir, *option)  # the new settings are now the index's own


def test_rebuild_with_nothing_readable_keeps_the_index(indexed, tmp_path):
    corpus, index_dir = indexed
    empty = tmp_path / "blank.txt"
    empty.write_text("")
    result = cli("index", empty, "-i", index_dir, "--rebuild", code=1)
    assert "no readable documents" in result.stderr
    assert len(hashes(index_dir)) == 4


# ---- one writer at a time ---------------------------------------------------------------------


def test_second_writer_gets_a_clear_message_or_waits(indexed, tiny_reader):
    corpus, index_dir = indexed
    (corpus / "rome.txt").write_text("Rome is the capital of Italy.", encoding="utf-8")
    holding, release = threading.Event(), threading.Event()

    def other_writer() -> None:  # another `qa index` in the middle of its work (SQLite wants its own thread)
        with PassageStore.open_for_write(index_dir):
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert holding.wait(30)
        locked = cli("index", corpus, "-i", index_dir, code=1)
        assert "another qa index is writing" in error_line(locked)
        assert "another qa index is writing" in error_line(cli("remove", "paris", "-i", index_dir, code=1))
        started = time.monotonic()
        cli("index", corpus, "-i", index_dir, "--wait", "0.3", code=1)
        assert time.monotonic() - started >= 0.25

        # readers keep working while the write lock is held
        assert status(index_dir)["documents"] == 4
        asked = cli("ask", "Who lives in Paris?", "-i", index_dir, "--reader", tiny_reader, "--json")
        assert json.loads(asked.stdout)["passages"]

        threading.Timer(0.3, release.set).start()
        waited = cli("index", corpus, "-i", index_dir, "--wait", "30")
        assert "+1 new" in waited.stdout
    finally:
        release.set()
        thread.join(30)
    assert "rome" in hashes(index_dir)


# ---- answers follow the documents -------------------------------------------------------------


def ask_json(index_dir: Path, reader: Path, question: str) -> dict:
    result = cli("ask", question, "-i", index_dir, "--reader", reader, "--json", "-k", "10", "--min-score", "0")
    return json.loads(result.stdout)


def check_citations(result: dict, corpus: Path) -> set[str]:
    """Every answer and passage slices back out of the current file of its document; returns the cited ids."""
    cited = set()
    for a in result["answers"]:
        text = (corpus / f"{a['doc_id']}.txt").read_text(encoding="utf-8")
        assert text[a["start"] : a["end"]] == a["text"]
        assert text[a["context_start"] : a["context_start"] + len(a["context"])] == a["context"]
        cited.add(a["doc_id"])
    for p in result["passages"]:
        text = (corpus / f"{p['doc_id']}.txt").read_text(encoding="utf-8")
        assert text[p["start"] : p["end"]] == p["text"]
        cited.add(p["doc_id"])
    return cited


# -k 10 hands every passage to the reader, so each answer checks every document's citations.
QUESTIONS = ["What is the capital of France?", "When did the Berlin Wall fall?"]


def test_answers_follow_added_changed_and_removed_documents(indexed, tiny_reader):
    corpus, index_dir = indexed

    def check(expected_docs: set[str]) -> None:
        assert set(hashes(index_dir)) == expected_docs
        assert status(index_dir)["passages"] == expected_chunks(corpus)
        for question in QUESTIONS:
            cited = check_citations(ask_json(index_dir, tiny_reader, question), corpus)
            assert cited <= expected_docs

    check(set(TINY_DOCS))

    cli("remove", "paris", "-i", index_dir)
    (corpus / "paris.txt").unlink()
    check({"berlin", "jean", "tokyo"})

    (corpus / "berlin.txt").write_text("Berlin has been the capital of Germany since 1990. " * 40, encoding="utf-8")
    (corpus / "rome.txt").write_text("Rome is the capital of Italy. The Colosseum opened in 80 AD.", encoding="utf-8")
    cli("index", corpus, "-i", index_dir)
    check({"berlin", "jean", "rome", "tokyo"})

    (corpus / "tokyo.txt").unlink()
    cli("index", corpus, "-i", index_dir, "--prune")
    check({"berlin", "jean", "rome"})


# ---- formats, encodings, exclusions: every file not indexed listed once ---------------------------------------


def test_index_lists_each_file_not_indexed_once_and_the_encodings_read(tmp_path, fake_models, monkeypatch):
    from test_loader import LATIN, make_docx

    widen_output(monkeypatch)
    docs, index_dir = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "good.txt").write_text("Paris is the capital of France.", encoding="utf-8")
    (docs / "latin.txt").write_bytes(LATIN.encode("latin-1"))
    (docs / "guide.rst").write_text("Guide\n=====\n\nThe Louvre opened in 1793.\n", encoding="utf-8")
    make_docx(docs / "owls.docx", ["Snowy Owls", "The snowy owl hunts lemmings."])
    (docs / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    (docs / "bundle.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (docs / "empty.txt").write_bytes(b"")
    (docs / "notes.log").write_text("log line", encoding="utf-8")
    for folder in ("node_modules/pkg", "drafts", "build"):
        (docs / folder).mkdir(parents=True)
        (docs / folder / "x.txt").write_text("Not a document.", encoding="utf-8")
    (docs / ".qaignore").write_text("drafts/\n", encoding="utf-8")

    result = cli("index", docs, "-i", index_dir, "--exclude", "*.log")
    assert result.stderr.strip() == ""  # nothing live on stderr: the report says it all, once
    out = result.stdout
    for name, reason in (("pic.png", "unsupported format '.png'"), ("bundle.zip", "unsupported format '.zip'"),
                         ("empty.txt", "empty file (0 bytes)")):
        assert out.count(f"{docs / name}: ") == 1
        assert f"{docs / name}: {reason}" in out
    assert f"{docs / 'latin.txt'}: read as cp1252" in out
    assert "3 folder(s) and 1 file(s)" in out  # node_modules/, drafts/, build/ and notes.log, not their files
    assert "x.txt" not in out and "notes.log" not in out
    assert sorted(hashes(index_dir)) == ["good", "guide", "latin", "owls"]
    with PassageStore.open(index_dir) as store:
        store.verify()  # every passage slices back out of its stored text
        assert store.get_document("latin").text == LATIN
        assert store.get_document("guide").text == "Guide\n=====\n\nThe Louvre opened in 1793.\n"
        assert store.get_document("owls").text == "Snowy Owls\n\nThe snowy owl hunts lemmings."


def test_index_with_a_bad_exclude_pattern_is_a_usage_error(tmp_path, tiny_corpus, fake_models):
    result = cli("index", tiny_corpus, "-i", tmp_path / "index", "--exclude", "!", code=2)
    assert error_line(result).startswith("error: invalid --exclude pattern '!'")
    assert not (tmp_path / "index").exists()


def test_index_of_a_folder_with_no_document_says_what_it_holds(tmp_path, fake_models):
    folder = tmp_path / "pics"
    (folder / "node_modules").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"PNG")
    (folder / "node_modules" / "b.txt").write_text("x", encoding="utf-8")
    line = error_line(cli("index", folder, "-i", tmp_path / "index", code=1))
    assert f"files in {folder}; 1 file(s) of other formats; 1 excluded" in line
