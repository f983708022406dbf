"""Every figure of the reader's model card for one reader, on the fixed article split (eval/reader_split.json).

    python eval/reader_figures.py --reader qa/models/reader --name v4 --out ~/qa-runs/figures [--data DIR]
        [--steps gold,tune,e2e,seed] [--rank-penalty P] [--min-score T] [--skip-done]

Steps (each writes OUT/NAME/<step>.json and per-question reports beside it):
- gold: the reader given the gold paragraph: v1.1 on the dev articles (squad11-dev-train.json less the
  v20_train and tune articles), and v2.0 (answerable and unanswerable) on the dev_v20 articles, read once with
  no threshold so that abstention at every threshold is known.
- gold-tune: the gold-paragraph figures on the tune articles (v1.1, and v2.0 by threshold): where training
  choices (such as the negatives' shares) are made.
- tune: choices made on the tune articles only: rank_penalty from end-to-end candidates of the v1.1 tune
  questions (hybrid, top-k 5; the F1 of the best answer, never abstaining, for each penalty of a grid), then
  min_score from the v2.0 tune questions end to end with that penalty (the threshold of best SQuAD v2 F1).
- e2e: end to end (hybrid, top-k 5) on the v1.1 dev articles, with --rank-penalty/--min-score or the tune
  step's choices. A reader with a calibration.json has no tune step (its threshold comes with the calibration,
  its rank_penalty from eval/fit_calibration.py penalty): e2e and seed use the calibration's min_score.
- seed: eval/gold.jsonl against an index of seeds/.
With --skip-done a step whose figures OUT/NAME/figures.json already holds is not run again, so a chain of steps
cut off by the end of a session resumes where it stopped.
Compare two readers question by question with eval/compare_reports.py on the reports.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.config import Settings  # noqa: E402
from qa.evaluation import evaluate, evaluate_file, load_gold, select_articles, squad_index_dir  # noqa: E402
from qa.metrics import f1_score, max_over_gold  # noqa: E402
from qa.reports import write_report  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_records import PENALTIES, best_abstention  # noqa: E402  (shared with the calibration scripts)

#: Each step and the key of figures.json that holds its figures.
STEP_KEYS = {"gold": "gold", "gold-tune": "gold_tune", "tune": "tune", "e2e": "e2e", "seed": "seed"}
THRESHOLDS = tuple(round(x, 3) for x in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99))


def split() -> dict:
    return json.loads((ROOT / "eval" / "reader_split.json").read_text(encoding="utf-8"))


def v11_dev(data: Path) -> list[str]:
    """The v1.1 dev articles: every article of squad11-dev-train.json in neither v20_train nor tune."""
    s = split()
    gold = load_gold(data / "squad11-dev-train.json")
    return sorted({d.title for d in gold.documents} - set(s["v20_train"]) - set(s["tune"]))


def _summary(summary) -> dict:
    return summary.to_dict()


def run_gold(settings: Settings, data: Path, out: Path) -> dict:
    s = split()
    res = {}
    v11, _ = evaluate_file(data / "squad11-dev-train.json", settings=settings, mode="reader",
                           articles=v11_dev(data))
    write_report(v11, out / "gold-v11-dev.jsonl")
    res["v11_dev"] = _summary(v11)
    held, _ = evaluate_file(data / "squad11-dev-train.json", settings=settings, mode="reader",
                            articles=s["v4_held_out"])
    write_report(held, out / "gold-v11-v4-held-out.jsonl")
    res["v11_v4_held_out"] = _summary(held)
    v20, _ = evaluate_file(data / "squad20-dev-half-train.json", settings=settings, mode="reader",
                           articles=s["dev_v20"], threshold=0.0)
    write_report(v20.with_threshold(settings.min_score), out / "gold-v20-dev.jsonl")
    res["v20_dev_by_threshold"] = {str(t): _summary(v20.with_threshold(t)) for t in THRESHOLDS}
    res["v20_dev_at_min_score"] = _summary(v20.with_threshold(settings.min_score))
    return res


def abstention_within(rows, points: float = 3.0) -> dict:
    """The issue's operating point: the most unanswerable questions abstained on at a threshold where answerable
    F1 stays within ``points`` of never abstaining. Every score of ``rows`` (QuestionRows read with no
    threshold) is tried as the threshold, not a grid: a reader whose unanswerable scores fall below 0.1 would
    show none abstained on a 0.1 grid."""
    ans = [(r.score or 0.0, r.answered_f1 or 0.0) for r in rows if r.answerable]
    una = [r.score or 0.0 for r in rows if not r.answerable]
    if not ans or not una:
        raise SystemExit("error: abstention_within needs answerable and unanswerable questions")
    share, threshold, f1 = best_abstention(ans, una, points)
    never = 100 * sum(f for _, f in ans) / len(ans)
    return {"threshold": round(threshold, 4), "unanswerable_abstained": round(share, 2),
            "answerable_f1": round(f1, 2), "answerable_f1_never": round(never, 2)}


def run_gold_tune(settings: Settings, data: Path, out: Path) -> dict:
    """The gold-paragraph figures on the tune articles (where training choices are made; never reported)."""
    tune = split()["tune"]
    v11, _ = evaluate_file(data / "squad11-dev-train.json", settings=settings, mode="reader", articles=tune,
                           threshold=0.0)
    write_report(v11, out / "gold-v11-tune.jsonl")
    v20, _ = evaluate_file(data / "squad20-dev-half-train.json", settings=settings, mode="reader", articles=tune,
                           threshold=0.0)
    write_report(v20.with_threshold(settings.min_score), out / "gold-v20-tune.jsonl")
    by_t = {str(t): _summary(v20.with_threshold(t)) for t in THRESHOLDS}
    return {"v11_tune_never_abstain": _summary(v11), "v11_tune_at_min_score": _summary(v11.with_threshold(
        settings.min_score)), "v20_tune_by_threshold": by_t, "v20_tune_within_3": abstention_within(v20.rows)}


def _candidates(settings: Settings, gold_path: Path, titles: list[str]) -> list[dict]:
    """Per question of ``titles``: its gold answers and every answer the reader finds in its top-k passages,
    with the logit of its rank-free score and its passage's rank (so any rank penalty can be applied later)."""
    from rich.progress import track

    from qa.indexing import index_documents
    from qa.pipeline import Assistant

    gold = load_gold(gold_path)
    index_dir = squad_index_dir(gold_path, settings)
    index_documents(gold.documents, index_dir, settings=settings)
    picked = select_articles(gold, titles)
    bare = replace(settings, rank_penalty=0.0)
    assistant = Assistant.open(index_dir, bare)
    out = []
    try:
        for ex in track(picked.examples, description=f"candidates {gold_path.name}", transient=True):
            hits = assistant.retrieve(ex.question, k=bare.passages_k)
            rank_of = {h.chunk.chunk_id: h.rank for h in hits}
            answers = assistant.read(ex.question, hits, max_answers=20, min_score=0.0).answers
            out.append({"id": ex.qid, "gold": list(ex.answers), "cands": [
                {"text": a.text, "logit": _logit(a.score), "rank": rank_of[a.chunk_id]} for a in answers]})
    finally:
        assistant.close()
    return out


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def _best(cands: list[dict], penalty: float) -> tuple[str, float]:
    """The answer a rank penalty would put first, and its score."""
    if not cands:
        return "", 0.0
    c = max(cands, key=lambda c: c["logit"] - penalty * math.log1p(c["rank"]))
    return c["text"], 1 / (1 + math.exp(-(c["logit"] - penalty * math.log1p(c["rank"]))))


