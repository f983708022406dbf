"""Defects found in a review of the whole package (2026-11-27), each pinned by a test: unpaired surrogates from
PDF text and the command line, clashing doc_ids, settings that follow the index, no empty index left behind,
passages longer than the embedder reads, documents changed while answering, whole-word answer matching,
--save-threshold where nothing can be saved, absolute sources for --prune; and from a second review: official
v2.0 no-answer scoring, SQuAD files with a byte-order mark, highlights after control characters, eval options
checked before any work (the training ones are in test_training.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import TINY_DOCS, FakeEmbedder
from test_cli_index import cli, error_line, fake_models, hashes  # noqa: F401 - fake_models: a fixture, by name
from test_pipeline import fake_assistant, fake_index  # noqa: F401 - the fixture, by name

import qa.loader
from qa import Settings, build_index
from qa.errors import DocumentError, EmptyCorpusError, IndexChangedError, QAError, QuestionError
from qa.evaluation import answer_in_text
from qa.indexing import follow_index, remove_documents
from qa.loader import load_document, load_documents
from qa.pipeline import check_question
from qa.render import citation
from qa.store import PassageStore


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- text that is not valid Unicode --------------------------------------------------------------------------


def test_unpaired_surrogates_from_a_pdf_become_replacement_characters(tmp_path, monkeypatch):
    # pypdf decodes a broken font map with "surrogatepass"; such text can be neither tokenized nor stored
    monkeypatch.setattr(qa.loader, "_extract_pdf", lambda path, data: "Sum \ud835 of x. Then \udc00 ends.")
    doc = load_document(write(tmp_path / "maths.pdf", "%PDF-1.4 stand-in"), "maths")
    assert doc.text == "Sum \ufffd of x. Then \ufffd ends."  # one for one: every other offset is unchanged
    doc.text.encode("utf-8")  # would raise on a surrogate


def test_a_question_with_undecodable_bytes_is_a_question_error():
    question = os.fsdecode(b"When was \xff formed?")  # what the shell hands Python for a non-UTF-8 argument
    with pytest.raises(QuestionError, match="not valid UTF-8"):
        check_question(question)


# --- loading and indexing ------------------------------------------------------------------------------------


def test_clashing_doc_ids_skip_the_second_file_and_keep_the_rest(tmp_path, fake_embedder):
    folder = tmp_path / "docs"
    write(folder / "notes.md", "Notes in Markdown.")
    write(folder / "notes.txt", "Notes in plain text.")
    write(folder / "other.txt", "Another document.")
    errors: list[DocumentError] = []
    docs = load_documents([folder], report=errors.append)
    assert [d.doc_id for d in docs] == ["notes", "other"] and docs[0].text == "Notes in Markdown."
    assert len(errors) == 1 and errors[0].path.endswith("notes.txt") and "notes.md" in errors[0].reason
    with pytest.raises(DocumentError, match="rename one"):
        load_documents([folder], on_error="stop")

    skipped: list[DocumentError] = []
    report = build_index([folder], tmp_path / "index", embedder=fake_embedder, on_skip=skipped.append)
    assert sorted(report.added) == ["notes", "other"] and len(report.skipped) == 1
    assert skipped[0].path.endswith("notes.txt")


def test_nothing_readable_leaves_no_index_behind(tmp_path, fake_embedder):
    write(tmp_path / "docs" / "empty.txt", "   ")
    skipped: list[DocumentError] = []
    with pytest.raises(EmptyCorpusError):
        build_index([tmp_path / "docs"], tmp_path / "index", embedder=fake_embedder, on_skip=skipped.append)
    assert len(skipped) == 1
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())


class ShortEmbedder(FakeEmbedder):
    max_tokens = 64


def test_passages_longer_than_the_embedder_reads_are_refused_before_an_index_exists(tmp_path, tiny_corpus):
    with pytest.raises(QAError, match="--chunk-size 62 or less"):
        build_index([tiny_corpus], tmp_path / "index", settings=Settings(chunk_size=100),
                    embedder=ShortEmbedder())
    assert not (tmp_path / "index" / "index.sqlite").exists()
    report = build_index([tiny_corpus], tmp_path / "index", settings=Settings(chunk_size=62, chunk_overlap=8),
                         embedder=ShortEmbedder())
    assert report.documents == len(TINY_DOCS)


def test_settings_follow_the_index_unless_given(tmp_path, tiny_corpus, fake_embedder):
    index_dir = tmp_path / "index"
    assert follow_index(Settings(), index_dir) == Settings()  # no index yet: unchanged
    build_index([tiny_corpus], index_dir, settings=Settings(chunk_size=40, chunk_overlap=4), embedder=fake_embedder)
    followed = follow_index(Settings(), index_dir)
    assert (followed.chunk_size, followed.chunk_overlap, followed.embedder) == (40, 4, "fake-hash-embedder")
    explicit = follow_index(Settings(chunk_size=160), index_dir, given={"chunk_size"})
    assert (explicit.chunk_size, explicit.chunk_overlap) == (160, 4)
    with pytest.raises(ValueError, match="give both --chunk-size and --overlap"):
        follow_index(Settings(chunk_overlap=50), index_dir, given={"chunk_overlap"})  # 50 >= the index's 40


def test_qa_index_adds_to_an_index_built_with_other_chunking(tmp_path, tiny_corpus, fake_models):  # noqa: F811
    index_dir = tmp_path / "index"
    cli("index", tiny_corpus, "-i", index_dir, "--chunk-size", "40", "--overlap", "4")
    write(tmp_path / "more" / "rome.txt", "Rome is the capital of Italy.")
    cli("index", tmp_path / "more", "-i", index_dir)  # no options: the index's chunking, not the defaults
    assert "rome" in hashes(index_dir)
    assert PassageStore.peek_manifest(index_dir).chunk_size == 40
    refused = cli("index", tmp_path / "more", "-i", index_dir, "--chunk-size", "80", code=1)
    assert "add --rebuild" in error_line(refused)
    cli("index", tiny_corpus, tmp_path / "more", "-i", index_dir, "--chunk-size", "80", "--rebuild")
    assert PassageStore.peek_manifest(index_dir).chunk_size == 80


def test_sources_are_absolute_and_shown_relative(tmp_path, monkeypatch, fake_embedder):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "docs" / "a.txt", "The wall fell in 1989.")
    doc = load_document(Path("docs/a.txt"), "a")
    assert doc.source == str(tmp_path / "docs" / "a.txt")
    build_index(["docs"], "index", embedder=fake_embedder)
    answer = fake_assistant(tmp_path / "index").ask("When did the wall fall?").best
    assert citation(answer).endswith(f"  {Path('docs') / 'a.txt'}")
    # --prune from another folder keeps a document whose file is still there
    monkeypatch.chdir(tmp_path / "docs")
    report = build_index(["."], tmp_path / "index", embedder=fake_embedder, prune=True)
    assert report.removed == () and sorted(hashes(tmp_path / "index")) == ["a"]


# --- answering while the index changes -------------------------------------------------------------------------


def test_a_document_removed_while_answering_is_an_index_changed_error(fake_index):  # noqa: F811
    assistant = fake_assistant(fake_index)
    hits = assistant.retrieve("When did the Berlin Wall fall?", k=2)
    assert hits[0].chunk.doc_id == "berlin"
    remove_documents(["berlin"], fake_index)  # another process, between retrieval and reading
    with pytest.raises(IndexChangedError, match="'berlin' was removed"):
        assistant.read("When did the Berlin Wall fall?", hits)
    result = assistant.ask("When did the Berlin Wall fall?", top_k=2)  # a new question sees the new index
    assert all(a.doc_id != "berlin" for a in result.answers)


def test_ask_retries_once_when_the_index_changed(fake_index, monkeypatch):  # noqa: F811
    assistant = fake_assistant(fake_index)
    real_read, calls = assistant.read, []

    def flaky_read(question, hits, **kwargs):
        calls.append(question)
        if len(calls) == 1:
            raise IndexChangedError("document 'berlin' was updated in the index while answering")
        return real_read(question, hits, **kwargs)

    monkeypatch.setattr(assistant, "read", flaky_read)
    assert assistant.ask("When did the Berlin Wall fall?").best.text == "1989"
    assert len(calls) == 2


# --- evaluation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "text", "expected"),
    [
        (["5"], "It was founded in 2015.", False),
        (["Iran"], "Iranian forces crossed.", False),
        (["Iran"], "It is active in Iran.", True),
        (["U.S."], "the U.S. army", True),
        (["$5"], "it costs $5 now", True),
        (["the Eiffel Tower"], "Eiffel Tower, finished in 1889", True),  # via SQuAD normalisation
    ],
)
def test_answer_in_text_matches_whole_words(answers, text, expected):
    assert answer_in_text(answers, text) is expected


def test_save_threshold_is_refused_where_nothing_would_be_saved(tmp_path):
    squad = write(tmp_path / "tiny.json", json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "The wall fell in 1989.", "qas": [
            {"id": "q1", "question": "When?", "answers": [{"text": "1989", "answer_start": 17}]}]}]}]}))
    for args in (["--mode", "reader"], []):
        result = cli("eval", squad, "--sweep", "--save-threshold", *args, code=2)
        assert "JSONL gold file" in result.stderr


# --- rebuilding an index built with other settings ---------------------------------------------------------------


class LockProbingEmbedder(FakeEmbedder):
    """While it embeds, another process tries to take the index's write lock; records whether it could."""

    def __init__(self, index_dir: Path) -> None:
        super().__init__()
        self.index_dir = index_dir
        self.other_writer_got_lock: bool | None = None

    def encode_passages(self, texts, progress=None):
        import subprocess
        import sys

        probe = ("import sys; from qa.store import PassageStore\n"
                 "try:\n    PassageStore.write_lock(sys.argv[1])\nexcept Exception:\n    sys.exit(3)\n")
        done = subprocess.run([sys.executable, "-c", probe, str(self.index_dir)], check=False)
        assert done.returncode in (0, 3), done  # 3: locked out; anything else is a broken probe
        self.other_writer_got_lock = done.returncode == 0
        return super().encode_passages(texts, progress)


