"""qa bench: the benchmark runs end to end on a tiny SQuAD file (no timing assertions)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qa.bench import sample_questions
from qa.cli import app
from qa.evaluation import GoldExample

TINY_SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Paris",
            "paragraphs": [
                {
                    "context": "Paris is the capital of France. The Eiffel Tower was finished in 1889.",
                    "qas": [
                        {"id": "q1", "question": "What is the capital of France?",
                         "answers": [{"text": "Paris", "answer_start": 0}]},
                        {"id": "q2", "question": "When was the Eiffel Tower finished?",
                         "answers": [{"text": "1889", "answer_start": 65}]},
                    ],
                }
            ],
        },
        {
            "title": "Berlin",
            "paragraphs": [
                {
                    "context": "Berlin is the capital of Germany. The Berlin Wall fell in 1989.",
                    "qas": [
                        {"id": "q3", "question": "When did the Berlin Wall fall?",
                         "answers": [{"text": "1989", "answer_start": 58}]},
                    ],
                }
            ],
        },
    ],
}


def test_bench_cli_prints_table_and_writes_json(tmp_path, tiny_reader):
    squad = tmp_path / "tiny-squad.json"
    squad.write_text(json.dumps(TINY_SQUAD), encoding="utf-8")
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        ["bench", str(squad), "--reader", str(tiny_reader), "--questions", "3", "--cold-runs", "1",
         "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "| measure | value |" in result.stdout
    assert "end to end" in result.stdout

    d = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(d["machine"], str) and d["machine"]
    assert d["index"]["passages"] == 2  # two short paragraphs, one passage each
    for key in ("passages_per_s", "encode_passages_per_s"):
        assert isinstance(d["index"][key], float)
    assert set(d["latency_ms"]) >= {"p50", "p95", "embed_p50", "search_p50", "read_p50"}
    assert all(isinstance(v, float) for v in d["latency_ms"].values())
    assert isinstance(d["cold_start_s"], float)
    assert isinstance(d["peak_rss_mb"], float) and d["peak_rss_mb"] > 0
    assert d["quality"]["n"] == 3
    assert d["quality"]["recall_at_5"] == 100.0  # 2 passages: the gold one is always among the top 5
    for key in ("exact_match", "f1", "recall_at_5"):
        assert isinstance(d["quality"][key], float) and 0.0 <= d["quality"][key] <= 100.0
    assert d["top_k"] == 5 and d["retriever"] == "hybrid"
    assert d["reader_runtime"] == "onnx"


@pytest.mark.parametrize(("option", "value", "key"), [("--runtime", "torch", "reader_runtime"),
                                                       ("--calibration", "none", "calibration")])
def test_bench_passes_its_option_on(tmp_path, tiny_reader, monkeypatch, option, value, key):
    """--runtime and --calibration reach the timed questions, the fresh `qa ask` processes and the report."""
    import qa.bench

    squad = tmp_path / "tiny-squad.json"
    squad.write_text(json.dumps(TINY_SQUAD), encoding="utf-8")
    launched = []
    real = qa.bench._time_process
    monkeypatch.setattr(qa.bench, "_time_process", lambda argv: launched.append(list(argv)) or real(argv))
    result = CliRunner().invoke(
        app, ["bench", str(squad), "--reader", str(tiny_reader), option, value, "--questions", "2",
              "--cold-runs", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[key] == value
    asks = [argv for argv in launched if "ask" in argv]
    assert asks and all(argv[argv.index(option) + 1] == value for argv in asks)


def test_bench_names_a_missing_calibration_file(tmp_path, tiny_reader):
    squad = tmp_path / "tiny-squad.json"
    squad.write_text(json.dumps(TINY_SQUAD), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["bench", str(squad), "--reader", str(tiny_reader), "--calibration", str(tmp_path / "missing.json"),
              "--questions", "1", "--skip-cold-start"],
    )
    assert result.exit_code == 1 and "missing.json" in result.output


def test_sample_questions_is_deterministic_and_spread_over_articles():
    examples = [GoldExample(f"{a}{i}", f"q {a}{i}?", ("x",), f"{a}/{i % 3}") for a in "abcd" for i in range(10)]
    first = sample_questions(examples, 8, seed=1)
    assert [e.qid for e in first] == [e.qid for e in sample_questions(examples, 8, seed=1)]
    assert sorted(e.doc_id.split("/")[0] for e in first) == sorted("abcd" * 2)
    assert [e.qid for e in sample_questions(examples, 5, seed=1)] == [e.qid for e in first[:5]]
    assert len(sample_questions(examples, 100, seed=1)) == 40


def test_bench_with_bm25_times_no_query_embedding(tmp_path, tiny_reader):
    squad = tmp_path / "tiny-squad.json"
    squad.write_text(json.dumps(TINY_SQUAD), encoding="utf-8")
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app, ["bench", str(squad), "--reader", str(tiny_reader), "--retriever", "bm25", "--questions", "2",
              "--cold-runs", "1", "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "none (bm25 embeds no question)" in result.stdout
    assert json.loads(out.read_text(encoding="utf-8"))["latency_ms"]["embed_p50"] == 0.0