def run_tune(settings: Settings, data: Path, out: Path) -> dict:
    s = split()
    v11 = _candidates(settings, data / "squad11-dev-train.json", s["tune"])
    by_penalty = {}
    for p in PENALTIES:
        f1 = [max_over_gold(f1_score, _best(q["cands"], p)[0], q["gold"]) for q in v11]
        by_penalty[str(p)] = 100 * sum(f1) / len(f1)
    penalty = float(max(by_penalty, key=lambda k: (by_penalty[k], -float(k))))
    v20 = _candidates(settings, data / "squad20-dev-half-train.json", s["tune"])
    by_threshold = {}
    for t in THRESHOLDS:
        scores = []
        for q in v20:
            text, score = _best(q["cands"], penalty)
            answered = text if score >= t else ""
            scores.append(max_over_gold(f1_score, answered, q["gold"]) if q["gold"] else float(answered == ""))
        by_threshold[str(t)] = 100 * sum(scores) / len(scores)
    min_score = float(max(by_threshold, key=lambda k: (by_threshold[k], -float(k))))
    (out / "tune-candidates.json").write_text(json.dumps({"v11": v11, "v20": v20}) + "\n", encoding="utf-8")
    return {"v11_tune_questions": len(v11), "v20_tune_questions": len(v20), "f1_by_rank_penalty": by_penalty,
            "rank_penalty": penalty, "v2_f1_by_min_score": by_threshold, "min_score": min_score}


