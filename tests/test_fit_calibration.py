"""eval/fit_calibration.py: fitting a calibration on records, tying it to the reader, and its report (no models)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import load_eval_script
from test_cli_index import fake_models  # noqa: F401 - a fixture, by name

from qa.calibration import FEATURES, Calibrator, Logistic, evidence, weights_digest
from qa.schema import Answer, Chunk, Hit, QAResult, Span


def _module(name: str = "fit_calibration"):
    return load_eval_script(name)


def _record(i: int, *, right: bool, condition: str, rng: random.Random) -> dict:
    """A question whose best candidate is right (high margin, the index close to the question) or not."""
    text = f"The tower number {i} was finished in {1800 + i} by the builders of the city."
    cosine = rng.uniform(0.55, 0.8) if condition == "inside" else rng.uniform(0.1, 0.35)
    hit = Hit(Chunk(f"d{i}#0", f"d{i}", 0, len(text), text), 1.0, 0, "", cosine)
    s = text.index(str(1800 + i)) if right else text.index("builders")
    e = s + (4 if right else len("builders"))
    score = rng.uniform(0.8, 0.99) if right else rng.uniform(0.3, 0.9)
    ans = Answer(text[s:e], score, hit.chunk.doc_id, Span(s, e), hit.chunk.chunk_id, text, Span(s, e), "")
    gold = [str(1800 + i)] if condition == "inside" else []
    result = QAResult(f"When was tower number {i} finished?", (ans,), (hit,))
    return {"condition": condition, "article": f"article-{i % 5}", "qid": f"q{i}", "question": result.question,
            "gold": gold, "rank_penalty": 1.5, "seconds": 0.1, "result": result.to_dict()}


@pytest.fixture
def reader(tmp_path) -> Path:
    folder = tmp_path / "reader"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"reader weights")
    return folder


@pytest.fixture
def records(tmp_path) -> Path:
    rng = random.Random(3)
    rows = [_record(i, right=i % 3 != 0, condition="inside", rng=rng) for i in range(60)]
    rows += [_record(100 + i, right=False, condition="outside", rng=rng) for i in range(40)]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_fit_writes_a_calibration_tied_to_the_reader(records, reader, tmp_path, capsys):
    mod = _module()
    out = tmp_path / "calibration.json"
    assert mod.main(["fit", str(records), "--out", str(out), "--reader", str(reader), "--reader-name", "test v1"]) == 0
    cal = Calibrator.load(out, reader)  # loads for the reader it was fitted for
    assert cal.reader_sha256 == weights_digest(reader) and cal.info["reader"] == "test v1"
    coef = dict(zip(FEATURES, cal.best.coef, strict=True))
    assert coef["top_cosine"] > 0  # outside questions (far from the index) are wrong
    assert "fitted on" in capsys.readouterr().out


def _candidate(best: dict, text: str) -> dict:
    """Another candidate of a record's answer list: ``text`` in the best candidate's passage, at half its score."""
    s = best["context"].index(text)
    return {**best, "text": text, "score": best["score"] / 2, "start": s, "end": s + len(text)}


def test_fit_calibrator_fits_the_readers_best_spans_apart_from_its_other_candidates(tmp_path):
    mod = _module()
    rng = random.Random(5)
    rows = []
    for i in range(80):
        r = _record(i, right=i % 3 != 0, condition="inside", rng=rng)
        best = r["result"]["answers"][0]
        # a second candidate from the same passage: the other span ("builders" or the year), right a third of the time
        other = "builders" if best["text"] != "builders" else str(1800 + i)
        r["result"]["answers"].append(_candidate(best, other))
        rows.append(r)
    cal = mod.fit_calibrator(rows, reader_sha256="0" * 64, info={})
    assert cal.info["best_candidates"] == 80 and cal.info["candidates"] == 160
    assert cal.info["best_right"] == sum(i % 3 != 0 for i in range(80)) and cal.info["right"] == 80
    assert cal.best != cal.others  # two regressions
    # every candidate of a record rescored: the reader's best by one, the other by the other
    res = QAResult.from_dict(rows[1]["result"])
    ev = evidence(rows[1]["question"], res.answers, res.hits, 1.5)
    out = cal.rescore(rows[1]["question"], res.answers, res.hits, 1.5)
    assert [a.score for a in out] == pytest.approx([cal.best.probability(ev[0]), cal.others.probability(ev[1])])
    # other candidates all wrong: nothing to fit apart, they are scored as best spans
    for r in rows:
        r["result"]["answers"][1] = _candidate(r["result"]["answers"][0], "the city")
    same = mod.fit_calibrator(rows, reader_sha256="0" * 64, info={})
    assert same.others == same.best


def test_report_prints_abstention_and_calibration_per_condition(records, reader, tmp_path, capsys):
    mod = _module()
    out = tmp_path / "calibration.json"
    mod.main(["fit", str(records), "--out", str(out), "--reader", str(reader)])
    capsys.readouterr()
    assert mod.main(["report", str(records)]) == 0
    raw = capsys.readouterr().out
    assert mod.main(["report", str(records), "--calibration", str(out)]) == 0
    calibrated = capsys.readouterr().out
    for text in (raw, calibrated):
        assert "| inside | 60 |" in text and "| outside (unanswerable) | 40 |" in text and "ECE" in text
        assert "outside questions abstained on at the best threshold" in text  # no v2.0 unanswerable: one line
        assert "unanswerable questions abstained on at the best" not in text

    def abstained(text: str, cond: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith(f"| {cond} |"))
        return float(line.split("|")[5].strip().rstrip(" %"))

    # the reader answers every outside question (scores 0.3-0.9); the calibration abstains on most of them
    assert abstained(calibrated, "outside (unanswerable)") > abstained(raw, "outside (unanswerable)")
    assert mod.main(["penalty", str(records)]) == 0
    table = capsys.readouterr().out
    # the collected penalty compared with itself: no difference, a zero-width interval
    assert "| 1.5 |" in table and "| +0.00 | +0.00..+0.00 |" in table
    # the same reader with and without its calibration, paired: the answers it gives change, the questions do not
    assert mod.main(["compare", str(records), str(records), "--calibration-b", str(out)]) == 0
    table = capsys.readouterr().out
    assert "100 questions in both" in table
    never = next(x for x in table.splitlines() if x.startswith("| never abstaining"))
    assert never.split("|")[2].strip() == never.split("|")[3].strip()  # one candidate each: same best answer


def test_abstained_within_finds_the_best_threshold_inside_the_f1_drop():
    mod = _module("calibration_records")
    inside = {"condition": "inside", "gold": ["x"]}
    unanswerable = {"condition": "inside", "gold": []}
    outside = {"condition": "outside", "gold": ["x"]}
    # four answerable questions (F1 1, 1, 1, 0 at scores .9 .8 .7 .1): never abstaining F1 75; abstaining below
    # .7 loses nothing, below .8 loses 25 points
    best = [(inside, p, f, None) for p, f in ((0.9, 1.0), (0.8, 1.0), (0.7, 1.0), (0.1, 0.0))]
    best += [(unanswerable, p, 0.0, None) for p in (0.05, 0.2, 0.6, 0.75)]
    assert mod.abstained_within(best, "unanswerable", 3.0) == 75.0  # threshold .7: .05, .2 and .6 below it
    assert mod.abstained_within(best, "unanswerable", 30.0) == 100.0  # threshold .8 is allowed: all four
    assert mod.abstained_within(best, "outside", 2.0) != mod.abstained_within(best, "outside", 2.0)  # none: NaN
    best += [(outside, 0.3, 0.0, None)]
    assert mod.abstained_within(best, "outside", 2.0) == 100.0


def test_fit_chooses_the_threshold_on_held_out_articles(records, reader, tmp_path, capsys):
    mod = _module()
    out = tmp_path / "calibration.json"
    assert mod.main(["fit", str(records), "--out", str(out), "--reader", str(reader), "--hold-out", "2",
                     "--outside-abstention", "0.75"]) == 0
    cal = Calibrator.load(out, reader)
    assert cal.min_score is not None and 0.0 < cal.min_score < 1.0
    assert "75 % of the outside questions of 2 held-out articles" in cal.info["min_score_choice"]
    assert mod.main(["fit", str(records), "--out", str(out), "--reader", str(reader), "--hold-out", "5"]) == 1
    assert "hold out fewer" in capsys.readouterr().err


def test_fit_can_choose_the_highest_threshold_within_an_f1_drop(records, reader, tmp_path):
    mod = _module()
    rows = mod.read_records([records])
    t0, note0 = mod.choose_threshold(rows, 2, 0.8, 1.0, 0, max_f1_drop=0.0)
    t5, note5 = mod.choose_threshold(rows, 2, 0.8, 1.0, 0, max_f1_drop=5.0)
    t100, _ = mod.choose_threshold(rows, 2, 0.8, 1.0, 0, max_f1_drop=100.0)
    assert 0.0 <= t0 <= t5 <= t100  # a larger allowed drop never lowers the threshold
    assert "inside F1 falls by <= 5 points" in note5 and "outside questions abstained" in note5

    def drop(note):  # "their inside F1 A never abstaining -> B"
        never, kept = note.split("their inside F1 ")[1].split(", outside")[0].split(" never abstaining -> ")
        return float(never) - float(kept)

    assert drop(note0) <= 0.05 and drop(note5) <= 5.05
    out = tmp_path / "c.json"
    assert mod.main(["fit", str(records), "--out", str(out), "--reader", str(reader), "--hold-out", "2",
                     "--max-f1-drop", "5"]) == 0
    assert Calibrator.load(out, reader).min_score == t5


def test_fit_refuses_records_with_one_label(tmp_path, capsys):
    mod = _module()
    rng = random.Random(1)
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(_record(i, right=False, condition="outside", rng=rng)) + "\n"
                            for i in range(5)), encoding="utf-8")
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "model.safetensors").write_bytes(b"w")
    assert mod.main(["fit", str(path), "--out", str(tmp_path / "c.json"), "--reader", str(reader)]) == 1
    assert "nothing to fit" in capsys.readouterr().err


def test_policy_compares_giving_the_readers_best_with_the_most_probable(records, reader, tmp_path, capsys):
    mod = _module()
    out = tmp_path / "calibration.json"
    mod.main(["fit", str(records), "--out", str(out), "--reader", str(reader)])
    capsys.readouterr()
    assert mod.main(["policy", str(records), "--calibration", str(out)]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| the ")]
    assert [r.split(" | ")[0] for r in rows] == ["| the reader's best", "| the most probable"]
    # one candidate per record here: both policies give the same answers, so the same F1 at every share
    assert rows[0].split(" | ")[1:] == rows[1].split(" | ")[1:]
    assert "outside 80 %" in table


def test_policy_needs_outside_records(tmp_path, reader, capsys):
    mod = _module()
    rng = random.Random(1)
    path = tmp_path / "inside.jsonl"
    rows = [_record(i, right=i % 2 == 0, condition="inside", rng=rng) for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cal = tmp_path / "calibration.json"
    mod.main(["fit", str(path), "--out", str(cal), "--reader", str(reader)])
    assert mod.main(["policy", str(path), "--calibration", str(cal)]) == 1
    assert "outside condition" in capsys.readouterr().err


def _span(hit: Hit, word: str, score: float) -> Answer:
    s = hit.chunk.text.index(word)
    return Answer(word, score, hit.chunk.doc_id, Span(s, s + len(word)), hit.chunk.chunk_id, hit.chunk.text,
                  Span(s, s + len(word)), "")


def test_policy_gives_the_most_probable_only_in_its_own_row(tmp_path, capsys):
    mod = _module()
    rows = []
    for i in range(10):
        text = f"The tower number {i} was finished in {1800 + i} by the builders of the city."
        hit = Hit(Chunk(f"d{i}#0", f"d{i}", 0, len(text), text), 1.0, 0, "", 0.7)

        # the reader prefers "builders" (wrong); "18xx" fits "when" and is right
        result = QAResult(f"When was tower number {i} finished?",
                          (_span(hit, "builders", 0.9), _span(hit, str(1800 + i), 0.6)), (hit,))
        for condition, gold in (("inside", [str(1800 + i)]), ("outside", [])):
            rows.append({"condition": condition, "article": f"a{i}", "qid": f"q{i}", "question": result.question,
                         "gold": gold, "rank_penalty": 1.5, "seconds": 0.1, "result": result.to_dict()})
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    n = len(FEATURES)
    model = Logistic((0.0,) * n, (1.0,) * n, tuple(3.0 if f == "type_fit" else 0.0 for f in FEATURES), 0.0)
    cal = Calibrator(model, model, "0" * 64, {"reader": "test"})
    cal.save(tmp_path / "cal.json")
    assert mod.main(["policy", str(path), "--calibration", str(tmp_path / "cal.json")]) == 0
    table = {line.split(" | ")[0]: line.split(" | ")[1] for line in capsys.readouterr().out.splitlines()
             if line.startswith("| the ")}
    assert table == {"| the reader's best": "0.00", "| the most probable": "100.00"}


def test_calibration_loao_scores_each_article_by_a_fit_on_the_others(records, capsys):
    loao = load_eval_script("calibration_loao")
    assert loao.main([str(records)]) == 0
    out = capsys.readouterr().out
    assert "100 records of 5 articles" in out
    rows = {line.split(" | ")[0]: line.split(" | ")[1:] for line in out.splitlines() if line.startswith("| one")
            or line.startswith("| two")}
    assert set(rows) == {"| one", "| two"}
    for cells in rows.values():
        # the questions about articles not indexed are far from the index: most are abstained on within 2 F1
        assert float(cells[1].rstrip(" %")) >= 80.0
        assert 0.0 <= float(cells[2]) <= 1.0


def test_calibration_loao_can_hold_out_gold_files_with_other_records_in_every_fit(records, tmp_path, capsys):
    loao = load_eval_script("calibration_loao")
    rng = random.Random(7)
    docs = [_record(300 + i, right=i % 3 != 0, condition="inside", rng=rng) for i in range(30)]
    for i, r in enumerate(docs):
        r["file"] = f"docs{i % 3}-gold"
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in docs), encoding="utf-8")
    assert loao.main([str(path), "--fit-also", str(records), "--group", "file", "--repeat", "3", "--way", "two"]) == 0
    out = capsys.readouterr().out
    assert "30 records of 3 files, each scored by a fit on the others (x3) and 100 more records" in out
    cells = next(line for line in out.splitlines() if line.startswith("| two")).split(" | ")
    assert 0.0 <= float(cells[3]) <= 1.0
    assert loao.main([str(records), "--group", "file"]) == 1  # SQuAD records name no file
    assert "has no 'file'" in capsys.readouterr().err


def test_the_threshold_is_chosen_on_articles_with_outside_records(records, tmp_path):
    """Records of a JSONL gold file (inside only, one 'article' per document) are fitted on but never drawn as the
    held-out articles whose outside questions set the threshold."""
    mod = _module()
    rng = random.Random(5)
    rows = mod.read_records([records])
    readme = [_record(200 + i, right=i % 2 == 0, condition="inside", rng=rng) for i in range(40)]
    for i, r in enumerate(readme):
        r["article"] = f"readme-{i % 10}"
    for seed in range(6):  # 5 articles with outside records among 15: some seeds would draw two READMEs
        t, note = mod.choose_threshold(rows + readme, 2, 0.75, 1.0, seed)
        assert 0.0 < t < 1.0 and "outside questions abstained" in note
    with pytest.raises(mod.QAError, match="only 5 articles with outside records"):
        mod.choose_threshold(rows + readme, 5, 0.75, 1.0, 0)


def test_collect_gold_keeps_every_candidate_of_a_jsonl_gold_file(tmp_path, fake_models, monkeypatch):  # noqa: F811
    from conftest import FakeReader

    import qa.factory

    mod = _module()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tool.md").write_text("The tool was released in 2019 by the makers of the city.\n", encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "a", "question": "When was the tool released?", "answers": ["2019"],
                                "doc_id": "tool"}) + "\n"
                    + json.dumps({"id": "b", "question": "Who paints the tool?", "answers": []}) + "\n",
                    encoding="utf-8")
    monkeypatch.setenv("QA_MODEL_DIR", str(tmp_path / "models"))
    reader = FakeReader()
    reader.rank_penalty = 1.5  # what a TransformersReader records with its answers
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: reader)
    out = tmp_path / "records.jsonl"
    args = ["collect-gold", str(gold), "--docs", str(docs), "--out", str(out), "--work", str(tmp_path / "w")]
    assert mod.main(args) == 0
    rows = mod.read_records([out])
    assert [(r["qid"], r["article"], r["file"], r["gold"], r["condition"]) for r in rows] == [
        ("a", "tool", "gold", ["2019"], "inside"), ("b", "gold", "gold", [], "inside")]
    assert all(QAResult.from_dict(r["result"]).hits for r in rows)
    assert mod.main(args) == 0 and len(mod.read_records([out])) == 2  # asked again: nothing is added
    assert mod.main(["collect-gold", str(gold), "--docs", str(tmp_path / "nope"), "--out", str(out)]) == 1
