"""The calibrated score (qa.calibration): evidence on constructed cases, monotonicity, loading tied to the reader,
the abstained result's candidates, the eval's calibration error and reliability table, and `qa eval --plot`."""

from __future__ import annotations

import json
import math

import pytest
from conftest import REPO, SEEDS
from typer.testing import CliRunner

from qa.calibration import (
    CALIBRATION_FILE,
    FEATURES,
    Calibrator,
    Evidence,
    Logistic,
    evidence,
    find_calibration,
    weights_digest,
)
from qa.cli import app
from qa.config import SHIPPED_READER_DIR, Settings
from qa.errors import CalibrationError
from qa.metrics import expected_calibration_error, reliability_bins
from qa.pipeline import Assistant
from qa.schema import Answer, Chunk, Hit, Span

runner = CliRunner()

P1 = "The Eiffel Tower was completed in 1889 in Paris. It is 330 metres tall."
P2 = "Gustave Eiffel's company built the tower, finished in 1889 for the World's Fair."
P3 = "Bananas are grown in tropical countries and eaten all over the world."


def _hit(i: int, text: str, cosine: float | None) -> Hit:
    return Hit(Chunk(f"d{i}#0", f"d{i}", 0, len(text), text), 1.0 / (1 + i), i, "", cosine)


def _answer(hit: Hit, text: str, score: float) -> Answer:
    s = hit.chunk.text.index(text)
    return Answer(text, score, hit.chunk.doc_id, Span(s, s + len(text)), hit.chunk.chunk_id, hit.chunk.text,
                  Span(s, s + len(text)), "")


def test_evidence_counts_an_answer_found_in_two_passages():
    hits = [_hit(0, P1, 0.8), _hit(1, P2, 0.6), _hit(2, P3, 0.1)]
    answers = [_answer(hits[0], "1889", 0.9), _answer(hits[2], "Bananas", 0.4)]
    ev = [e.as_dict() for e in evidence("When was the Eiffel Tower completed?", answers, hits, rank_penalty=0.0)]
    assert ev[0]["support"] == pytest.approx(math.log(2))  # "1889" stands in P1 and P2
    assert ev[1]["support"] == 0.0  # "Bananas" in P3 only: ln 1
    assert ev[0]["margin"] == pytest.approx(math.log(0.9 / 0.1))
    assert ev[0]["lead"] == pytest.approx(math.log(9) - math.log(0.4 / 0.6))
    assert ev[1]["log_rank"] == pytest.approx(math.log(3))
    assert ev[0]["passage_cosine"] == 0.8 and ev[1]["passage_cosine"] == 0.1
    assert ev[0]["top_cosine"] == ev[1]["top_cosine"] == 0.8
    assert ev[0]["type_fit"] == 1.0  # "when" -> a year
    assert ev[1]["type_fit"] == -1.0  # "when" -> no number or month
    assert ev[0]["sentence_overlap"] > 0.5  # eiffel, tower, completed are in the answer's sentence


def test_evidence_of_a_question_whose_words_are_in_no_passage():
    hits = [_hit(0, P3, 0.05)]
    answers = [_answer(hits[0], "tropical countries", 0.7)]
    (ev,) = [e.as_dict() for e in evidence("Who composed the Moonlight Sonata?", answers, hits, rank_penalty=1.5)]
    assert ev["sentence_overlap"] == 0.0 and ev["passage_overlap"] == 0.0
    assert ev["answer_in_question"] == 0.0
    assert ev["type_fit"] == -1.0  # "who" -> no capitalised word
    # rank 0: the penalty takes nothing off, so the margin is the score's logit
    assert ev["margin"] == pytest.approx(math.log(0.7 / 0.3))