def test_rebuilding_a_mismatched_index_holds_the_lock_while_embedding(tmp_path, tiny_corpus, fake_embedder):
    index_dir = tmp_path / "index"
    build_index([tiny_corpus], index_dir, settings=Settings(chunk_size=40, chunk_overlap=4), embedder=fake_embedder)
    probing = LockProbingEmbedder(index_dir)
    report = build_index([tiny_corpus], index_dir, settings=Settings(chunk_size=80, chunk_overlap=8),
                         embedder=probing, rebuild=True)
    assert probing.other_writer_got_lock is False
    assert report.documents == len(TINY_DOCS) and PassageStore.peek_manifest(index_dir).chunk_size == 80
    probing.encode_passages(["the same probe once the run is over"])  # control: now the probe gets the lock
    assert probing.other_writer_got_lock is True


def test_a_rebuild_with_other_chunking_is_one_change(tmp_path, tiny_corpus, fake_embedder, monkeypatch):
    from qa import store as store_module

    index_dir = tmp_path / "index"
    build_index([tiny_corpus], index_dir, settings=Settings(chunk_size=40, chunk_overlap=4), embedder=fake_embedder)
    with PassageStore.open_for_write(index_dir) as s:
        s.set_setting("min_score", 0.7)
    before = hashes(index_dir)

    def die_before_commit(point: str) -> None:
        if point == "rows_written":
            raise KeyboardInterrupt  # stands for a kill: everything before the commit is undone

    monkeypatch.setattr(store_module, "_crash_hook", die_before_commit)
    with pytest.raises(KeyboardInterrupt):
        build_index([tiny_corpus], index_dir, settings=Settings(chunk_size=80, chunk_overlap=8),
                    embedder=fake_embedder, rebuild=True)
    monkeypatch.setattr(store_module, "_crash_hook", None)
    with PassageStore.open(index_dir) as s:  # never emptied: the old index, whole
        s.verify()
        assert (s.manifest.chunk_size, s.get_setting("min_score")) == (40, 0.7) and s.document_hashes() == before

    build_index([tiny_corpus], index_dir, settings=Settings(chunk_size=40, chunk_overlap=4),
                embedder=fake_embedder, rebuild=True)
    assert PassageStore.peek_manifest(index_dir).settings == {"min_score": 0.7}  # same chunking: kept
    build_index([tiny_corpus], index_dir, settings=Settings(chunk_size=80, chunk_overlap=8),
                embedder=fake_embedder, rebuild=True)
    with PassageStore.open(index_dir) as s:
        s.verify()
        assert (s.manifest.chunk_size, s.get_setting("min_score")) == (80, None)  # chosen for the old chunks
        assert sorted(s.document_hashes()) == sorted(TINY_DOCS)


