"""eval/reader_figures.py end to end on tiny SQuAD files named and split like the real ones (fake models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeReader, load_eval_script
from test_cli_index import fake_models  # noqa: F401 - a fixture, by name

import qa.factory


def _module():
    return load_eval_script("reader_figures")


def _squad(path: Path, titles: list[str], unanswerable: bool) -> None:
    data = []
    for i, title in enumerate(titles):
        ctx = f"The {title.replace('_', ' ')} tower was finished in {1800 + i}. It is tall."
        qas = [{"id": f"{title}-a", "question": f"When was the {title.replace('_', ' ')} tower finished?",
                "answers": [{"text": str(1800 + i), "answer_start": ctx.index(str(1800 + i))}]}]
        if unanswerable:
            qas.append({"id": f"{title}-u", "question": f"Who painted the {title.replace('_', ' ')} tower?",
                        "answers": [], "is_impossible": True})
        data.append({"title": title, "paragraphs": [{"context": ctx, "qas": qas}]})
    path.write_text(json.dumps({"data": data}), encoding="utf-8")


def test_reader_figures_runs_every_step_on_the_split(tmp_path, fake_models, monkeypatch):  # noqa: F811
    mod = _module()
    split = mod.split()
    v20 = split["v20_train"] + split["tune"] + split["dev_v20"]
    data = tmp_path / "squad"
    data.mkdir()
    _squad(data / "squad11-dev-train.json", v20 + ["Other_article", "Second_other"], unanswerable=False)
    _squad(data / "squad20-dev-half-train.json", v20, unanswerable=True)
    monkeypatch.setenv("QA_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: FakeReader())
    assert mod.v11_dev(data) == sorted(set(split["dev_v20"]) | {"Other_article", "Second_other"})
    rc = mod.main(["--reader", str(tmp_path), "--name", "fake", "--out", str(tmp_path / "out"), "--data", str(data),
                   "--steps", "gold,tune,e2e"])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "fake" / "figures.json").read_text())
    assert res["gold"]["v11_dev"]["n"] == 6 and res["gold"]["v11_v4_held_out"]["n"] == 4
    assert res["gold"]["v20_dev_at_min_score"]["n"] == 8
    assert set(res["tune"]["f1_by_rank_penalty"]) == {str(p) for p in mod.PENALTIES}
    assert res["tune"]["rank_penalty"] in mod.PENALTIES and res["tune"]["min_score"] in mod.THRESHOLDS
    assert res["e2e"]["rank_penalty"] == res["tune"]["rank_penalty"] and res["e2e"]["v11_dev"]["n"] == 6
    rows = [json.loads(line) for line in (tmp_path / "out" / "fake" / "e2e-v11-dev.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["prediction"] in ("", r["gold"][0]) or r["f1"] < 1 for r in rows)


def test_reader_figures_skip_done_resumes_a_cut_off_chain(tmp_path, fake_models, monkeypatch):  # noqa: F811
    mod = _module()
    split = mod.split()
    v20 = split["v20_train"] + split["tune"] + split["dev_v20"]
    data = tmp_path / "squad"
    data.mkdir()
    _squad(data / "squad11-dev-train.json", v20 + ["Other_article"], unanswerable=False)
    _squad(data / "squad20-dev-half-train.json", v20, unanswerable=True)
    monkeypatch.setenv("QA_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: FakeReader())
    common = ["--reader", str(tmp_path), "--name", "fake", "--out", str(tmp_path / "out"), "--data", str(data)]
    figures = tmp_path / "out" / "fake" / "figures.json"
    # figures of an older version: one machine string for every step
    figures.parent.mkdir(parents=True)
    figures.write_text(json.dumps({"machine": "x86_64, 2 cores"}))
    assert mod.main([*common, "--steps", "gold"]) == 0
    first = json.loads(figures.read_text())
    assert set(first["machine"]) == {"gold"} and "cores" in first["machine"]["gold"]
    ran = []
    real_gold = mod.run_gold
    monkeypatch.setattr(mod, "run_gold", lambda *a: ran.append("gold") or real_gold(*a))
    assert mod.main([*common, "--steps", "gold,gold-tune", "--skip-done"]) == 0
    second = json.loads(figures.read_text())
    assert ran == [] and second["gold"] == first["gold"] and "gold_tune" in second
    assert mod.main([*common, "--steps", "gold"]) == 0  # without --skip-done a step runs again
    assert ran == ["gold"]


def test_reader_figures_names_an_unknown_step_before_running_any(tmp_path, monkeypatch):
    mod = _module()
    monkeypatch.setattr(mod, "run_gold", lambda *a: pytest.fail("ran a step"))
    with pytest.raises(SystemExit, match="'golden'"):
        mod.main(["--reader", str(tmp_path), "--name", "x", "--out", str(tmp_path / "out"), "--steps", "gold,golden"])


def test_a_calibrated_reader_has_no_tune_step_and_keeps_its_calibrations_threshold(tmp_path, fake_models,  # noqa: F811
                                                                                    monkeypatch):
    mod = _module()
    split = mod.split()
    v20 = split["v20_train"] + split["tune"] + split["dev_v20"]
    data = tmp_path / "squad"
    data.mkdir()
    _squad(data / "squad11-dev-train.json", v20, unanswerable=False)
    monkeypatch.setenv("QA_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: FakeReader())
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "calibration.json").write_text(json.dumps({"min_score": 0.2}))
    common = ["--reader", str(reader), "--name", "cal", "--out", str(tmp_path / "out"), "--data", str(data)]
    with pytest.raises(SystemExit, match="fit_calibration.py penalty"):
        mod.main([*common, "--steps", "tune,e2e"])
    assert mod.main([*common, "--steps", "e2e"]) == 0
    res = json.loads((tmp_path / "out" / "cal" / "figures.json").read_text())
    assert res["e2e"]["min_score"] == "calibration (0.2)" and res["e2e"]["rank_penalty"] == 1.5
    assert mod.main([*common, "--steps", "e2e", "--min-score", "0.3"]) == 0  # the user's threshold wins
    assert json.loads((tmp_path / "out" / "cal" / "figures.json").read_text())["e2e"]["min_score"] == 0.3


def test_abstention_within_tries_every_score_not_a_grid():
    from types import SimpleNamespace

    mod = _module()
    row = lambda score, f1, answerable: SimpleNamespace(score=score, answered_f1=f1, answerable=answerable)  # noqa: E731
    # answerable: 20 right at 0.9, one right at 0.02; unanswerable scores all below 0.1
    rows = [row(0.9, 1.0, True)] * 20 + [row(0.02, 1.0, True)] + [row(s, None, False) for s in (0.01, 0.03, 0.05)]
    got = mod.abstention_within(rows, points=3.0)
    # losing the 0.02 answer costs 4.8 points: only the score 0.02 itself is within 3 -> one of three abstained
    assert got["threshold"] == 0.02 and got["unanswerable_abstained"] == 33.33 and got["answerable_f1"] == 100.0
    assert mod.abstention_within(rows, points=5.0)["unanswerable_abstained"] == 100.0
