"""`qa show` (and show_document), `qa ask --file`, and the messages for an empty or unfinished index."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_DOCS, FakeReader
from test_cli_index import cli, fake_models  # noqa: F401 - fake_models: a fixture, by name

import qa.factory
from qa import show_document
from qa.errors import DocumentNotFoundError, EmptyCorpusError, IndexNotFoundError, QAError
from qa.schema import Document, Span
from qa.show import excerpt, parse_span


@pytest.fixture
def fake_index(tmp_path, tiny_corpus, fake_models, monkeypatch):  # noqa: F811
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: FakeReader())
    cli("index", tiny_corpus, "--index-dir", tmp_path / "idx")
    return tmp_path / "idx"


def test_show_document_returns_the_stored_text_and_a_span_in_context(fake_index):
    whole = show_document(fake_index, "berlin")
    assert whole.text == TINY_DOCS["berlin"] and whole.span is None and whole.cited is None
    text = TINY_DOCS["berlin"]
    s = text.index("1989")
    ex = show_document(fake_index, "berlin", Span(s, s + 4), context=5)
    assert ex.cited == "1989" and ex.document.text[ex.window.start : ex.window.end] == ex.text
    assert ex.window.start <= s and ex.window.end >= s + 4
    assert ex.text.startswith("Berlin is")  # widened back to the start of the line
    with pytest.raises(DocumentNotFoundError, match="no document 'rome'.*qa status --docs"):
        show_document(fake_index, "rome")
    with pytest.raises(QAError, match=r"span \[0:999\] runs past document 'berlin'"):
        show_document(fake_index, "berlin", Span(0, 999))
    with pytest.raises(IndexNotFoundError):
        show_document(fake_index.parent / "nowhere", "berlin")


def test_excerpt_window_stays_inside_the_text():
    doc = Document("d", "line one\nline two has the answer here\nline three")
    s = doc.text.index("answer")
    ex = excerpt(doc, Span(s, s + 6), context=3)
    assert ex.text == "line two has the answer here" and ex.cited == "answer"
    assert excerpt(doc).text == doc.text


def test_parse_span():
    assert parse_span("12:40") == Span(12, 40) and parse_span("[3:3]") == Span(3, 3)
    for bad in ("12-40", "a:b", "40:12", "-1:3", ""):
        with pytest.raises(ValueError, match="START:END"):
            parse_span(bad)


def test_qa_show_cli(fake_index):
    whole = cli("show", "paris", "--index-dir", fake_index)
    assert whole.stdout == TINY_DOCS["paris"] + "\n"
    s = TINY_DOCS["paris"].index("1889")
    span = cli("show", "paris", f"{s}:{s + 4}", "--index-dir", fake_index)
    assert "1889" in span.stdout and f"paris [{s}:{s + 4}]" in span.stdout
    data = json.loads(cli("show", "paris", f"{s}:{s + 4}", "--index-dir", fake_index, "--json").stdout)
    assert data["span"] == {"start": s, "end": s + 4, "text": "1889"}
    assert TINY_DOCS["paris"][data["window"]["start"] : data["window"]["end"]] == data["text"]
    missing = cli("show", "rome", "--index-dir", fake_index, code=1)
    assert "no document 'rome'" in missing.stderr
    bad = cli("show", "paris", "5-9", "--index-dir", fake_index, code=2)
    assert "START:END" in bad.stderr


def test_ask_file_answers_every_line_as_json_lines(fake_index, tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text("When did the Berlin Wall fall?\n\n# a comment\nWhen was the Eiffel Tower finished?\n"
                         + "x" * 3000 + "\n", encoding="utf-8")
    result = cli("ask", "--file", questions, "--index-dir", fake_index, code=1)  # the 3,000-character line fails
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"][:40] for r in rows] == [
        "When did the Berlin Wall fall?", "When was the Eiffel Tower finished?", "x" * 40]
    assert rows[0]["answers"][0]["text"] == "1989" and rows[1]["answers"][0]["text"] == "1889"
    assert rows[2]["line"] == 5 and "characters long" in rows[2]["error"]
    assert "1 of 3 question(s) could not be asked" in result.stderr
    both = cli("ask", "When?", "--file", questions, "--index-dir", fake_index, code=2)
    assert "one QUESTION or --file" in both.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    assert "no questions" in cli("ask", "--file", empty, "--index-dir", fake_index, code=1).stderr


def test_an_empty_index_says_so(fake_index):
    cli("remove", "berlin", "jean", "paris", "tokyo", "--index-dir", fake_index)
    result = cli("ask", "When did the Berlin Wall fall?", "--index-dir", fake_index, code=1)
    assert "holds no documents" in result.stderr and "qa index" in result.stderr
    from qa.pipeline import Assistant

    with _closing(Assistant.open(fake_index)) as assistant:
        with pytest.raises(EmptyCorpusError, match="holds no documents"):
            assistant.ask("When did the Berlin Wall fall?")


def test_an_index_still_being_built_says_so(tmp_path):
    from filelock import FileLock

    d = tmp_path / "idx"
    d.mkdir()
    lock = FileLock(str(d / "write.lock"))
    with lock:  # a first `qa index` that has not committed yet
        with pytest.raises(IndexNotFoundError, match="still being built"):
            show_document(d, "x")
    with pytest.raises(IndexNotFoundError, match="holds no qa index"):
        show_document(d, "x")


class _closing:
    def __init__(self, obj):
        self.obj = obj

    def __enter__(self):
        return self.obj

    def __exit__(self, *exc):
        self.obj.close()