# --- second review: scoring, SQuAD files, highlighting, eval options ----------------------------------------------


def test_no_answer_scoring_follows_the_official_v2_script():
    from qa.metrics import exact_match, f1_score, max_over_gold

    assert max_over_gold(exact_match, "the", ()) == 1.0  # normalises to "": an abstention
    assert max_over_gold(f1_score, ",", ()) == 1.0
    assert max_over_gold(exact_match, "", ("a", "  ")) == 1.0  # golds that normalise to nothing are dropped
    assert max_over_gold(exact_match, "Paris", ("the", "Paris")) == 1.0


def test_a_squad_file_with_a_byte_order_mark_loads(tmp_path):
    from qa.squad import load_squad

    body = json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "The wall fell in 1989.", "qas": [
        {"id": "q", "question": "When?", "answers": [{"text": "1989", "answer_start": 17}]}]}]}]})
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert load_squad(path)[0].paragraphs[0].questions[0].answers == ("1989",)


def test_the_highlight_stays_on_the_answer_after_a_form_feed():
    from qa.render import answer_in_context
    from qa.schema import Answer, Span

    context = "Page one.\x0cThe tower\r\n was built in 1958."
    i = context.index("1958")
    text = answer_in_context(Answer("1958", 0.9, "d", Span(i, i + 4), "d#0", context, Span(i, i + 4), ""))
    assert [text.plain[s.start : s.end] for s in text.spans] == ["1958"]


