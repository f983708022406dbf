"""Records of `fit_calibration.py collect` and the tables read from them: what `qa` would show for each
question, F1 and abstention at a threshold, two readers compared, rank_penalty and which candidate to give.

Run as `python eval/fit_calibration.py report|compare|penalty|policy ...` (see that script); split from it so
that asking and fitting (there) and reading records (here) are each one job.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.calibration import LABEL, Calibrator, evidence  # noqa: E402
from qa.errors import QAError  # noqa: E402
from qa.metrics import f1_score, max_over_gold, paired_bootstrap  # noqa: E402
from qa.schema import QAResult  # noqa: E402


def read_records(paths: list[Path]) -> list[dict]:
    rows = []
    for p in paths:
        rows += [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise QAError(f"no records in {', '.join(map(str, paths))}")
    return rows


def is_right(prediction: str, gold: list[str]) -> bool:
    """The label of the calibration: F1 >= 0.5 against a gold answer (never right when there is none)."""
    return bool(gold) and max_over_gold(f1_score, prediction, gold) >= 0.5


def answer_f1(record: dict, text: str | None) -> float:
    """F1 of an answer against the record's gold answers (0 for no answer, or a question that has none)."""
    return max_over_gold(f1_score, text, record["gold"]) if (text and record["gold"]) else 0.0


def v2_f1(record: dict, text: str | None, given: bool) -> float:
    """SQuAD v2.0-style credit of what is shown: an answer given scores its F1 when the question's article is
    indexed and has an answer, else 0; abstaining scores 1 exactly when there is no answer in the index."""
    answerable = bool(record["gold"]) and record["condition"] == "inside"
    if text and given:
        return answer_f1(record, text) if answerable else 0.0
    return 0.0 if answerable else 1.0


def candidate_rows(record: dict):
    """(features, label) of each of a record's candidates."""
    res = QAResult.from_dict(record["result"])
    evs = evidence(record["question"], res.answers, res.hits, record["rank_penalty"])
    return [(ev.values, is_right(a.text, record["gold"])) for a, ev in zip(res.answers, evs, strict=True)]


def shown(record: dict, cal: Calibrator | None, most_probable: bool = False):
    """(best answer text or None, its score) as `qa ask` would show them with ``cal`` (None: the reader's);
    ``most_probable``: the candidate ``cal`` rates highest instead of the reader's best (see :func:`policy`)."""
    res = QAResult.from_dict(record["result"])
    answers = list(res.answers)
    if cal is not None and answers:
        answers = cal.rescore(record["question"], answers, res.hits, record["rank_penalty"])
        if most_probable:
            answers.sort(key=lambda a: -a.score)
    return (answers[0].text, answers[0].score) if answers else (None, 0.0)


def abstained_within(best, kind: str, drop: float) -> float:
    """Share (%) of ``kind`` questions ("unanswerable" or "outside") abstained on at the best threshold that
    keeps the answerable inside F1 within ``drop`` points of never abstaining."""
    answerable = [(p, f) for r, p, f, _ in best if r["condition"] == "inside" and r["gold"]]
    if kind == "unanswerable":
        away = [p for r, p, _, _ in best if r["condition"] == "inside" and not r["gold"]]
    else:
        away = [p for r, p, _, _ in best if r["condition"] == "outside"]
    if not answerable or not away:
        return float("nan")
    return best_abstention(answerable, away, drop)[0]


def best_abstention(answerable: list[tuple[float, float]], away: list[float], drop: float):
    """(share (%) of ``away`` scores abstained on, the threshold, the answerable F1 there) at the threshold that
    abstains on most of ``away`` while the F1 of ``answerable`` ((score, F1) pairs, both lists non-empty) stays
    within ``drop`` points of never abstaining. Every score is tried as the threshold, not a grid; the lowest
    threshold wins a tie; (0, 0, F1 never abstaining) when none abstains on anything."""
    never = 100 * sum(f for _, f in answerable) / len(answerable)
    best = (0.0, 0.0, never)
    for t in sorted({p for p, _ in answerable} | set(away)):
        f1 = 100 * sum(f for p, f in answerable if p >= t) / len(answerable)
        if never - f1 <= drop:
            share = 100 * sum(p < t for p in away) / len(away)
            if share > best[0]:
                best = (share, t, f1)
    return best