def test_evidence_flags_a_question_that_negates_what_the_sentence_states():
    hits = [_hit(0, P1, 0.8)]
    answers = [_answer(hits[0], "1889", 0.9)]

    def negation(question: str, hit_list=hits, answer_list=answers) -> float:
        (ev,) = evidence(question, answer_list, hit_list, rank_penalty=0.0)
        return ev.as_dict()["negation_mismatch"]

    assert negation("When was the Eiffel Tower not completed?") == 1.0
    assert negation("When wasn't the Eiffel Tower completed?") == 1.0  # "n't" is a negation
    assert negation("When was the Eiffel Tower completed?") == 0.0
    assert negation("When was nothing completed?") == 1.0
    assert negation("Whether or not the Eiffel Tower was completed, when was it?") == 0.0  # no negation asked
    # a sentence that is negated itself answers a negated question
    negated = [_hit(0, "The tower was not finished before 1889, the year of the fair.", 0.8)]
    assert negation("When was the tower not finished?", negated, [_answer(negated[0], "1889", 0.9)]) == 0.0


def test_evidence_refuses_an_answer_from_a_passage_not_given():
    hits = [_hit(0, P1, 0.8)]
    stray = _answer(_hit(5, P2, 0.5), "1889", 0.9)
    with pytest.raises(ValueError, match="not among the hits"):
        evidence("When?", [stray], hits, rank_penalty=0.0)


def _logistic(coef: dict[str, float], intercept: float = -1.0) -> Logistic:
    n = len(FEATURES)
    return Logistic((0.0,) * n, (1.0,) * n, tuple(coef.get(f, 0.0) for f in FEATURES), intercept)


def _calibrator(coef: dict[str, float], sha: str = "0" * 64) -> Calibrator:
    model = _logistic(coef)
    return Calibrator(model, model, sha, {"reader": "test reader"})


def test_probability_is_monotone_in_each_feature_by_the_sign_of_its_weight():
    cal = _calibrator({"margin": 0.8, "support": 0.5, "top_cosine": 1.2, "log_rank": -0.4})
    base = [0.0] * len(FEATURES)

    def p(**changes):
        values = list(base)
        for name, value in changes.items():
            values[FEATURES.index(name)] = value
        return cal.probability(Evidence(tuple(values)))

    margins = [p(margin=m) for m in (-5, -1, 0, 2, 8)]
    assert margins == sorted(margins) and margins[0] < margins[-1]
    assert p(support=math.log(3)) > p(support=0.0)
    assert p(top_cosine=0.9) > p(top_cosine=0.2)
    assert p(log_rank=math.log(5)) < p(log_rank=0.0)
    assert 0.0 < p(margin=-1000) < p(margin=1000) < 1.0  # extreme evidence stays a probability
    # a feature not measured (None) counts as its fitting mean, here 0
    values = list(base)
    values[FEATURES.index("passage_cosine")] = None
    assert cal.probability(Evidence(tuple(values))) == pytest.approx(p())


def test_rescore_keeps_the_readers_best_first_and_orders_the_rest_by_probability():
    hits = [_hit(0, P1, 0.8), _hit(1, P2, 0.6), _hit(2, P3, 0.1)]
    answers = [_answer(hits[2], "Bananas", 0.95), _answer(hits[1], "Eiffel", 0.7), _answer(hits[0], "1889", 0.6)]
    cal = _calibrator({"support": 2.0, "type_fit": 2.0})
    out = cal.rescore("When was the Eiffel Tower completed?", answers, hits, rank_penalty=0.0)
    assert [a.text for a in out] == ["Bananas", "1889", "Eiffel"]
    assert all(0.0 < a.score < 1.0 for a in out)
    # "1889" fits "when" and its passage holds it: more probable than the reader's choice, which stays first
    assert out[1].score > out[0].score and out[1].score > out[2].score


