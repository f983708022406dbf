"""Tests of qa.evaluation and qa.render_eval: metrics, gold files, labels, retrieval, sweep, reports."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.console import Console

from qa.config import Settings
from qa.errors import GoldFileError, QAError
from qa.evaluation import (
    FAILURE_LABELS,
    GoldExample,
    GoldSet,
    answer_in_text,
    best_threshold,
    evaluate,
    exact_match,
    f1_score,
    load_gold,
    mean_reciprocal_rank,
    normalize_answer,
    recall_at_k,
    squad_corpus,
    sweep_thresholds,
    write_report,
)
from qa.metrics import max_over_gold
from qa.render_eval import failures_table, summary_table, sweep_table
from qa.schema import Answer, Chunk, Hit, QAResult, Span

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- fakes

DOCS = {
    "paris": "Paris is the capital of France. The Eiffel Tower was finished in 1889.",
    "jean": "My name is Jean and I live in Paris.",
    "berlin": "Berlin is the capital of Germany.",
    "rome": "Rome is the capital of Italy.",
}


def chunk(doc_id: str) -> Chunk:
    """The whole document as one chunk."""
    text = DOCS[doc_id]
    return Chunk(f"{doc_id}#0", doc_id, 0, len(text), text)


def hits(*doc_ids: str) -> tuple[Hit, ...]:
    """Hits over whole-document chunks, best first."""
    return tuple(Hit(chunk(d), 1.0 - i / 100, i) for i, d in enumerate(doc_ids))


class FakeAnswerer:
    """Retrieval and reading from tables: question -> doc ids, question -> (answer text, score).

    The reader finds the answer text in the first given passage that contains it and abstains
    when none does or the score is below ``min_score``, like the real one.
    """

    def __init__(
        self,
        retrieved: dict[str, Sequence[str]],
        answers: dict[str, tuple[str, float]],
        settings: Settings | None = None,
    ) -> None:
        self.retrieved = retrieved
        self.answers = answers
        self.settings = settings or Settings(passages_k=2, min_score=0.5)
        self.retrieve_calls: list[tuple[str, int]] = []
        self.read_calls: list[tuple[str, tuple[Hit, ...], float | None]] = []

    def retrieve(self, question: str, *, k: int) -> tuple[Hit, ...]:
        self.retrieve_calls.append((question, k))
        return hits(*self.retrieved.get(question, ()))[:k]

    def read(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        top_k: int | None = None,
        min_score: float | None = None,
    ) -> QAResult:
        self.read_calls.append((question, tuple(hits), min_score))
        threshold = self.settings.min_score if min_score is None else min_score
        spec = self.answers.get(question)
        found: list[Answer] = []
        if spec is not None and spec[1] >= threshold:
            text, score = spec
            for h in hits:
                off = h.chunk.text.find(text)
                if off >= 0:
                    start = h.chunk.char_start + off
                    found.append(
                        Answer(
                            text,
                            score,
                            h.chunk.doc_id,
                            Span(start, start + len(text)),
                            h.chunk.chunk_id,
                            h.chunk.text,
                            Span(off, off + len(text)),
                        )
                    )
                    break
        return QAResult(question, tuple(found), tuple(hits))


def gold_set(*examples: GoldExample, kind: str = "jsonl") -> GoldSet:
    return GoldSet("mem.jsonl", kind, tuple(examples))


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def good_line(qid: str = "q1", **extra: object) -> str:
    obj: dict[str, object] = {"id": qid, "question": "Who?", "answers": ["Jean"]}
    obj.update(extra)
    return json.dumps(obj)


# --------------------------------------------------------------------------- metrics (official SQuAD rules)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  An   apple\n a day ", "apple day"),
        ("U.S.A.", "usa"),
        ("Theatre of the absurd", "theatre of absurd"),  # 'the' only as a whole word
        ("the", ""),
    ],
)
def test_normalize_answer_follows_squad(raw: str, norm: str) -> None:
    assert normalize_answer(raw) == norm


def test_exact_match_ignores_case_punctuation_articles_and_whitespace() -> None:
    assert exact_match("the Eiffel  Tower.", "Eiffel tower") == 1.0
    assert exact_match("Afghanistan, Pakistan and Iran", "Afghanistan, Pakistan, and Iran") == 1.0
    assert exact_match("Eiffel Tower in Paris", "Eiffel Tower") == 0.0


def test_f1_is_token_overlap() -> None:
    # pred 2 tokens, gold 4 tokens, 2 shared: P=1, R=0.5
    assert f1_score("Eiffel Tower", "the Eiffel Tower in Paris") == pytest.approx(2 / 3)
    # repeated tokens count once each (Counter intersection): P=0.5, R=1
    assert f1_score("cat cat", "the cat") == pytest.approx(2 / 3)
    assert f1_score("Berlin", "Paris") == 0.0


def test_max_over_several_gold_answers() -> None:
    golds = ("Vladimir Putin", "President Vladimir Putin", "Putin")
    assert max_over_gold(exact_match, "putin", golds) == 1.0
    assert max_over_gold(f1_score, "President Putin", golds) == pytest.approx(0.8)


def test_empty_prediction_and_empty_gold_follow_v2() -> None:
    assert max_over_gold(exact_match, "", ()) == 1.0  # abstaining on an unanswerable question
    assert max_over_gold(f1_score, "", ()) == 1.0
    assert max_over_gold(exact_match, "Paris", ()) == 0.0  # answering it
    assert max_over_gold(f1_score, "Paris", ()) == 0.0
    assert max_over_gold(f1_score, "", ("Paris",)) == 0.0  # abstaining on an answerable one
    assert f1_score("the", "a") == 1.0  # both normalise to no tokens: v2.0 scores 1


def test_answer_in_text_whole_tokens_or_verbatim() -> None:
    assert answer_in_text(["the EIFFEL tower"], DOCS["paris"])
    assert answer_in_text(["London", "1889"], DOCS["paris"])
    assert answer_in_text(["Capital, of France!"], DOCS["paris"])  # equal after normalisation
    assert not answer_in_text(["capital of"], "the capitals of Europe")  # whole tokens only...
    assert answer_in_text(["Denver"], "the Denver's defense")  # ...unless verbatim (SQuAD sub-word spans)
    assert not answer_in_text(["London"], DOCS["paris"])


# --------------------------------------------------------------------------- JSONL gold


def test_jsonl_loads_with_blank_lines_and_unanswerable(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "g.jsonl",
        good_line("q1", doc_id="jean"),
        "",
        '{"id": "q2", "question": "Who won?", "answers": []}',
    )
    gold = load_gold(path)
    assert gold.kind == "jsonl" and gold.documents == ()
    assert gold.examples == (
        GoldExample("q1", "Who?", ("Jean",), "jean", None),
        GoldExample("q2", "Who won?", (), None, None),
    )
    assert (gold.n_answerable, gold.n_unanswerable) == (1, 1)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ('{"id": "q9", "question": "Who?", "answers": [}', ["not valid JSON"]),
        ('["q9", "Who?"]', ["expected a JSON object", "array"]),
        ('{"id": "q9", "answers": []}', ["missing field 'question'", "string"]),
        ('{"id": "q9", "question": "", "answers": []}', ["'question'", "non-empty string"]),
        ('{"id": 9, "question": "Who?", "answers": []}', ["'id'", "non-empty string", "number"]),
        ('{"id": "q9", "question": "Who?"}', ["missing field 'answers'", "list of strings"]),
        (
            '{"id": "q9", "question": "Who?", "answers": "Jean"}',
            ["'answers'", "list of strings", "got string"],
        ),
        ('{"id": "q9", "question": "Who?", "answers": ["Jean", 3]}', ["'answers' item 1", "number"]),
        ('{"id": "q9", "question": "Who?", "answers": [], "doc_id": 4}', ["'doc_id'", "number"]),
    ],
)
def test_jsonl_errors_name_the_line_and_field(tmp_path: Path, bad: str, words: list[str]) -> None:
    path = write_lines(tmp_path / "g.jsonl", good_line("q1"), "", bad, good_line("q2"))
    with pytest.raises(GoldFileError) as info:
        load_gold(path)
    err = info.value
    assert err.line == 3 and err.path == str(path)
    assert str(err).startswith(f"{path}:3: ")
    for word in words:
        assert word in err.reason


def test_jsonl_duplicate_id(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "g.jsonl", good_line("q1"), good_line("q2"), good_line("q1"))
    with pytest.raises(GoldFileError, match=r"g\.jsonl:3: duplicate id 'q1' \(first used on line 1\)"):
        load_gold(path)


def test_jsonl_empty_and_missing(tmp_path: Path) -> None:
    with pytest.raises(GoldFileError, match="no questions"):
        load_gold(write_lines(tmp_path / "g.jsonl", "", "  "))
    with pytest.raises(GoldFileError, match="file not found"):
        load_gold(tmp_path / "absent.jsonl")


# --------------------------------------------------------------------------- SQuAD gold

SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "France",
            "paragraphs": [
                {
                    "context": DOCS["paris"],
                    "qas": [
                        {
                            "id": "s1",
                            "question": "When was the Eiffel Tower finished?",
                            "answers": [{"text": "1889", "answer_start": 65}],
                            "is_impossible": False,
                        },
                        {
                            "id": "s2",
                            "question": "What is the capital of France?",
                            "answers": [{"text": "Paris", "answer_start": 0}],
                            "is_impossible": False,
                        },
                    ],
                },
                {
                    "context": DOCS["jean"],
                    "qas": [
                        {"id": "s3", "question": "Who wrote it?", "answers": [], "is_impossible": True},
                    ],
                },
            ],
        },
        {
            "title": "Germany",
            "paragraphs": [
                {
                    "context": DOCS["berlin"],
                    "qas": [
                        {
                            "id": "s4",
                            "question": "What is the capital of Germany?",
                            "answers": [{"text": "Berlin", "answer_start": 0}],
                        }
                    ],
                }
            ],
        },
    ],
}


def write_squad(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_squad_corpus_paragraphs_become_documents(tmp_path: Path) -> None:
    docs, examples = squad_corpus(write_squad(tmp_path / "s.json", SQUAD))
    assert [d.doc_id for d in docs] == ["France/0", "France/1", "Germany/0"]
    assert docs[0].text == DOCS["paris"] and docs[0].title == "France"
    assert [e.qid for e in examples] == ["s1", "s2", "s3", "s4"]
    question = "When was the Eiffel Tower finished?"
    assert examples[0] == GoldExample("s1", question, ("1889",), "France/0", DOCS["paris"])
    assert examples[2].answers == () and examples[2].doc_id == "France/1"
    gold = load_gold(tmp_path / "s.json")
    assert gold.kind == "squad" and len(gold.documents) == 3 and len(gold.examples) == 4


def test_format_sniffed_when_suffix_is_unknown(tmp_path: Path) -> None:
    assert load_gold(write_squad(tmp_path / "s.txt", SQUAD)).kind == "squad"
    assert load_gold(write_lines(tmp_path / "g.txt", good_line())).kind == "jsonl"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("{not json", "not valid JSON"),
        ({"version": "v2.0"}, "'data' list"),
        ({"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}, "paragraphs[0]: missing string 'context'"),
        (
            {
                "data": [
                    {"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q"}]}]}
                ]
            },
            "answerable question without answers",
        ),
        (
            {"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "x", "answers": []}]}]}]},
            "missing string 'question'",
        ),
        ({"data": [SQUAD["data"][1], SQUAD["data"][1]]}, "two articles are titled 'Germany'"),  # type: ignore[index]
        (
            {
                "data": [
                    {
                        "title": "T",
                        "paragraphs": [
                            {"context": "c", "qas": [{"id": "x", "question": "q", "is_impossible": True}]},
                            {"context": "d", "qas": [{"id": "x", "question": "r", "is_impossible": True}]},
                        ],
                    }
                ]
            },
            "duplicate question id 'x'",
        ),
        ({"data": []}, "no questions"),
    ],
)
def test_squad_errors(tmp_path: Path, data: object, words: str) -> None:
    path = tmp_path / "s.json"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        write_squad(path, data)
    with pytest.raises(GoldFileError) as info:
        load_gold(path)
    assert words in str(info.value)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- pipeline mode

Q_RIGHT = "When was the Eiffel Tower finished?"
Q_READER = "What is the capital of France?"
Q_ABSTAIN = "Who lives in Paris?"
Q_RETR_ANSWERED = "What is the capital of Germany?"
Q_RETR_ABSTAINED = "What is the capital of Italy?"
Q_FALSE_ANSWER = "Who won Eurovision 2024?"
Q_RIGHT_ABSTAIN = "Who painted the tower?"

LABEL_GOLD = gold_set(
    GoldExample("q1", Q_RIGHT, ("1889",), "paris"),
    GoldExample("q2", Q_READER, ("Paris",), "paris"),
    GoldExample("q3", Q_ABSTAIN, ("Jean",), "jean"),
    GoldExample("q4", Q_RETR_ANSWERED, ("Berlin",), "berlin"),
    GoldExample("q5", Q_RETR_ABSTAINED, ("Rome",), None),
    GoldExample("q6", Q_FALSE_ANSWER, ()),
    GoldExample("q7", Q_RIGHT_ABSTAIN, ()),
)


def label_answerer() -> FakeAnswerer:
    return FakeAnswerer(
        retrieved={
            Q_RIGHT: ["paris", "jean"],
            Q_READER: ["jean", "paris"],
            Q_ABSTAIN: ["jean"],
            Q_RETR_ANSWERED: ["paris", "jean", "berlin"],  # gold at rank 3, beyond passages_k=2
            Q_RETR_ABSTAINED: ["paris"],
            Q_FALSE_ANSWER: ["jean"],
            Q_RIGHT_ABSTAIN: ["paris"],
        },
        answers={
            Q_RIGHT: ("1889", 0.9),
            Q_READER: ("Jean", 0.8),
            Q_ABSTAIN: ("Jean", 0.2),
            Q_RETR_ANSWERED: ("Paris", 0.7),
            Q_FALSE_ANSWER: ("Jean", 0.7),
            Q_RIGHT_ABSTAIN: ("Paris", 0.1),
        },
    )


def test_each_failure_label_from_a_fake_answerer() -> None:
    answerer = label_answerer()
    summary = evaluate(answerer, LABEL_GOLD)
    by_id = {r.qid: r for r in summary.rows}
    assert {qid: r.label for qid, r in by_id.items()} == {
        "q1": None,
        "q2": "reader_miss",
        "q3": "false_abstention",
        "q4": "retrieval_miss",
        "q5": "retrieval_miss",
        "q6": "false_answer",
        "q7": None,
    }
    assert summary.failures == {
        "retrieval_miss": 2,
        "reader_miss": 1,
        "false_abstention": 1,
        "false_answer": 1,
    }
    assert list(summary.failures) == list(FAILURE_LABELS)
    q1, q3, q7 = by_id["q1"], by_id["q3"], by_id["q7"]
    assert (q1.prediction, q1.em, q1.f1, q1.doc_id, q1.start, q1.end) == ("1889", 1.0, 1.0, "paris", 65, 69)
    assert DOCS["paris"][q1.start : q1.end] == "1889"
    # abstained rows keep the would-be answer and its score, and score 0 (answerable) or 1 (not)
    assert (q3.prediction, q3.best_answer, q3.score, q3.em, q3.answered_em) == ("", "Jean", 0.2, 0.0, 1.0)
    assert (q7.prediction, q7.em, q7.f1) == ("", 1.0, 1.0)
    assert by_id["q5"].score is None and by_id["q5"].best_answer == ""


def test_pipeline_calls_retrieve_deep_and_reads_passages_k_with_min_score_0() -> None:
    answerer = label_answerer()
    done: list[tuple[int, int]] = []
    evaluate(answerer, LABEL_GOLD, progress=lambda i, n: done.append((i, n)))
    assert {k for _, k in answerer.retrieve_calls} == {20}
    assert all(ms == 0.0 for _, _, ms in answerer.read_calls)
    given = {q: [h.chunk.doc_id for h in hs] for q, hs, _ in answerer.read_calls}
    assert given[Q_RETR_ANSWERED] == ["paris", "jean"]
    assert done == [(i, 7) for i in range(1, 8)]
    deep = FakeAnswerer({}, {}, Settings(passages_k=30))
    evaluate(deep, gold_set(GoldExample("q1", "Who?", ("Jean",))))
    assert deep.retrieve_calls == [("Who?", 30)]


def test_summary_metrics_and_to_dict() -> None:
    summary = evaluate(label_answerer(), LABEL_GOLD)
    assert summary.threshold == 0.5  # settings.min_score
    assert summary.n == 7
    assert summary.exact_match == pytest.approx(100 * 2 / 7)
    assert summary.has_answer_n == 5 and summary.has_answer_exact_match == pytest.approx(20.0)
    assert summary.no_answer_n == 2 and summary.no_answer_accuracy == pytest.approx(50.0)
    d = summary.to_dict()
    keys = (
        "n exact_match f1 has_answer no_answer recall_at_k mrr latency_ms failures mode threshold retriever"
    )
    assert set(keys.split()) <= set(d)
    assert d["mode"] == "pipeline" and d["retriever"] == "hybrid" and d["passages_k"] == 2
    assert set(d["has_answer"]) == {"n", "exact_match", "f1"}
    assert set(d["no_answer"]) == {"n", "accuracy"}
    assert set(d["recall_at_k"]) == {"1", "5", "20"}
    assert set(d["latency_ms"]) == {"p50", "p95"} and d["latency_ms"]["p50"] >= 0
    assert "rows" not in d and len(summary.to_dict(rows=True)["rows"]) == 7
    json.dumps(summary.to_dict(rows=True))


def test_recall_and_mrr_on_constructed_hits() -> None:
    # q1: relevant at rank 1; q2: 'Paris' appears in jean (wrong doc) at 1, paris at 3; q3: never retrieved;
    # q4: unanswerable, no doc_id: not judged; q5: no doc_id, judged by answer text alone (rank 2).
    gold = gold_set(
        GoldExample("q1", "a", ("1889",), "paris"),
        GoldExample("q2", "b", ("Paris",), "paris"),
        GoldExample("q3", "c", ("Rome",), "rome"),
        GoldExample("q4", "d", ()),
        GoldExample("q5", "e", ("Germany",)),
    )
    answerer = FakeAnswerer(
        {
            "a": ["paris"],
            "b": ["jean", "berlin", "paris"],
            "c": ["paris"],
            "d": ["rome"],
            "e": ["paris", "berlin"],
        },
        {},
    )
    summary = evaluate(answerer, gold)
    assert [r.rank for r in summary.rows] == [1, 3, None, None, 2]
    assert summary.retrieval_n == 4
    assert summary.recall_at_k == pytest.approx({1: 25.0, 5: 75.0, 20: 75.0})
    assert summary.mrr == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert recall_at_k([1, 3, None], 1) == pytest.approx(100 / 3)
    assert recall_at_k([], 5) is None
    assert mean_reciprocal_rank([1, 25, None]) == pytest.approx(1 / 3)  # rank 25 is beyond the top 20


def test_threshold_and_mode_validation() -> None:
    with pytest.raises(QAError, match="threshold"):
        evaluate(label_answerer(), LABEL_GOLD, threshold=1.5)
    with pytest.raises(QAError, match="mode"):
        evaluate(label_answerer(), LABEL_GOLD, mode="oracle")
    with pytest.raises(QAError, match="reader mode needs each question's gold paragraph"):
        evaluate(label_answerer(), LABEL_GOLD, mode="reader")


# --------------------------------------------------------------------------- sweep


def sweep_case() -> tuple[FakeAnswerer, GoldSet]:
    gold = gold_set(
        GoldExample("q1", "right", ("1889",)),
        GoldExample("q2", "wrong", ("Berlin",)),
        GoldExample("q3", "unans-low", ()),
        GoldExample("q4", "unans-high", ()),
    )
    answerer = FakeAnswerer(
        {q: ["paris"] for q in ("right", "wrong", "unans-low", "unans-high")},
        {
            "right": ("1889", 0.9),
            "wrong": ("France", 0.6),
            "unans-low": ("Paris", 0.4),
            "unans-high": ("Eiffel", 0.8),
        },
    )
    return answerer, gold


def test_sweep_picks_the_threshold_maximising_f1() -> None:
    answerer, gold = sweep_case()
    summary = evaluate(answerer, gold, threshold=0.0)
    curve = sweep_thresholds(summary.rows)
    assert [t for t, *_ in curve] == [0.0, 0.4, 0.6, 0.8, 0.9, 1.0]
    assert [f1 for _, _, f1, _ in curve] == pytest.approx([25.0, 25.0, 50.0, 50.0, 75.0, 50.0])
    assert [acc for *_, acc in curve] == pytest.approx([0.0, 0.0, 50.0, 50.0, 100.0, 100.0])
    assert best_threshold(summary.rows) == 0.9
    # re-scoring needs no model calls and agrees with a fresh run at that threshold
    calls = len(answerer.read_calls)
    rescored = summary.with_threshold(0.9)
    assert len(answerer.read_calls) == calls
    fresh = evaluate(answerer, gold, threshold=0.9)
    assert rescored.f1 == pytest.approx(75.0) == fresh.f1
    labels = [None, "retrieval_miss", None, None]  # 'Berlin' is in no passage given
    assert [r.label for r in rescored.rows] == [r.label for r in fresh.rows] == labels


def test_sweep_ties_go_to_the_lowest_threshold() -> None:
    answerer, gold = sweep_case()
    rows = evaluate(answerer, gold).rows
    tied = [rows[1], rows[2]]  # wrong (0.6) and unanswerable (0.4): F1 50 at 0.6 and at 1.0
    assert [f1 for _, _, f1, _ in sweep_thresholds(tied)] == pytest.approx([0.0, 0.0, 50.0, 50.0])
    assert best_threshold(tied) == 0.6


# --------------------------------------------------------------------------- reports


def test_write_report_jsonl_and_csv(tmp_path: Path) -> None:
    summary = evaluate(label_answerer(), LABEL_GOLD)
    out = write_report(summary, tmp_path / "reports" / "gold.jsonl")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 7
    first = lines[0]
    assert first["id"] == "q1" and first["gold"] == ["1889"] and first["prediction"] == "1889"
    cited = (first["doc_id"], first["start"], first["end"])
    assert cited == ("paris", 65, 69) and (first["em"], first["label"]) == (1.0, None)
    assert lines[1]["label"] == "reader_miss"

    out = write_report(summary, tmp_path / "gold.csv")
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7
    for key in ("question", "gold", "prediction", "score", "doc_id", "start", "end", "em", "f1", "label"):
        assert key in rows[0]
    assert rows[2]["label"] == "false_abstention" and rows[2]["prediction"] == ""
    assert rows[5]["gold"] == "" and rows[0]["label"] == ""

    with pytest.raises(QAError, match=r"use \.jsonl or \.csv"):
        write_report(summary, tmp_path / "gold.txt")


# --------------------------------------------------------------------------- reader mode on SQuAD


def test_reader_mode_on_a_tiny_squad_file(tmp_path: Path) -> None:
    gold = load_gold(write_squad(tmp_path / "tiny.json", SQUAD))
    answerer = FakeAnswerer(
        {},
        {
            "When was the Eiffel Tower finished?": ("1889", 0.95),
            "What is the capital of France?": ("France", 0.7),
            "Who wrote it?": ("Jean", 0.3),
            "What is the capital of Germany?": ("Berlin", 0.4),
        },
    )
    summary = evaluate(answerer, gold, mode="reader")
    assert answerer.retrieve_calls == []
    for (_, given, min_score), ex in zip(answerer.read_calls, gold.examples, strict=True):
        assert min_score == 0.0 and len(given) == 1
        c = given[0].chunk
        assert (c.doc_id, c.char_start, c.text) == (ex.doc_id, 0, ex.context)
    assert [r.label for r in summary.rows] == [None, "reader_miss", None, "false_abstention"]
    assert summary.exact_match == pytest.approx(50.0)
    assert summary.has_answer_exact_match == pytest.approx(100 / 3)
    assert summary.no_answer_accuracy == pytest.approx(100.0)
    assert summary.recall_at_k is None and summary.mrr is None
    d = summary.to_dict()
    assert d["mode"] == "reader" and d["recall_at_k"] is None and d["retriever"] is None
    assert d["gold_kind"] == "squad"


# --------------------------------------------------------------------------- retrieval mode


class NoReadAnswerer(FakeAnswerer):
    """A FakeAnswerer whose reader must never be called."""

    def read(self, question, hits, *, top_k=None, min_score=None):  # type: ignore[override]
        raise AssertionError("retrieval mode must not call read")


RANK_GOLD = gold_set(
    GoldExample("q1", "a", ("1889",), "paris"),  # relevant at rank 1
    GoldExample("q2", "b", ("Paris",), "paris"),  # 'Paris' in jean (wrong doc) first; paris at 3
    GoldExample("q3", "c", ("Rome",), "rome"),  # never retrieved
    GoldExample("q4", "d", ()),  # unanswerable, no doc_id: not judged
    GoldExample("q5", "e", ("Germany",)),  # no doc_id: judged by answer text (rank 2)
)
RANK_RETRIEVED = {
    "a": ["paris"],
    "b": ["jean", "berlin", "paris"],
    "c": ["paris"],
    "d": ["rome"],
    "e": ["paris", "berlin"],
}


def test_retrieval_mode_ranks_without_reading() -> None:
    answerer = NoReadAnswerer(RANK_RETRIEVED, {}, Settings(passages_k=2, retriever="bm25"))
    done: list[tuple[int, int]] = []
    summary = evaluate(answerer, RANK_GOLD, mode="retrieval", progress=lambda i, n: done.append((i, n)))
    assert {k for _, k in answerer.retrieve_calls} == {20}  # 20 passages, whatever passages_k is
    assert answerer.read_calls == [] and done == [(i, 5) for i in range(1, 6)]
    assert [r.rank for r in summary.rows] == [1, 3, None, None, 2]
    assert summary.retrieval_n == 4
    assert summary.recall_at_k == pytest.approx({1: 25.0, 5: 75.0, 20: 75.0})
    assert summary.mrr == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    # the same ranks as pipeline mode on the same retrieval
    pipeline = evaluate(FakeAnswerer(RANK_RETRIEVED, {}), RANK_GOLD)
    assert [r.rank for r in pipeline.rows] == [r.rank for r in summary.rows]
    assert pipeline.recall_at_k == summary.recall_at_k and pipeline.mrr == summary.mrr
    # no reader ran: every reader metric is None, not 0
    assert summary.exact_match is None and summary.f1 is None
    assert summary.has_answer_exact_match is None and summary.has_answer_f1 is None
    assert summary.no_answer_accuracy is None and summary.failures == {}
    assert all(r.em is None and r.f1 is None and r.label is None and not r.was_read for r in summary.rows)
    assert summary.latency_p50_ms is not None and summary.latency_p50_ms >= 0
    d = summary.to_dict(rows=True)
    assert d["mode"] == "retrieval" and d["retriever"] == "bm25" and d["passages_k"] is None
    assert d["exact_match"] is None and d["f1"] is None and d["threshold"] is None
    assert d["has_answer"]["f1"] is None and d["no_answer"]["accuracy"] is None
    assert d["recall_at_k"] == {"1": 25.0, "5": 75.0, "20": 75.0} and d["retrieval_n"] == 4
    assert d["rows"][0]["em"] is None and d["rows"][0]["abstained"] is None and d["rows"][0]["rank"] == 1
    json.dumps(d)


def test_retrieval_mode_rows_cannot_be_swept_and_ignore_thresholds() -> None:
    summary = evaluate(NoReadAnswerer(RANK_RETRIEVED, {}), RANK_GOLD, mode="retrieval")
    assert summary.with_threshold(0.9).rows == summary.rows
    with pytest.raises(QAError, match="retrieval mode runs no reader"):
        sweep_thresholds(summary.rows)
    with pytest.raises(QAError, match="retrieval mode runs no reader"):
        best_threshold(summary.rows)


def test_retrieval_mode_reports_and_tables(tmp_path: Path) -> None:
    summary = evaluate(NoReadAnswerer(RANK_RETRIEVED, {}), RANK_GOLD, mode="retrieval")
    lines = write_report(summary, tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["rank"] for line in lines] == [1, 3, None, None, 2]
    with write_report(summary, tmp_path / "r.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["em"] == "" and rows[0]["f1"] == "" and rows[0]["rank"] == "1"
    console = Console(record=True, width=200)
    console.print(summary_table(summary))
    console.print(failures_table(summary.rows))
    text = console.export_text()
    assert "retrieval mode" in text and "recall@5" in text and "MRR" in text and "no reader" in text
    assert "threshold" not in text and "reader miss" not in text


def test_cli_eval_retrieval_mode_prints_none_metrics(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import qa.evaluation
    from qa.cli import app

    summary = evaluate(NoReadAnswerer(RANK_RETRIEVED, {}), RANK_GOLD, mode="retrieval")
    seen: list[str] = []

    def fake_evaluate_file(gold_path, *, settings, mode, **kwargs):
        seen.append(mode)
        return summary, None

    monkeypatch.setattr(qa.evaluation, "evaluate_file", fake_evaluate_file)
    gold = write_lines(tmp_path / "g.jsonl", good_line())
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(gold), "--mode", "retrieval", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["f1"] is None and d["recall_at_k"]["5"] == 75.0 and seen == ["retrieval"]
    result = runner.invoke(app, ["eval", str(gold), "--mode", "retrieval"])
    assert result.exit_code == 0, result.output
    assert "recall@20" in result.stdout
    for extra in (["--sweep"], ["--min-f1", "50"]):
        result = runner.invoke(app, ["eval", str(gold), "--mode", "retrieval", *extra])
        assert result.exit_code == 2 and "retrieval runs none" in result.output


# --------------------------------------------------------------------------- rendering


def test_tables_render_and_escape_markup() -> None:
    question = "What is [bold]this[/bold]?"
    gold = gold_set(GoldExample("q[1]", question, ("[red]x",)))
    answerer = FakeAnswerer({question: ["paris"]}, {question: ("Paris", 0.9)})
    summary = evaluate(answerer, gold)
    console = Console(record=True, width=200)
    console.print(summary_table(summary))
    curve = sweep_thresholds(summary.rows)
    console.print(sweep_table(curve, best_threshold(summary.rows)))
    console.print(failures_table(summary.rows))
    text = console.export_text()
    assert "What is [bold]this[/bold]?" in text and "[red]x" in text
    assert "recall@5" in text and "best F1" in text and "reader miss" in text


def test_sweep_table_thins_long_curves_but_keeps_best() -> None:
    curve = [(i / 100, 0.0, float(i == 37), None) for i in range(101)]
    console = Console(record=True, width=120)
    console.print(sweep_table(curve, 0.37, max_rows=10))
    text = console.export_text()
    assert "0.370" in text and "best F1" in text
    assert text.count("\n") < 30


# --------------------------------------------------------------------------- the shipped gold file


def test_gold_file_answers_occur_verbatim_in_the_seed_article() -> None:
    article = (ROOT / "seeds" / "isis-k-moscow-attack.txt").read_text(encoding="utf-8")
    gold = load_gold(ROOT / "eval" / "gold.jsonl")
    answerable = [e for e in gold.examples if e.answerable]
    assert len(answerable) >= 25 and gold.n_unanswerable >= 6
    assert [e.qid for e in gold.examples] == [f"q{i:02d}" for i in range(1, len(gold.examples) + 1)]
    for ex in answerable:
        assert ex.doc_id == "isis-k-moscow-attack"
        for ans in ex.answers:
            assert ans in article, f"{ex.qid}: {ans!r} is not in the article"


DOCS_GOLD = sorted(p.name.removesuffix("-gold.jsonl") for p in (ROOT / "eval").glob("docs*-gold.jsonl"))


@pytest.mark.parametrize("name", DOCS_GOLD)
def test_docs_gold_answers_occur_verbatim_in_their_documents(name: str) -> None:
    """eval/docs*-gold.jsonl ask about package READMEs (eval/docs*/); every answer is a span of its document,
    and each document's licence is kept beside it."""
    gold = load_gold(ROOT / "eval" / f"{name}-gold.jsonl")
    docs = {p.stem: p.read_text(encoding="utf-8") for p in (ROOT / "eval" / name).iterdir()}
    assert set(docs) == {p.stem for p in (ROOT / "eval" / f"{name}-licenses").iterdir()}
    answerable = [e for e in gold.examples if e.answerable]
    assert len(answerable) >= 30 and gold.n_unanswerable >= 6  # (load_gold refuses duplicate ids)
    for ex in answerable:
        assert ex.doc_id in docs, f"{ex.qid}: no document {ex.doc_id!r}"
        for ans in ex.answers:
            assert ans in docs[ex.doc_id], f"{ex.qid}: {ans!r} is not in {ex.doc_id}"