def report(args) -> int:
    from qa.metrics import expected_calibration_error

    records = read_records(args.records)
    cal = Calibrator.load(args.calibration) if args.calibration else None
    by_cond: dict[str, list] = {}
    for r in records:
        cond = r["condition"] if r["gold"] else f"{r['condition']} (unanswerable)"
        by_cond.setdefault(cond, []).append((r, *shown(r, cal)))
    name = args.calibration or "reader's own score"
    print(f"{len(records)} records; score: {name}; right = {LABEL}\n")
    print("| condition | questions | F1 never abstaining | F1 at threshold | abstained | ECE (15 bins) |")
    print("|---|---|---|---|---|---|")
    pairs_all = []
    for cond, rows in by_cond.items():
        f1_all = f1_kept = 0.0
        abst = 0
        pairs = []
        for r, text, score in rows:
            f1 = answer_f1(r, text)
            f1_all += f1
            if score >= args.threshold:
                f1_kept += f1
            else:
                abst += 1
            pairs.append((score, is_right(text or "", r["gold"])))
        pairs_all += pairs
        n = len(rows)
        print(f"| {cond} | {n} | {100 * f1_all / n:.1f} | {100 * f1_kept / n:.1f} | {100 * abst / n:.1f} % "
              f"| {expected_calibration_error(pairs, 15):.3f} |")
    print(f"\nall records: ECE {expected_calibration_error(pairs_all, 15):.3f} at threshold {args.threshold}")
    best = [(r, score, answer_f1(r, text), None) for rows in by_cond.values() for r, text, score in rows]
    for kind, drop in (("unanswerable", 3.0), ("outside", 2.0)):
        share = abstained_within(best, kind, drop)
        if not math.isnan(share):  # the records hold that kind and answerable inside questions
            print(f"{kind} questions abstained on at the best threshold keeping the answerable inside F1 within "
                  f"{drop:g} points of never abstaining (an upper bound): {share:.1f} %")
    return 0


def compare(args) -> int:
    """Two readers' records of the same questions, paired: SQuAD v2.0-style F1 of what each shows (never
    abstaining, and at the threshold; abstaining is right where the index holds no answer: an unanswerable
    question, or the outside and absent conditions), and the paired bootstrap interval of B - A."""
    sides = []
    thresholds = (args.threshold, args.threshold if args.threshold_b is None else args.threshold_b)
    for side, (path, cal_path) in enumerate(((args.a, args.calibration_a), (args.b, args.calibration_b))):
        cal = Calibrator.load(cal_path) if cal_path else None
        rows = {}
        for r in read_records([path]):
            text, score = shown(r, cal)
            rows[(r["condition"], r["qid"])] = (v2_f1(r, text, True), v2_f1(r, text, score >= thresholds[side]))
        sides.append(rows)
    keys = sorted(set(sides[0]) & set(sides[1]))
    if not keys:
        raise QAError("the two record files share no (condition, question)")
    print(f"{len(keys)} questions in both; B - A with its 95 % paired bootstrap interval\n")
    print("| F1 | A | B | B - A | interval |\n|---|---|---|---|---|")
    for i, what in enumerate(("never abstaining", f"at threshold {thresholds[0]} / {thresholds[1]}")):
        a = [100 * sides[0][k][i] for k in keys]
        b = [100 * sides[1][k][i] for k in keys]
        diff, lo, hi = paired_bootstrap(a, b)
        print(f"| {what} | {sum(a) / len(a):.2f} | {sum(b) / len(b):.2f} | {diff:+.2f} | {lo:+.2f}..{hi:+.2f} |")
    return 0