def test_the_readers_best_span_and_its_other_candidates_have_their_own_regressions(tmp_path):
    hits = [_hit(0, P1, 0.8), _hit(1, P2, 0.6)]
    answers = [_answer(hits[0], "1889", 0.9), _answer(hits[1], "Eiffel", 0.7), _answer(hits[0], "Paris", 0.6)]
    # the same evidence scores 0.5 as the best span and sigmoid(-2) as another candidate
    cal = Calibrator(_logistic({}, intercept=0.0), _logistic({}, intercept=-2.0), "0" * 64, {"reader": "test"})
    out = cal.rescore("When was the Eiffel Tower completed?", answers, hits, rank_penalty=0.0)
    assert out[0].text == "1889" and out[0].score == pytest.approx(0.5)
    assert [a.score for a in out[1:]] == pytest.approx([1 / (1 + math.exp(2.0))] * 2)
    ev = Evidence((0.0,) * len(FEATURES))
    assert cal.probability(ev) == pytest.approx(0.5) and cal.probability(ev, best=False) < 0.5
    cal.save(tmp_path / "cal.json")  # both survive the JSON file
    loaded = Calibrator.load(tmp_path / "cal.json")
    assert loaded.best == cal.best and loaded.others == cal.others


def test_a_first_format_calibration_scores_every_candidate_with_its_one_regression(tmp_path):
    model = _logistic({"margin": 1.0})
    v1 = {"format": "qa-calibration/1", "features": list(FEATURES), **model.to_dict(), "reader_sha256": "0" * 64,
          "min_score": 0.1, "info": {"reader": "old"}}
    (tmp_path / "v1.json").write_text(json.dumps(v1), encoding="utf-8")
    cal = Calibrator.load(tmp_path / "v1.json")
    assert cal.best == cal.others == model and cal.min_score == 0.1


def test_the_first_candidate_decides_whether_to_answer():
    hits = [_hit(0, P1, 0.8)]
    # "1889" fits "when", "Paris" does not: the calibrator rates "1889" far above the reader's choice "Paris"
    cal = _calibrator({"type_fit": 2.0})
    assistant = Assistant(None, _ListReader([("Paris", 0.6), ("1889", 0.55)]), Settings(), calibrator=cal)
    abstained = assistant.read("When was the Eiffel Tower completed?", hits, min_score=0.5)
    assert abstained.abstained and [a.text for a in abstained.candidates] == ["Paris", "1889"]
    assert abstained.candidates[0].score < 0.5 < abstained.candidates[1].score
    answered = assistant.read("When was the Eiffel Tower completed?", hits, min_score=0.01)
    assert [a.text for a in answered.answers] == ["Paris", "1889"]


def _reader_dir(tmp_path, content: bytes = b"weights"):
    d = tmp_path / "reader"
    d.mkdir()
    (d / "model.safetensors").write_bytes(content)
    return d


def test_calibration_loads_only_for_the_reader_it_was_fitted_for(tmp_path):
    reader = _reader_dir(tmp_path)
    path = tmp_path / "cal.json"
    _calibrator({"margin": 1.0}, sha=weights_digest(reader)).save(path)
    loaded = Calibrator.load(path, reader)
    assert loaded.best.coef[FEATURES.index("margin")] == 1.0
    (reader / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(CalibrationError, match="fitted for test reader.*refit it"):
        Calibrator.load(path, reader)


def test_calibration_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CalibrationError, match="bad.json cannot be read"):
        Calibrator.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something else"}), encoding="utf-8")
    with pytest.raises(CalibrationError, match="is not a qa-calibration"):
        Calibrator.load(other)
    with pytest.raises(CalibrationError, match="does not exist"):
        Calibrator.load(tmp_path / "missing.json")
    old = _calibrator({}).to_dict() | {"features": ["margin"]}
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(CalibrationError, match="refit it"):
        Calibrator.load(tmp_path / "old.json")


def test_find_calibration_auto_none_and_path(tmp_path):
    reader = _reader_dir(tmp_path)
    assert find_calibration("auto", reader) is None  # no calibration.json beside the weights
    assert find_calibration("none", reader) is None
    _calibrator({"margin": 1.0}, sha=weights_digest(reader)).save(reader / CALIBRATION_FILE)
    assert find_calibration("auto", reader) is not None
    assert find_calibration("none", reader) is None
    assert find_calibration(str(reader / CALIBRATION_FILE), reader) is not None


