"""Paired bootstrap intervals, and eval/compare_reports.py on two reports of the same questions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa.metrics import paired_bootstrap

ROOT = Path(__file__).resolve().parents[1]


def test_paired_bootstrap_brackets_the_mean_difference_and_is_seeded():
    a = [0.0, 1.0] * 200
    b = [1.0, 1.0] * 200  # B wins every other question
    d, lo, hi = paired_bootstrap(a, b, samples=2000)
    assert d == pytest.approx(0.5) and 0.4 < lo < 0.5 < hi < 0.6
    assert paired_bootstrap(a, b, samples=2000) == (d, lo, hi)
    same = paired_bootstrap(a, a, samples=500)
    assert same == (0.0, 0.0, 0.0)
    mixed = paired_bootstrap([0.0, 1.0] * 50, [1.0, 0.0] * 50, samples=2000)
    assert mixed[1] < 0 < mixed[2]  # no difference on average: the interval straddles zero
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_compare_reports_pairs_questions_by_id(tmp_path):
    def row(qid, gold, em, f1, abstained=False):
        return {"id": qid, "gold": gold, "em": em, "f1": f1, "abstained": abstained}

    a = [row(f"q{i}", ["x"], 0.0, 0.5) for i in range(30)]
    a += [row("u1", [], 0.0, 0.0, False), row("only-a", ["x"], 1, 1)]
    b = [row(f"q{i}", ["x"], 1.0, 1.0) for i in range(30)] + [row("u1", [], 1.0, 1.0, True)]
    pa, pb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    pa.write_text("".join(json.dumps(r) + "\n" for r in a))
    pb.write_text("".join(json.dumps(r) + "\n" for r in b))
    def compare(first, second, *args):
        return subprocess.run([sys.executable, str(ROOT / "eval" / "compare_reports.py"), str(first), str(second),
                               *args], capture_output=True, text=True, check=True).stdout

    res = json.loads(compare(pa, pb, "--json", "--samples", "500"))
    assert res["questions"] == 31 and res["answerable"] == 30 and res["unanswerable"] == 1 and res["only_in_a"] == 1
    assert res["f1"]["a"] == pytest.approx(50.0) and res["f1"]["b"] == pytest.approx(100.0)
    assert res["f1"]["ci95"] == [pytest.approx(50.0), pytest.approx(50.0)]
    assert res["no_answer_accuracy"]["diff"] == pytest.approx(100.0)
    assert res["lost"] == []  # B answers every question A answers
    table = compare(pa, pb, "--samples", "200")
    assert "F1 (answerable)" in table and "+50.00" in table
    swapped = json.loads(compare(pb, pa, "--json", "--samples", "100"))
    assert swapped["lost"] == []  # A's F1 0.5 still counts as right: nothing B answered is lost
    a[0]["f1"] = 0.4
    pa.write_text("".join(json.dumps(r) + "\n" for r in a))
    swapped = json.loads(compare(pb, pa, "--json", "--samples", "100"))
    assert swapped["lost"] == ["q0"]


def test_interval_ends_near_zero_keep_their_sign():
    sys.path.insert(0, str(ROOT / "eval"))
    from compare_reports import bound

    assert bound(-0.0013774) == "-0.0014"  # printed "-0.00" before: not above zero, and now visibly so
    assert bound(0.0049) == "+0.0049" and bound(0.0) == "+0.00"
    assert bound(0.5) == "+0.50" and bound(-3.456) == "-3.46"
