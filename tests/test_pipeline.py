"""Pipeline and API: build_index + Assistant wiring, offsets of answers, settings precedence."""

from __future__ import annotations

import json

import pytest
from conftest import SEEDS, TINY_DOCS, FakeEmbedder, FakeReader
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from qa import Assistant, Settings, build_index
from qa.config import SHIPPED_READER_DIR
from qa.errors import EmptyCorpusError, IndexMismatchError, IndexNotFoundError, QuestionError
from qa.pipeline import check_question
from qa.retriever import Retriever
from qa.schema import QAResult
from qa.store import PassageStore


@pytest.fixture
def fake_index(tmp_path, tiny_corpus):
    index_dir = tmp_path / "index"
    report = build_index([tiny_corpus], index_dir, embedder=FakeEmbedder())
    assert report.documents == len(TINY_DOCS)
    return index_dir


def fake_assistant(index_dir, **overrides) -> Assistant:
    store = PassageStore.open(index_dir)
    settings = Settings().merge(retriever="bm25", **overrides)
    return Assistant(Retriever(FakeEmbedder(), store, mode="bm25"), FakeReader(), settings, store)


def test_build_index_reports_and_is_incremental(tmp_path, tiny_corpus):
    index_dir = tmp_path / "index"
    first = build_index([tiny_corpus], index_dir, embedder=FakeEmbedder())
    assert sorted(first.added) == sorted(TINY_DOCS)
    assert first.embedded_passages == first.passages > 0
    again = build_index([tiny_corpus], index_dir, embedder=FakeEmbedder())
    assert again.embedded_passages == 0 and sorted(again.unchanged) == sorted(TINY_DOCS)
    (tiny_corpus / "paris.txt").write_text("Paris hosted the Olympics in 1924 and 2024.", encoding="utf-8")
    changed = build_index([tiny_corpus], index_dir, embedder=FakeEmbedder())
    assert changed.updated == ("paris",) and changed.embedded_passages >= 1


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyCorpusError, match="no .txt"):
        build_index([tmp_path / "empty"], tmp_path / "index", embedder=FakeEmbedder())


def test_ask_cites_exact_spans(fake_index):
    assistant = fake_assistant(fake_index)
    result = assistant.ask("When did the Berlin Wall fall?", top_k=2)
    assert isinstance(result, QAResult) and not result.abstained
    best = result.best
    doc = assistant.store.get_document(best.doc_id)
    assert doc.text[best.span.start : best.span.end] == best.text
    assert best.context[best.context_span.start : best.context_span.end] == best.text
    assert len(result.hits) <= 2
    data = result.to_dict()
    assert set(data) == {"question", "abstained", "answers", "candidates", "passages"}
    assert set(data["answers"][0]) >= {"text", "score", "doc_id", "source", "start", "end", "context"}
    assert set(data["passages"][0]) >= {"doc_id", "start", "end", "score"}
    assert QAResult.from_dict(json.loads(json.dumps(data))) == result


def test_min_score_makes_it_abstain(fake_index):
    result = fake_assistant(fake_index).ask("When did the Berlin Wall fall?", min_score=0.95)
    assert result.abstained and result.answers == () and result.best is None


@pytest.mark.parametrize("question", ["", "   \n", "x" * 100_000])
def test_bad_questions(question):
    with pytest.raises(QuestionError):
        check_question(question)


def test_open_missing_index(tmp_path):
    with pytest.raises(IndexNotFoundError):
        Assistant.open(tmp_path / "nope")


def test_open_rejects_another_embedder(fake_index):
    # The index was built with the fake embedder; the default settings name MiniLM.
    with pytest.raises(IndexMismatchError, match="fake-hash-embedder"):
        Assistant.open(fake_index, Settings(embedder="sentence-transformers/all-MiniLM-L6-v2"))


def test_settings_precedence(monkeypatch):
    s = Settings.from_env(passages_k=0 + 7, min_score=0.0)
    assert s.passages_k == 7 and s.min_score == 0.0  # 0.0 is kept, not replaced by the default
    monkeypatch.setenv("QA_INDEX_DIR", "/from/env")
    assert Settings.from_env().index_dir == "/from/env"  # the environment over the default
    assert Settings.from_env(index_dir="explicit").index_dir == "explicit"  # an explicit value over both
    assert Settings.from_env(index_dir=None).index_dir == "/from/env"  # None means "not given"
    with pytest.raises(TypeError):
        Settings().merge(no_such_setting=1)
    with pytest.raises(ValueError):
        Settings(chunk_overlap=500)


def test_saved_threshold_is_used_unless_given(fake_index):
    from qa.pipeline import resolve_settings

    with PassageStore.open_for_write(fake_index) as store:
        store.set_setting("min_score", 0.25)
    with PassageStore.open(fake_index) as store:
        saved = store.get_setting("min_score")
        embedder = store.manifest.embedder
    assert resolve_settings(Settings(), embedder, saved).min_score == 0.25
    assert resolve_settings(Settings(min_score=0.7), embedder, saved).min_score == 0.7
    assert resolve_settings(Settings(), embedder, saved).embedder == "fake-hash-embedder"


