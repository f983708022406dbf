"""eval/written_unanswerable.py: sampling paragraphs, checking written questions, building a SQuAD v2.0 file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_eval_script

from qa.squad import load_squad


def _module():
    return load_eval_script("written_unanswerable")


CTX_A = "The bridge was opened in 1932 by the mayor, Anna Berg. It crosses the river Lune."
CTX_B = "Gomer had a son, Ashkenaz, who gave his name to a people."


@pytest.fixture()
def squad(tmp_path):
    data = {"version": "1.1", "data": [
        {"title": "Bridge", "paragraphs": [
            {"context": CTX_A, "qas": [{"id": "q1", "question": "When was the bridge opened?",
                                        "answers": [{"text": "1932", "answer_start": CTX_A.index("1932")}]}]},
            {"context": "x" * 5000, "qas": []}]},
        {"title": "Gomer", "paragraphs": [
            {"context": CTX_B, "qas": [{
                "id": "q2", "question": "Who was Gomer's son?",
                "answers": [{"text": "Ashkenaz", "answer_start": CTX_B.index("Ashkenaz")}]}]}]}]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _row(i: int, **kw) -> dict:
    row = {"id": f"w-{i}", "title": "Bridge", "paragraph": 0, "question": "When was the bridge closed?",
           "plausible_answer": "1932", "kind": "antonym"}
    row.update(kw)
    return row


def test_sample_keeps_short_paragraphs_and_is_deterministic(squad, tmp_path):
    mod = _module()
    first = mod.sample(squad, tmp_path / "a", batches=1, per_batch=10)
    again = mod.sample(squad, tmp_path / "b", batches=1, per_batch=10)
    rows = [json.loads(line) for line in first[0].read_text(encoding="utf-8").splitlines()]
    assert first[0].read_text(encoding="utf-8") == again[0].read_text(encoding="utf-8")
    assert {(r["title"], r["paragraph"]) for r in rows} == {("Bridge", 0), ("Gomer", 0)}  # the 5,000-char one left out
    assert next(r for r in rows if r["title"] == "Bridge")["answerable_questions"] == ["When was the bridge opened?"]


def test_build_writes_unanswerable_questions_with_their_plausible_answer(squad, tmp_path):
    mod = _module()
    w = _write(tmp_path / "w.jsonl", [
        _row(1),
        _row(2, title="Gomer", question="Who was Gomer's second son?", plausible_answer="Ashkenaz",
             kind="mutual exclusion")])
    n_par, n_q = mod.build(squad, tmp_path / "out.json", [w])
    assert (n_par, n_q) == (2, 2)
    articles = load_squad(tmp_path / "out.json")
    by_title = {a.title: a for a in articles}
    (q,) = by_title["Bridge"].paragraphs[0].questions
    assert by_title["Bridge"].paragraphs[0].context == CTX_A
    assert q.is_impossible and q.answers == () and q.question == "When was the bridge closed?"
    raw = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    plaus = raw["data"][0]["paragraphs"][0]["qas"][0]["plausible_answers"][0]
    assert CTX_A[plaus["answer_start"]:plaus["answer_start"] + len(plaus["text"])] == "1932"


@pytest.mark.parametrize(("row", "fault"), [
    (_row(1, plausible_answer="1933"), "not verbatim"),
    (_row(1, kind="swap"), "kind 'swap'"),
    (_row(1, question="When was the bridge opened?"), "one of the paragraph's answerable questions"),
    (_row(1, paragraph=7), "no paragraph 7"),
    (_row(1, question="When was the bridge closed"), "does not end with '?'"),
])
def test_check_names_the_line_and_the_fault(squad, tmp_path, row, fault):
    mod = _module()
    w = _write(tmp_path / "w.jsonl", [_row(0), row])
    with pytest.raises(ValueError, match=fault) as info:
        mod.read_written(w, mod._paragraphs(squad))
    assert "w.jsonl:2" in str(info.value)


def test_a_repeated_id_across_files_is_refused(squad, tmp_path):
    mod = _module()
    a = _write(tmp_path / "a.jsonl", [_row(1)])
    b = _write(tmp_path / "b.jsonl", [_row(1, question="Who closed the bridge?", plausible_answer="Anna Berg")])
    with pytest.raises(ValueError, match="also in an earlier file"):
        mod.build(squad, tmp_path / "out.json", [a, b])
