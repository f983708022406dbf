"""Two `qa eval --report` files of the same questions, compared question by question (paired bootstrap).

    qa eval GOLD --reader A --report a.jsonl ...; qa eval GOLD --reader B --report b.jsonl ...
    python eval/compare_reports.py a.jsonl b.jsonl [--samples 10000] [--json]

Prints EM and F1 of each (answerable questions only, and no-answer accuracy where there are unanswerable
ones), the mean difference B - A and its 95 % bootstrap interval over the questions both reports hold. An
interval above zero says B is measurably better on this set. It also lists the answerable questions that A
gets right (F1 >= 0.5) and B does not: "no answerable question lost", as a shipping rule asks of the seed file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.metrics import paired_bootstrap  # noqa: E402


def read_report(path: Path) -> dict[str, dict]:
    """The rows of a JSONL report by question id."""
    rows = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"error: {path}:{n}: not JSON ({exc})") from None
            rows[row["id"]] = row
    return rows


def compare(a: dict[str, dict], b: dict[str, dict], samples: int = 10_000) -> dict:
    """Figures of both and the paired differences over the shared question ids."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise SystemExit("error: the two reports share no question id")
    ans = [q for q in shared if a[q]["gold"]]
    unans = [q for q in shared if not a[q]["gold"]]
    out: dict = {"questions": len(shared), "answerable": len(ans), "unanswerable": len(unans),
                 "only_in_a": len(set(a) - set(b)), "only_in_b": len(set(b) - set(a))}
    out["lost"] = [q for q in ans if a[q]["f1"] >= 0.5 > b[q]["f1"]]  # right in A, wrong (or abstained) in B
    for metric in ("em", "f1"):
        xa, xb = [100 * a[q][metric] for q in ans], [100 * b[q][metric] for q in ans]
        if ans:
            d, lo, hi = paired_bootstrap(xa, xb, samples=samples)
            out[metric] = {"a": sum(xa) / len(xa), "b": sum(xb) / len(xb), "diff": d, "ci95": [lo, hi]}
    if unans:
        xa = [100.0 * bool(a[q]["abstained"]) for q in unans]
        xb = [100.0 * bool(b[q]["abstained"]) for q in unans]
        d, lo, hi = paired_bootstrap(xa, xb, samples=samples)
        out["no_answer_accuracy"] = {"a": sum(xa) / len(xa), "b": sum(xb) / len(xb), "diff": d, "ci95": [lo, hi]}
    return out


def bound(x: float) -> str:
    """An interval end, signed; one that rounds to 0.00 but is not 0 keeps four decimals, so that "above zero"
    can be read off the table (-0.0014 is not above zero)."""
    return f"{x:+.2f}" if x == 0 or abs(x) >= 0.005 else f"{x:+.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="report of the reader to compare against (JSONL)")
    ap.add_argument("b", type=Path, help="report of the new reader (JSONL)")
    ap.add_argument("--samples", type=int, default=10_000, help="bootstrap resamples")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    res = compare(read_report(args.a), read_report(args.b), args.samples)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{res['questions']} shared questions ({res['answerable']} answerable, {res['unanswerable']} not); "
          f"only in A {res['only_in_a']}, only in B {res['only_in_b']}")
    print(f"{'':22}{'A':>8}{'B':>8}{'B - A':>8}   95 % interval")
    for key, name in (("em", "EM (answerable)"), ("f1", "F1 (answerable)"), ("no_answer_accuracy", "no-answer acc. %")):
        if key in res:
            r = res[key]
            lo, hi = r["ci95"]
            print(f"{name:22}{r['a']:8.2f}{r['b']:8.2f}{r['diff']:+8.2f}   {bound(lo)} .. {bound(hi)}")
    print(f"answerable right in A (F1 >= 0.5), not in B: {', '.join(res['lost']) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