@pytest.mark.parametrize(("args", "message"), [(["--mode", "retreival"], "--mode must be one of"),
                                               (["--report", "out.txt"], "must end in .jsonl or .csv")])
def test_eval_options_are_checked_before_any_work(tmp_path, args, message):
    gold = write(tmp_path / "gold.jsonl", '{"id": "q", "question": "When?", "answers": ["1989"]}\n')
    result = cli("eval", gold, "-i", tmp_path / "no-index-here", *args, code=2)  # not 1: "no index"
    assert message in result.stderr


# --- third review: settings that crashed later, windows too short for a long question ----------------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"fusion_depth": 0}, "fusion_depth"), ({"rrf_k": -1}, "rrf_k"), ({"threads": 0}, "threads"),
    ({"max_file_mb": 0}, "max_file_mb"), ({"max_answer_tokens": 0}, "max_answer_tokens"),
    ({"rank_penalty": float("nan")}, "rank_penalty"), ({"reader_max_length": 64, "reader_stride": 60}, "stride"),
])
def test_settings_refuse_values_that_would_fail_later(overrides, message):
    with pytest.raises(ValueError, match=message):
        Settings(**overrides)


def test_a_long_question_is_cut_to_fit_short_overlapping_windows(tiny_reader):
    from qa.factory import make_reader
    from qa.schema import Chunk, Hit

    reader = make_reader(Settings(reader=str(tiny_reader), reader_runtime="torch", reader_max_length=128))
    text = "The Berlin Wall fell in 1989. " * 40  # several windows overlapping by the default 96 tokens
    question = "When did the wall that divided the city of Berlin between east and west in the cold war fall? " * 2
    answers = reader.read(question, [Hit(Chunk("d#0", "d", 0, len(text), text), 1.0, 0)], max_answers=1,
                          min_score=0.0)  # the tokenizer panicked here: 28 question tokens fit, not 40
    assert len(answers) == 1 and text[answers[0].span.start : answers[0].span.end] == answers[0].text


def test_a_failed_reader_export_is_not_retried_on_every_start(tiny_reader, monkeypatch, tmp_path):
    import qa.onnx_models

    monkeypatch.setenv("QA_MODEL_DIR", str(tmp_path / "models"))  # the marker must not reach other tests
    from qa.factory import models_ready
    from qa.reader import TransformersReader
    from qa.schema import Chunk, Hit

    calls = []

    def broken_export(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("this model cannot be traced")

    monkeypatch.setattr(qa.onnx_models, "export_reader", broken_export)
    text = "The Berlin Wall fell in 1989."
    hits = [Hit(Chunk("d#0", "d", 0, len(text), text), 1.0, 0)]
    for _ in range(2):  # two starts
        reader = TransformersReader(str(tiny_reader), runtime="auto")
        assert reader.read("When?", hits, max_answers=1, min_score=0.0)
        assert reader.active_runtime == "torch"
    assert len(calls) == 1
    marker = qa.onnx_models.failed_marker(
        qa.onnx_models.cached_onnx_path(str(tiny_reader), qa.onnx_models.reader_cache_kind(False)))
    assert "cannot be traced" in marker.read_text()
    settings = Settings(reader=str(tiny_reader), embedder=str(tiny_reader))  # not a sentence embedder: no export
    assert models_ready(settings)  # so `qa ask` does not show "preparing models" each time


# --- docs against behaviour ----------------------------------------------------------------------------------------


def test_status_docs_lists_the_ids_qa_remove_needs(tmp_path, tiny_corpus, fake_models):  # noqa: F811
    index_dir = tmp_path / "index"
    cli("index", tiny_corpus, "-i", index_dir)
    listing = json.loads(cli("status", "-i", index_dir, "--docs", "--json").stdout)["document_list"]
    assert [d["doc_id"] for d in listing] == sorted(TINY_DOCS)
    assert all(d["passages"] >= 1 and d["source"].endswith(f"{d['doc_id']}.txt") for d in listing)
    assert "paris" in cli("status", "-i", index_dir, "--docs").stdout
    assert "--docs" in cli("status", "-i", index_dir).stdout  # the plain view says how to see them


def test_rebuild_needs_paths_so_it_cannot_drop_documents_for_the_demo_folder(tmp_path, tiny_corpus,
                                                                            fake_models):  # noqa: F811
    index_dir = tmp_path / "index"
    cli("index", tiny_corpus, "-i", index_dir)
    refused = cli("index", "-i", index_dir, "--rebuild", code=2)
    assert "name the files and folders" in refused.stderr
    assert sorted(hashes(index_dir)) == sorted(TINY_DOCS)


def test_a_reader_path_that_does_not_exist_says_so(tmp_path):
    from qa.errors import ModelLoadError
    from qa.reader import TransformersReader

    with pytest.raises(ModelLoadError, match="no such folder"):
        TransformersReader(str(tmp_path / "no-reader-here")).warm_up()


def test_eval_says_when_a_squad_file_ignores_the_index_dir(tmp_path, monkeypatch):
    import qa.evaluation

    monkeypatch.setattr(qa.evaluation, "evaluate_file", lambda *a, **k: (_ for _ in ()).throw(QAError("stop here")))
    squad = write(tmp_path / "tiny.json", json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": "The wall fell in 1989.", "qas": [
            {"id": "q1", "question": "When?", "answers": [{"text": "1989", "answer_start": 17}]}]}]}]}))
    result = cli("eval", squad, "-i", tmp_path / "index", code=1)
    assert "--index-dir is not used" in result.stderr and "eval-index" in result.stderr