def run_e2e(settings: Settings, data: Path, out: Path) -> dict:
    s = split()
    res = {}
    summary, _ = evaluate_file(data / "squad11-dev-train.json", settings=settings, articles=v11_dev(data))
    write_report(summary, out / "e2e-v11-dev.jsonl")
    res["v11_dev"] = _summary(summary)
    held = summary.rows
    ids = {e.qid for e in select_articles(load_gold(data / "squad11-dev-train.json"), s["v4_held_out"]).examples}
    res["v11_v4_held_out_f1"] = 100 * sum(r.f1 for r in held if r.qid in ids) / max(1, len(ids))
    return res


def run_seed(settings: Settings, out: Path) -> dict:
    from qa.indexing import build_index
    from qa.pipeline import Assistant

    index_dir = out / "seed-index"
    build_index([ROOT / "seeds"], index_dir, settings=settings)
    assistant = Assistant.open(index_dir, settings)
    try:
        summary = evaluate(assistant, load_gold(ROOT / "eval" / "gold.jsonl"))
    finally:
        assistant.close()
    write_report(summary, out / "seed.jsonl")
    return _summary(summary)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reader", required=True, help="reader folder")
    ap.add_argument("--name", required=True, help="name of this reader's results folder")
    ap.add_argument("--out", type=Path, required=True, help="results folder (outside the work tree)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "squad", help="SQuAD folder")
    ap.add_argument("--steps", default="gold,tune,e2e,seed")
    ap.add_argument("--rank-penalty", type=float, default=None, help="for e2e and seed (default: the tune step's)")
    ap.add_argument("--min-score", type=float, default=None, help="for e2e and seed (default: the tune step's)")
    ap.add_argument("--threads", type=int, default=None, help="reader and embedder threads (default: every core)")
    ap.add_argument("--skip-done", action="store_true", help="skip a step whose figures figures.json already holds")
    args = ap.parse_args(argv)
    out = args.out / args.name
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(reader=str(Path(args.reader).resolve()), threads=args.threads)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEP_KEYS]
    if unknown:
        raise SystemExit(f"error: unknown step(s) {', '.join(map(repr, unknown))} (steps: {', '.join(STEP_KEYS)})")
    results_path = out / "figures.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    from qa.machine import describe_machine  # CPU, cores, load average, Python: latency depends on them

    if not isinstance(results.get("machine"), dict):  # figures of older versions named one machine for all steps
        results["machine"] = {}
    from qa.calibration import CALIBRATION_FILE

    calibration = Path(args.reader) / CALIBRATION_FILE
    calibrated = calibration.is_file()
    # its own threshold, which qa.pipeline applies when none is given
    calibration_min_score = json.loads(calibration.read_text())["min_score"] if calibrated else None
    if calibrated and "tune" in steps:
        raise SystemExit(f"error: {args.reader} has a {CALIBRATION_FILE}: its min_score was chosen with it "
                         "(eval/fit_calibration.py fit) and rank_penalty is chosen on the same records "
                         "(eval/fit_calibration.py penalty); the tune step is for a reader's own score. Run the "
                         "other steps (with --rank-penalty if penalty chose another).")
    for step in steps:
        if args.skip_done and STEP_KEYS[step] in results:
            print(f"{step}: already in {results_path}, skipped", flush=True)
            continue
        results["machine"][step] = describe_machine()
        t0 = time.time()
        if step == "gold":
            results["gold"] = run_gold(settings, args.data, out)
        elif step == "gold-tune":
            results["gold_tune"] = run_gold_tune(settings, args.data, out)
        elif step == "tune":
            results["tune"] = run_tune(settings, args.data, out)
        elif step in ("e2e", "seed"):
            tuned = {} if calibrated else results.get("tune", {})
            p = args.rank_penalty if args.rank_penalty is not None else tuned.get("rank_penalty", settings.rank_penalty)
            t = args.min_score if args.min_score is not None else tuned.get("min_score", settings.min_score)
            chosen = replace(settings, rank_penalty=p, min_score=t)
            if calibrated and args.min_score is None:
                t = f"calibration ({calibration_min_score})"
            results[step] = {"rank_penalty": p, "min_score": t,
                             **(run_e2e(chosen, args.data, out) if step == "e2e" else run_seed(chosen, out))}
        results.setdefault("seconds", {})[step] = round(time.time() - t0, 1)
        results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"{step}: {time.time() - t0:.0f} s -> {results_path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
