"""Choose how the calibration is fitted on the tune records alone: each article scored by a fit on the others.

    python eval/calibration_loao.py runs/cal/tune20.jsonl runs/cal/tune11.jsonl

For each way of fitting (``one``: one logistic regression over every candidate, the calibration's first format;
``two``: one over the reader's best span of each question and one over its other candidates, the shipped way)
every article of the records is scored by a calibration fitted on the other articles' records, and the
scores of all articles are pooled:

- SQuAD 2.0 unanswerable questions (article indexed) abstained on, at the best threshold that keeps the F1 of
  the answerable questions (article indexed) within 3 points of never abstaining;
- questions whose article is not indexed (``outside``) abstained on, within 2 points;
- expected calibration error (15 bins) of the best spans' probabilities and of the other candidates'.

A feature or a way of fitting is kept when it wins here; the dev and final records are for reporting.

Records of other questions can be part of every fit without being scored (``--fit-also``), and the scored ones
held out by the file they were collected from instead of by article (``--group file``, records of
`fit_calibration.py collect-gold`) and weighted in the fits (``--repeat``): README questions added to the
SQuAD tune records, each docs file scored by a fit on the tune records and the other files:

    python eval/calibration_loao.py runs/cal/docs.jsonl runs/cal/docs2.jsonl runs/cal/docs3.jsonl \
        runs/cal/docs4.jsonl --fit-also runs/cal/tune20.jsonl --fit-also runs/cal/tune11.jsonl --group file \
        --repeat 3 --way two
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration_records import abstained_within, answer_f1, candidate_rows, read_records  # noqa: E402
from fit_calibration import calibrator_from_rows, fit_logistic  # noqa: E402

from qa.calibration import Calibrator, Evidence  # noqa: E402
from qa.metrics import expected_calibration_error  # noqa: E402

WAYS = ("one", "two")


def fit(per_record: list[list], way: str) -> Calibrator:
    """A calibration over records' :func:`candidate_rows`, fitted ``way``."""
    if way == "two":
        return calibrator_from_rows(per_record, reader_sha256="-", info={})
    one = fit_logistic([row for rows in per_record for row in rows])
    return Calibrator(one, one, "-", {})


def held_out_scores(records: list[dict], way: str, *, fixed: list[list] = (), group: str = "article",
                    repeat: int = 1):
    """(record, best span's probability, its F1, right) and (probability, right) of every other candidate,
    each ``group`` (a record's field) scored by a fit on the others (their rows ``repeat`` times) and the
    candidate rows ``fixed``."""
    rows_of = [candidate_rows(r) for r in records]  # the evidence of each record, computed once
    best, others = [], []
    for title in sorted({r[group] for r in records}):
        rest = [rows for r, rows in zip(records, rows_of, strict=True) if r[group] != title]
        cal = fit(list(fixed) + rest * repeat, way)
        for r, rows in zip(records, rows_of, strict=True):
            if r[group] != title:
                continue
            if not rows:
                best.append((r, 0.0, 0.0, False))
                continue
            p = cal.probability(Evidence(rows[0][0]))
            best.append((r, p, answer_f1(r, r["result"]["answers"][0]["text"]), rows[0][1]))
            others += [(cal.probability(Evidence(v), best=False), label) for v, label in rows[1:]]
    return best, others


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("records", nargs="+", type=Path, help="records of `fit_calibration.py collect` (tune articles)")
    ap.add_argument("--way", action="append", choices=WAYS, help="ways of fitting to compare (default: all)")
    ap.add_argument("--fit-also", action="append", type=Path, default=[],
                    help="records in every fit, never scored (repeat)")
    ap.add_argument("--group", choices=("article", "file"), default="article",
                    help="what is held out: an article (a document of a gold file), or a gold file")
    ap.add_argument("--repeat", type=int, default=1, help="weight of the scored records in the fits (rows repeated)")
    args = ap.parse_args(argv)
    records = read_records(args.records)
    missing = [r["qid"] for r in records if args.group not in r]
    if missing:
        print(f"error: record {missing[0]} has no {args.group!r} (only collect-gold records name their file)",
              file=sys.stderr)
        return 1
    if args.repeat < 1:
        print("error: --repeat must be at least 1", file=sys.stderr)
        return 1
    fixed = [candidate_rows(r) for r in read_records(args.fit_also)] if args.fit_also else []
    print(f"{len(records)} records of {len({r[args.group] for r in records})} {args.group}s, each scored by a fit "
          f"on the others (x{args.repeat}){' and ' + str(len(fixed)) + ' more records' if fixed else ''}\n")
    print("| fitted | unanswerable abstained (answerable F1 within 3) | not indexed abstained (within 2) "
          "| ECE best spans | ECE other candidates |")
    print("|---|---|---|---|---|")
    for way in args.way or WAYS:
        best, others = held_out_scores(records, way, fixed=fixed, group=args.group, repeat=args.repeat)
        shown = [(p, right) for _, p, _, right in best]
        print(f"| {way} | {abstained_within(best, 'unanswerable', 3.0):.1f} % "
              f"| {abstained_within(best, 'outside', 2.0):.1f} % | {expected_calibration_error(shown, 15):.3f} "
              f"| {expected_calibration_error(others, 15) if others else float('nan'):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
