"""The CLI through CliRunner: ask (text and --json), chat driven by scripted input, eval, errors, --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, SEEDS
from typer.testing import CliRunner

from qa.cli import app
from qa.config import SHIPPED_READER_DIR

runner = CliRunner()
HAS_READER = (SHIPPED_READER_DIR / "config.json").exists()


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("cli") / "index"
    result = runner.invoke(app, ["index", str(SEEDS), "--index-dir", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "passages" in result.output
    return index_dir


def test_help_is_instant_and_imports_nothing_heavy():
    # `qa --help` itself, in a fresh process: no model library, no numpy, not even Rich is imported.
    code = (
        "import sys\nfrom qa.cli import app\ntry:\n    app(['--help'], prog_name='qa')\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'faiss', 'onnxruntime', 'numpy', 'rich', 'docx',"
        " 'charset_normalizer', 'pathspec'}\n"
        "print(sorted(heavy & set(sys.modules)), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert "Usage: qa" in out.stdout
    assert out.stderr.strip() == "[]"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("index", "ask", "chat", "eval", "status", "remove", "train-reader"):
        assert command in result.output


def test_ask_json_with_any_reader(seed_index, tiny_reader):
    result = runner.invoke(
        app,
        ["ask", "When was ISIS-K formed?", "--index-dir", str(seed_index), "--reader", str(tiny_reader),
         "--min-score", "0", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"question", "abstained", "answers", "candidates", "passages"}
    text = (SEEDS / "isis-k-moscow-attack.txt").read_text(encoding="utf-8")
    assert data["answers"] and data["passages"]  # --min-score 0: the tiny reader always answers
    for a in data["answers"]:
        assert text[a["start"] : a["end"]] == a["text"]
        assert a["text"] in a["context"]
    for p in data["passages"]:
        assert 0 <= p["start"] < p["end"] <= len(text)


@pytest.mark.parametrize("ready", [False, True])
def test_ask_builds_missing_models_under_a_status_line(seed_index, tiny_reader, monkeypatch, ready):
    """After an upgrade the first question builds the ONNX files (about 20 s): the user is told why it waits."""
    from rich.console import Console

    import qa.factory
    import qa.reader

    shown, warmed = [], []
    real_status, real_warm_up = Console.status, qa.reader.TransformersReader.warm_up
    monkeypatch.setattr(qa.factory, "models_ready", lambda settings: ready)
    monkeypatch.setattr(Console, "status", lambda self, msg, **kw: shown.append(msg) or real_status(self, msg, **kw))
    monkeypatch.setattr(qa.reader.TransformersReader, "warm_up",
                        lambda self: warmed.append(shown[:]) or real_warm_up(self))
    result = runner.invoke(
        app, ["ask", "When was ISIS-K formed?", "--index-dir", str(seed_index), "--reader", str(tiny_reader), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert shown == ([] if ready else ["Preparing the models for fast answers (once)…"])
    assert warmed and warmed[0] == shown  # when not ready, the reader is loaded inside the status


def test_ask_without_index_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["ask", "anything?", "--index-dir", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "error:" in result.stderr and "qa index" in result.stderr
    assert "Traceback" not in result.output


def test_empty_question_is_an_error(seed_index):
    result = runner.invoke(app, ["ask", "   ", "--index-dir", str(seed_index)])
    assert result.exit_code == 1 and "question is empty" in result.stderr


def test_chat_loop_scripted(seed_index, tiny_reader):
    script = "\n".join(["When was ISIS-K formed?", ":passages", ":k 2", ":k zero", ":bogus", "", "exit"]) + "\n"
    result = runner.invoke(
        app, ["chat", "--index-dir", str(seed_index), "--reader", str(tiny_reader), "--min-score", "0"], input=script
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "isis-k-moscow-attack" in out  # a citation and the passages table
    assert "Now handing 2 passages" in out
    assert "usage: :k N" in out and "unknown command" in out
    assert out.rstrip().endswith("Bye.")


def test_chat_stops_on_eof_and_reports_errors(seed_index, tiny_reader):
    from rich.console import Console

    from qa.chat import chat_loop
    from qa.errors import QuestionError

    lines = iter(["first?", "second?"])

    def read(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    def ask(question, k):
        raise QuestionError(f"cannot answer {question}")

    console = Console(record=True, width=100)
    assert chat_loop(ask, console, k=5, read=read) == 0
    text = console.export_text()
    assert "error: cannot answer first?" in text and "error: cannot answer second?" in text


def test_chat_ctrl_c_exits_cleanly():
    from rich.console import Console

    from qa.chat import chat_loop

    def read(prompt: str) -> str:
        raise KeyboardInterrupt

    console = Console(record=True)
    assert chat_loop(lambda q, k: None, console, k=5, read=read) == 0
    assert "Bye." in console.export_text()


def test_eval_gold_jsonl_through_cli(seed_index, tiny_reader, tmp_path):
    report = tmp_path / "report.csv"
    result = runner.invoke(
        app,
        ["eval", str(REPO / "eval" / "gold.jsonl"), "--index-dir", str(seed_index), "--reader", str(tiny_reader),
         "--json", "--report", str(report)],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in ("n", "exact_match", "f1", "has_answer", "no_answer", "recall_at_k", "mrr", "latency_ms", "failures"):
        assert key in summary
    assert summary["n"] >= 30 and set(summary["recall_at_k"]) == {"1", "5", "20"}
    assert report.exists() and report.read_text(encoding="utf-8").count("\n") >= summary["n"]


def test_eval_min_f1_fails_the_run(seed_index, tiny_reader):
    result = runner.invoke(
        app,
        ["eval", str(REPO / "eval" / "gold.jsonl"), "--index-dir", str(seed_index), "--reader", str(tiny_reader),
         "--min-f1", "101"],
    )
    assert result.exit_code == 1 and "below --min-f1" in result.stderr


@pytest.mark.skipif(not HAS_READER, reason="no shipped reader weights")
def test_seed_question_end_to_end_cli(seed_index):
    result = runner.invoke(app, ["ask", "When was ISIS-K formed?", "--index-dir", str(seed_index), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert not data["abstained"] and data["answers"][0]["text"] == "2015"
    result = runner.invoke(app, ["ask", "Who won the 2024 Eurovision Song Contest?", "--index-dir", str(seed_index)])
    assert result.exit_code == 0 and "No answer found in the documents" in result.stdout


def test_eval_sweep_saves_threshold_for_ask(tmp_path, tiny_reader):
    from qa.store import PassageStore

    index_dir = tmp_path / "index"
    assert runner.invoke(app, ["index", str(SEEDS), "--index-dir", str(index_dir)]).exit_code == 0
    result = runner.invoke(
        app,
        ["eval", str(REPO / "eval" / "gold.jsonl"), "--index-dir", str(index_dir), "--reader", str(tiny_reader),
         "--sweep", "--save-threshold"],
    )
    assert result.exit_code == 0, result.output
    assert "saved min_score=" in result.stderr
    with PassageStore.open(index_dir) as store:
        saved = store.get_setting("min_score")
    assert saved is not None and 0.0 <= saved <= 1.0


@pytest.mark.slow
def test_answering_imports_no_torch(seed_index):
    """With the ONNX files built, a question is answered with ONNX Runtime and tokenizers alone: a fresh process
    that opens the index and asks never imports torch, transformers or sentence-transformers."""
    from qa.config import Settings
    from qa.factory import prepare_models

    prepare_models(Settings())  # what `qa index` does once; ONNX exports into the session's model cache
    code = (
        "import sys\nfrom qa import Assistant\n"
        f"result = Assistant.open({str(seed_index)!r}).ask('When was ISIS-K formed?')\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'}\n"
        "print(result.best.text if result.best else '', sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "2015 []", out.stderr