@pytest.mark.skipif(not (SHIPPED_READER_DIR / CALIBRATION_FILE).exists(), reason="no shipped calibration")
def test_shipped_calibration_fits_the_shipped_reader_and_rises_with_the_evidence():
    cal = find_calibration("auto", SHIPPED_READER_DIR)  # raises if fitted for other weights
    assert cal is not None and cal.info.get("reader")
    coef = dict(zip(FEATURES, cal.best.coef, strict=True))
    # the more the reader prefers the span over "no answer" and over other answers, the closer its passage is to
    # the question and the more of the question its sentence holds, the likelier it is right
    assert coef["margin"] > 0 and coef["lead"] > 0 and coef["passage_cosine"] > 0 and coef["sentence_overlap"] > 0
    assert coef["negation_mismatch"] < 0  # a negated question against an affirmative sentence: likely unanswerable
    assert cal.min_score is not None and 0.0 < cal.min_score < 0.5


def test_ece_and_reliability_bins():
    pairs = [(0.9, True)] * 9 + [(0.9, False)] + [(0.1, False)] * 9 + [(0.1, True)]
    assert expected_calibration_error(pairs, 10) == pytest.approx(0.0)
    bins = reliability_bins(pairs, 10)
    assert len(bins) == 10 and bins[1][2] == 10 and bins[9][2] == 10 and bins[9][4] == pytest.approx(0.9)
    assert expected_calibration_error([(1.0, False), (0.0, True)], 15) == pytest.approx(1.0)  # 1.0 in the last bin
    with pytest.raises(ValueError):
        expected_calibration_error([], 15)
    with pytest.raises(ValueError):
        reliability_bins([(1.5, True)])


class _ListReader:
    """Proposes fixed candidates (every one from the first hit)."""

    rank_penalty = 0.0

    def __init__(self, spans: list[tuple[str, float]]):
        self.spans = spans

    def read(self, question, hits, *, max_answers=3, min_score=0.5):
        hit = hits[0]
        out = [_answer(hit, text, score) for text, score in self.spans]
        return [a for a in out if a.score >= min_score][:max_answers]


def test_an_abstained_result_lists_what_it_would_have_answered():
    hits = [_hit(0, P1, 0.8)]
    assistant = Assistant(None, _ListReader([("1889", 0.3), ("Paris", 0.2)]), Settings())
    result = assistant.read("When was the Eiffel Tower completed?", hits, min_score=0.5)
    assert result.abstained and [a.text for a in result.candidates] == ["1889", "Paris"]
    data = result.to_dict()
    assert data["answers"] == [] and [c["score"] for c in data["candidates"]] == [0.3, 0.2]
    answered = assistant.read("When was the Eiffel Tower completed?", hits, min_score=0.25)
    assert [a.text for a in answered.answers] == ["1889"] and answered.candidates == ()


def test_a_calibrator_decides_what_is_given():
    hits = [_hit(0, P1, 0.8)]
    reader = _ListReader([("1889", 0.99)])
    sure = Assistant(None, reader, Settings(), calibrator=_calibrator({"margin": 0.0}))  # P = sigmoid(-1) = 0.27
    result = sure.read("When was the Eiffel Tower completed?", hits, min_score=0.5)
    assert result.abstained and result.candidates[0].score == pytest.approx(1 / (1 + math.e))


def test_ask_marks_an_unsure_answer_and_shows_the_best_guess_when_abstaining():
    from qa.render import render_result

    hits = [_hit(0, P1, 0.8)]
    assistant = Assistant(None, _ListReader([("1889", 0.6)]), Settings())
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(render_result(assistant.read("When?", hits, min_score=0.5), unsure_below=0.7))
    assert "unsure" in console.export_text()
    console = Console(width=120, record=True)
    console.print(render_result(assistant.read("When?", hits, min_score=0.9), unsure_below=0.7))
    text = console.export_text()
    assert "No answer found" in text and "Best guess" in text and "1889" in text
    two = Assistant(None, _ListReader([("1889", 0.6), ("Paris", 0.8)]), Settings())  # a runner-up scoring higher
    console = Console(width=120, record=True)
    console.print(render_result(two.read("When?", hits, min_score=0.5)))
    text = console.export_text()
    assert text.splitlines()[1].split()[1] == "1889"  # the reader's best span stays the answer, a runner-up
    assert "Other candidates, in the reader's order" in text  # may score higher: the title says why
    assert text.index("Other candidates, in the reader's order") < text.rindex("Paris")


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("cal") / "index"
    assert runner.invoke(app, ["index", str(SEEDS), "--index-dir", str(index_dir)]).exit_code == 0
    return index_dir