def test_reader_by_path_answers_with_valid_offsets(tmp_path, tiny_corpus, tiny_reader):
    """Any QA model folder works as a reader; its (random) answers still cite exact spans."""
    from qa.factory import make_reader

    index_dir = tmp_path / "index"
    build_index([tiny_corpus], index_dir, embedder=FakeEmbedder())
    store = PassageStore.open(index_dir)
    settings = Settings(reader=str(tiny_reader), retriever="bm25")
    for runtime in ("torch", "onnx", "onnx-int8"):
        reader = make_reader(Settings(reader=str(tiny_reader), reader_runtime=runtime))
        assistant = Assistant(Retriever(FakeEmbedder(), store, mode="bm25"), reader, settings, store)
        result = assistant.ask("What is the capital of France?", min_score=0.0, max_answers=5)
        assert result.answers, runtime
        assert reader.active_runtime == runtime
        for a in result.answers:
            a.check(store.get_document(a.doc_id))
        spans = [(a.doc_id, a.span.start, a.span.end) for a in result.answers]
        assert len(spans) == len(set(spans))  # merged, never listed twice


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory):
    """The seed article indexed with the real packaged embedder."""
    index_dir = tmp_path_factory.mktemp("seed-index")
    build_index([SEEDS], index_dir)
    return index_dir


@pytest.mark.skipif(not (SHIPPED_READER_DIR / "config.json").exists(), reason="no shipped reader weights")
def test_seed_article_end_to_end_api(seed_index):
    assistant = Assistant.open(seed_index)
    result = assistant.ask("When was ISIS-K formed?")
    assert not result.abstained
    assert result.best.text == "2015"
    assert result.best.doc_id == "isis-k-moscow-attack"
    doc_text = (SEEDS / "isis-k-moscow-attack.txt").read_text(encoding="utf-8")
    assert doc_text[result.best.span.start : result.best.span.end] == "2015"
    assert assistant.ask("Who won the 2024 Eurovision Song Contest?").abstained


_PIECES = st.sampled_from(["abc", "defg", "Hij", " ", "  ", ".", ". ", "?", ",", "\n", "\r\n", "\n\n", "\t",
                           "é", "ß", "Ж", "ش", "中", "😀", "Moscow", "2015", "x" * 300])
_TEXT = st.lists(_PIECES, min_size=1, max_size=120).map("".join)


@given(text=_TEXT)
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_answers_slice_back_out_of_any_document(tiny_reader, text):
    """Whatever the document (Unicode, CRLF, one long sentence), every answer cites exact offsets."""
    from qa.chunking import chunk_document
    from qa.schema import Document, Hit

    doc = Document("gen", text)
    chunks = chunk_document(doc, size=40, overlap=8, count_tokens=FakeEmbedder().count_tokens)
    reader = _property_reader(tiny_reader)
    hits = [Hit(c, 1.0, i) for i, c in enumerate(chunks)]
    for a in reader.read("What is it?", hits, max_answers=5, min_score=0.0):
        a.check(doc)
        assert text[a.span.start : a.span.end] == a.text


_READERS: dict = {}


def _property_reader(path):
    from qa.factory import make_reader

    if path not in _READERS:
        _READERS[path] = make_reader(Settings(reader=str(path), reader_runtime="torch", reader_max_length=64,
                                              reader_stride=16))
    return _READERS[path]


def test_rank_penalty_lowers_answers_from_lower_passages(tiny_reader):
    """The same passage read at rank 0 and at rank 4: the score's logit drops by exactly penalty * ln 5."""
    import math

    from qa.factory import make_reader
    from qa.schema import Chunk, Hit
    from qa.spans import answer_score

    text = "Paris is the capital of France. It has been since the tenth century."
    chunk = Chunk("d#0", "d", 0, len(text), text)
    plain = make_reader(Settings(reader=str(tiny_reader), reader_runtime="torch", rank_penalty=0.0))
    penalised = make_reader(Settings(reader=str(tiny_reader), reader_runtime="torch", rank_penalty=1.5))

    def best(reader, rank):
        (a,) = reader.read("What is the capital of France?", [Hit(chunk, 1.0, rank)], max_answers=1, min_score=0.0)
        return a

    def logit(p):
        return math.log(p / (1 - p))

    top, low = best(penalised, 0), best(penalised, 4)
    assert top.score == pytest.approx(best(plain, 0).score) == pytest.approx(best(plain, 4).score)
    assert (top.text, top.span) == (low.text, low.span)
    assert logit(top.score) - logit(low.score) == pytest.approx(1.5 * math.log(5), abs=1e-6)
    assert answer_score(0.0, 0, 1.5) == 0.5 and answer_score(0.0, 1, 0.0) == 0.5
    with pytest.raises(ValueError, match="rank_penalty"):
        Settings(rank_penalty=-1)


def test_index_commits_in_batches_of_whole_documents(tmp_path, tiny_corpus):
    from qa.indexing import _batches

    items = [("a", [1, 2, 3]), ("b", [1]), ("c", [1, 2]), ("d", [1])]
    assert _batches(items, 3) == [[items[0]], [items[1], items[2]], [items[3]]]  # never a document split
    assert _batches(items, 100) == [items] and _batches([], 3) == []

    seen: list[tuple[str, int, int]] = []
    report = build_index([tiny_corpus], tmp_path / "index", settings=Settings(index_batch=1),
                         embedder=FakeEmbedder(), progress=lambda *a: seen.append(a))
    embeds = [(done, total) for stage, done, total in seen if stage == "embed"]
    assert embeds[-1] == (report.passages, report.passages)  # one count across batches, not one per batch
    assert [d for d, _ in embeds] == sorted(d for d, _ in embeds)
    from qa.store import PassageStore

    with PassageStore.open(tmp_path / "index") as store:
        store.verify()
        assert store.manifest.generation == len(report.added)  # one commit per document here