def test_thresholds_where_scores_crowd_stay_distinct():
    from qa.render_eval import format_threshold

    shown = [format_threshold(t) for t in (0.0, 3.1e-06, 0.0004, 0.5, 0.99997, 0.9999991, 1.0)]
    assert shown == ["0.000", "3.1e-06", "4.0e-04", "0.500", "1 - 3.0e-05", "1 - 9.0e-07", "1.000"]
    assert len(set(shown)) == len(shown)


def test_evaluating_a_squad_file_indexes_its_paragraphs_once(tmp_path, tiny_reader, fake_models,  # noqa: F811
                                                            monkeypatch):
    from qa.evaluation import evaluate_file, squad_index_dir

    monkeypatch.setenv("QA_MODEL_DIR", str(tmp_path / "models"))  # the eval cache sits beside it, in tmp_path
    squad = write(tmp_path / "tiny.json", json.dumps({"data": [
        {"title": "Walls", "paragraphs": [{"context": "The Berlin Wall fell in 1989.", "qas": [
            {"id": "w1", "question": "When did the Berlin Wall fall?",
             "answers": [{"text": "1989", "answer_start": 24}]}]}]},
        {"title": "Towers", "paragraphs": [{"context": "The Eiffel Tower was finished in 1889.", "qas": [
            {"id": "t1", "question": "When was the Eiffel Tower finished?",
             "answers": [{"text": "1889", "answer_start": 33}]},
            {"id": "t2", "question": "Which tower was finished in 1889?",
             "answers": [{"text": "The Eiffel Tower", "answer_start": 0}]}]}]}]}))
    settings = Settings(reader=str(tiny_reader), reader_runtime="torch", min_score=0.0)
    summary, used = evaluate_file(squad, settings=settings)
    assert used == squad_index_dir(squad, settings) and used.is_relative_to(tmp_path)
    assert summary.n == 3 and sorted(r.qid for r in summary.rows) == ["t1", "t2", "w1"]
    assert all(r.rank == 1 for r in summary.rows)  # each question shares its words with its own paragraph
    embedded = sum(e.embedded for e in fake_models)
    assert embedded == 2  # one passage per paragraph
    only, _ = evaluate_file(squad, settings=settings, articles=["Towers"], limit=1)
    assert [r.qid for r in only.rows] == ["t1"]
    assert sum(e.embedded for e in fake_models) == embedded  # the second run embeds nothing
    rest, _ = evaluate_file(squad, settings=settings, skip_articles=["Towers"])
    assert [r.qid for r in rest.rows] == ["w1"] and all(r.rank == 1 for r in rest.rows)  # the corpus stays whole
    from qa.errors import QAError

    with pytest.raises(QAError, match="no article titled 'Tower'"):
        evaluate_file(squad, settings=settings, skip_articles=["Tower"])


@pytest.mark.parametrize("args", [["asq", "When?"], ["ask", "When?", "--top-k", "0"], ["index", "--no-such-option"]])
def test_a_mistyped_command_or_option_exits_2_with_usage(args):
    result = cli(*args, code=2)
    assert "Usage: " in result.stderr or "Usage: " in result.stdout