#: The rank_penalty grid (also the tune step of eval/reader_figures.py).
PENALTIES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


def penalty(args) -> int:
    """F1 of the reader's best candidate, never abstaining, when its raw margins are re-ranked with each
    rank_penalty (records of answerable questions asked where their article is indexed). The candidates are
    the collect run's five best under its own penalty, so a far-off penalty is approximate."""
    records = [r for r in read_records(args.records) if r["gold"] and r["condition"] == "inside"]
    if not records:
        raise QAError("no answerable records of the inside condition")
    used = {r["rank_penalty"] for r in records}
    if len(used) != 1:
        raise QAError(f"records collected with several rank_penalty values ({sorted(used)}): collect them again")
    collected = used.pop()
    # each candidate's text, raw margin (unclipped, unlike the calibration's feature) and ln(1 + passage rank)
    candidates = []
    for r in records:
        res = QAResult.from_dict(r["result"])
        ranks = {h.chunk.chunk_id: h.rank for h in res.hits}
        cands = []
        for a in res.answers:
            q = min(max(a.score, 1e-12), 1 - 1e-12)
            log_rank = math.log1p(ranks[a.chunk_id])
            cands.append((a.text, math.log(q / (1 - q)) + collected * log_rank, log_rank))
        candidates.append(cands)

    def f1s(pen: float) -> list[float]:
        best = [max(cands, default=None, key=lambda c: c[1] - pen * c[2]) for cands in candidates]
        return [100 * answer_f1(r, b[0] if b else None) for r, b in zip(records, best, strict=True)]

    print(f"{len(records)} answerable questions, inside; F1 of the best candidate, never abstaining; the difference "
          f"with the penalty they were collected with ({collected}) and its 95 % paired bootstrap interval\n")
    print(f"| rank_penalty | F1 | difference with {collected} | interval |\n|---|---|---|---|")
    base = f1s(collected)
    for pen in PENALTIES:
        ours = f1s(pen)
        diff, lo, hi = paired_bootstrap(base, ours)
        print(f"| {pen} | {sum(ours) / len(records):.2f} | {diff:+.2f} | {lo:+.2f}..{hi:+.2f} |")
    return 0


def policy(args) -> int:
    """Which candidate to give: the reader's best (what `qa` does) or the most probable under the calibration,
    compared at the thresholds where each abstains on the same shares of the outside questions."""
    cal = Calibrator.load(args.calibration)
    records = read_records(args.records)
    if not any(r["condition"] == "outside" for r in records):
        raise QAError("policy needs records of the outside condition (collect --conditions inside,outside)")
    print(f"{len(records)} records; calibration {args.calibration}; inside F1 at the threshold abstaining on each "
          f"share of the outside questions (v2.0 unanswerable abstained)\n")
    shares = (0.8, 0.85, 0.9)
    print("| candidate given | inside F1 never abstaining | " + " | ".join(f"outside {int(100 * x)} %" for x in shares)
          + " |\n|---|---|" + "---|" * len(shares))
    for name, by_probability in (("the reader's best", False), ("the most probable", True)):
        inside, outside, unanswerable = [], [], []
        for r in records:
            text, score = shown(r, cal, most_probable=by_probability)
            if r["condition"] == "outside":
                outside.append(score)
            elif r["gold"]:
                inside.append((score, answer_f1(r, text)))
            else:
                unanswerable.append(score)
        cells = []
        outside.sort()
        for share in shares:
            t = outside[min(int(share * len(outside)), len(outside) - 1)]
            f1 = 100 * sum(f for sc, f in inside if sc >= t) / max(len(inside), 1)
            una = f", {100 * sum(sc < t for sc in unanswerable) / len(unanswerable):.1f} %" if unanswerable else ""
            cells.append(f"{f1:.2f} ({t:.3f}{una})")
        never = 100 * sum(f for _, f in inside) / max(len(inside), 1)
        print(f"| {name} | {never:.2f} | " + " | ".join(cells) + " |")
    return 0
