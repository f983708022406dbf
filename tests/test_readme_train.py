"""eval/readme_train.py: README gold questions placed in the passages `qa` retrieved for them (fake models)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import load_eval_script
from test_cli_index import fake_models  # noqa: F401 - a fixture, by name

from qa.squad import load_squad


def _module(name: str):
    return load_eval_script(name)


def test_questions_go_with_a_retrieved_passage_that_holds_their_answer(tmp_path, fake_models, monkeypatch):  # noqa: F811
    from conftest import FakeReader

    import qa.factory

    eval_dir = tmp_path / "eval"
    (eval_dir / "mini").mkdir(parents=True)
    # Markdown: the reader reads the view, where the emphasis marks around the version are gone
    (eval_dir / "mini" / "tool.md").write_text(
        "# Tool\n\nThe tool was released in **2019** by the makers of the city.\n", encoding="utf-8")
    rows = [{"id": "a", "question": "When was the tool released?", "answers": ["**2019**", "2019"], "doc_id": "tool"},
            {"id": "b", "question": "Who paints the tool?", "answers": [], "doc_id": "tool"},
            {"id": "c", "question": "Who sells the tool?", "answers": ["Tool"], "doc_id": "tool"},
            {"id": "d", "question": "Where is the manual?", "answers": ["absent words"], "doc_id": "tool"}]
    (eval_dir / "mini-gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setenv("QA_MODEL_DIR", str(tmp_path / "models"))
    reader = FakeReader()
    reader.rank_penalty = 1.5
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: reader)
    records, work = tmp_path / "records", tmp_path / "idx"
    fit = _module("fit_calibration")
    assert fit.main(["collect-gold", str(eval_dir / "mini-gold.jsonl"), "--docs", str(eval_dir / "mini"),
                     "--out", str(records / "mini.jsonl"), "--work", str(work)]) == 0

    out = tmp_path / "train.json"
    mod = _module("readme_train")
    assert mod.main([str(out), "mini", "--records", str(records), "--indexes", str(work),
                     "--eval-dir", str(eval_dir)]) == 0
    [article] = load_squad(out)
    assert article.title == "mini/tool"
    placed = {q.qid: (p.context, q) for p in article.paragraphs for q in p.questions}
    assert set(placed) == {"mini-a", "mini-b", "mini-c"}  # d's answer is in no passage: left out
    context, a = placed["mini-a"]
    assert "**" not in context and a.answers == ("2019",)  # the first gold answer found in the view
    assert context[a.answer_starts[0]:a.answer_starts[0] + 4] == "2019" and not a.is_impossible
    assert placed["mini-b"][1].is_impossible and placed["mini-b"][1].answers == ()
    assert mod.main([str(out), "other", "--records", str(records), "--indexes", str(work),
                     "--eval-dir", str(eval_dir)]) == 2  # no such gold file: a clear error, no traceback


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "x", "r", "1", "docs"], "--steps needs a positive whole number, got 'x'"),
    (["--steps", "0", "r", "1", "docs"], "--steps needs a positive whole number, got '0'"),
    (["--bogus", "1", "r", "1", "docs"], "unknown option --bogus"),
    (["--steps", "5", "--written", "2@64", "r", "1", "docs13"], "docs13 is held out"),  # options in any order
    (["--readme-weight", "0", "--steps", "3", "r", "1", "docs"], "--readme-weight 0 leaves the README questions out"),
    (["--squad-weight", "1.5", "r", "1", "docs"], "--squad-weight needs a share above 0, at most 1, got '1.5'"),
    (["--squad-weight", "0", "r", "1", "docs"], "--squad-weight needs a share above 0, at most 1, got '0'"),
    (["--squad-weight", "0.6x", "r", "1", "docs"], "--squad-weight needs a share above 0, at most 1, got '0.6x'"),
    (["--squad-weight", "0.0000", "r", "1", "docs"], "--squad-weight needs a share above 0, at most 1, got '0.0000'"),
    (["--squad-weight", "0.6", "r", "1", "docs16"], "docs16 is held out"),
    (["r", "1", "docs", "docs21"], "docs21 is held out"),
    (["r", "1", "docs22"], "docs22 is held out"),
    (["r", "1", "docs3", "docs23"], "docs23 is held out"),
    (["r", "1", "docs24"], "docs24 is held out"),
    (["r", "1", "docs2", "docs25"], "docs25 is held out"),
    (["r", "1", "docs26"], "docs26 is held out"),
    (["r", "1", "docs4", "docs27"], "docs27 is held out"),
    (["r", "1", "docs28"], "docs28 is held out"),
    (["r", "1", "docs4", "docs29"], "docs29 is held out"),
    (["r", "1", "docs", "nosuch"], "no gold file eval/nosuch-gold.jsonl"),
    (["--titled", "1.2", "r", "1", "docs"], "--titled needs a share above 0, at most 1, got '1.2'"),
    (["--learning-rate", "fast", "r", "1", "docs"], "--learning-rate needs a positive number, got 'fast'"),
    (["--base", "/nonexistent/reader", "r", "1", "docs"], "--base /nonexistent/reader holds no reader"),
    (["--teacher", "/nonexistent/reader", "r", "1", "docs"], "--teacher /nonexistent/reader holds no reader"),
])
def test_train_readme_reader_refuses_bad_arguments_before_any_work(args, message):
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run(["bash", str(root / "eval" / "train_readme_reader.sh"), *args], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2
    assert message in res.stderr