def test_eval_reports_calibration_and_plots_a_png(seed_index, tiny_reader, tmp_path):
    png = tmp_path / "plots" / "eval.png"
    args = ["eval", str(REPO / "eval" / "gold.jsonl"), "--index-dir", str(seed_index), "--reader", str(tiny_reader)]
    result = runner.invoke(app, [*args, "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "calibration error" in result.stdout and "Reliability of the score" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    cal = data["calibration"]
    assert cal["right"] == "f1>=0.5" and 0.0 <= cal["ece"] <= 1.0
    assert len(cal["bins"]) == 15 and sum(b["n"] for b in cal["bins"]) <= data["n"]
    bad = runner.invoke(app, [*args, "--mode", "retrieval", "--plot", str(png)])
    assert bad.exit_code == 2 and "--plot" in bad.stderr


def test_threshold_curve_agrees_with_the_sweep(seed_index, tiny_reader):
    from qa.evaluation import evaluate_file, sweep_thresholds
    from qa.plots import threshold_curve

    settings = Settings(index_dir=str(seed_index), reader=str(tiny_reader))
    summary, _ = evaluate_file(REPO / "eval" / "gold.jsonl", settings=settings)
    sweep = {round(t, 6): (em, f1) for t, em, f1, _ in sweep_thresholds(summary.rows)}
    for t, em, f1, _, _ in threshold_curve(summary, points=11):
        at = summary.with_threshold(t)
        assert em == pytest.approx(at.exact_match) and f1 == pytest.approx(at.f1)
        if round(t, 6) in sweep:
            assert (em, f1) == pytest.approx(sweep[round(t, 6)])


def test_ask_calibration_option_is_checked(seed_index, tiny_reader, tmp_path):
    bogus = tmp_path / "cal.json"
    _calibrator({"margin": 1.0}).save(bogus)  # fitted for weights with sha256 000…
    result = runner.invoke(app, ["ask", "When was ISIS-K formed?", "--index-dir", str(seed_index), "--reader",
                                 str(tiny_reader), "--calibration", str(bogus)])
    assert result.exit_code == 1 and "refit it" in result.stderr


def test_the_calibrations_threshold_applies_unless_the_user_or_the_index_sets_one(seed_index, tiny_reader, tmp_path):
    import shutil

    from qa.store import PassageStore

    reader = tmp_path / "reader"
    shutil.copytree(tiny_reader, reader)
    cal = _calibrator({"margin": 1.0}, sha=weights_digest(reader))
    Calibrator(cal.best, cal.others, cal.reader_sha256, cal.info, 0.12).save(
        reader / CALIBRATION_FILE)

    def opened(index, **settings):
        a = Assistant.open(index, Settings(reader=str(reader), **settings))
        a.close()
        return a

    a = opened(seed_index)
    assert a.calibrator is not None and a.settings.min_score == 0.12
    assert opened(seed_index, min_score=0.3).settings.min_score == 0.3  # the user's
    a = opened(seed_index, calibration="none")
    assert a.calibrator is None and a.settings.min_score == 0.5
    index = tmp_path / "index"
    shutil.copytree(seed_index, index)
    with PassageStore.open_for_write(index) as store:
        store.set_setting("min_score", 0.2)
    assert opened(index).settings.min_score == 0.2  # the index's saved threshold (qa eval --sweep --save-threshold)
