"""eval/titled_squad.py: a SQuAD file with article titles above a share of its paragraphs, answers moved with them."""

from __future__ import annotations

import json

from conftest import load_eval_script

ts = load_eval_script("titled_squad")


def _squad() -> dict:
    paras = []
    for i in range(40):
        ctx = f"Paragraph {i} says the Super Bowl 50 game was played in Santa Clara."
        paras.append({"context": ctx, "qas": [
            {"id": f"q{i}", "question": "Where?",
             "answers": [{"text": "Santa Clara", "answer_start": ctx.index("Santa")}]},
            {"id": f"u{i}", "question": "Which game?", "is_impossible": True, "answers": [],
             "plausible_answers": [{"text": "Super Bowl 50", "answer_start": ctx.index("Super")}]}]})
    return {"version": "v2.0", "data": [{"title": "Super_Bowl_50", "paragraphs": paras}]}


def test_titled_paragraphs_keep_every_answer_at_its_body_offset():
    data = _squad()
    before = json.dumps(data)
    out, n_titled, n_all = ts.titled(data, 0.5, seed=3)
    assert json.dumps(data) == before  # the input is not changed
    assert n_all == 40 and 10 < n_titled < 30
    heads = [p["context"].startswith("Super Bowl 50\n\n") for p in out["data"][0]["paragraphs"]]
    assert sum(heads) == n_titled
    assert ts.check(out) == 80  # every answer and plausible answer is the text at its offset
    for p in out["data"][0]["paragraphs"]:
        if p["context"].startswith("Super Bowl 50\n\n"):
            # the plausible answer stays the body's "Super Bowl 50", not the title's
            start = p["qas"][1]["plausible_answers"][0]["answer_start"]
            assert start > len("Super Bowl 50\n\n")
    assert ts.titled(data, 0.5, seed=3)[0] == out  # the seed fixes the choice
    assert ts.titled(data, 0.0)[1] == 0 and ts.titled(data, 1.0)[1] == 40


def test_main_writes_the_file_and_refuses_a_bad_share(tmp_path, capsys):
    src, dst = tmp_path / "s.json", tmp_path / "out" / "t.json"
    src.write_text(json.dumps(_squad()), encoding="utf-8")
    assert ts.main([str(src), str(dst), "--share", "1"]) == 0
    assert "40 of 40 paragraphs titled; 80 answers checked" in capsys.readouterr().out
    written = json.loads(dst.read_text())["data"][0]["paragraphs"]
    assert all(p["context"].startswith("Super Bowl 50\n\n") for p in written)
    assert ts.main([str(src), str(dst), "--share", "1.5"]) == 1
    assert "--share must be between 0 and 1, got 1.5" in capsys.readouterr().err
