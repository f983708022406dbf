"""Fit the calibration of a reader's score (qa.calibration) on questions whose answer is, or is not, in the index.

Two steps, so the slow one (asking) is done once and the fit can be redone in a second:

    # 1. ask questions end to end, with the reader's own score, and keep every candidate and passage
    python eval/fit_calibration.py collect ../shared/data/squad/squad11-train.json --out runs/cal/train.jsonl \\
        --articles 40 --asked 20 --per-article 12 --conditions inside,outside,absent --seed 7
    # the dev figures: all questions of named articles, against an index of every article of the file
    python eval/fit_calibration.py collect ../shared/data/squad/squad11-dev-train.json --out runs/cal/dev11.jsonl \\
        --ask Steam_engine --ask Packet_switching --ask Immune_system --ask Imperialism --conditions inside,outside
    # the questions of a JSONL gold file about a folder of documents (indexed as `qa index` does)
    python eval/fit_calibration.py collect-gold eval/docs4-gold.jsonl --docs eval/docs4 --out runs/cal/docs4.jsonl
    # 2. fit on the first, write the calibration next to the reader's weights
    python eval/fit_calibration.py fit runs/cal/train.jsonl --out qa/models/reader/calibration.json
    # 3. report on records no choice was made on
    python eval/fit_calibration.py report runs/cal/dev11.jsonl --calibration qa/models/reader/calibration.json
    # two readers on the same questions (paired bootstrap); rank_penalty by re-ranking tune records
    python eval/fit_calibration.py compare runs/cal/v4-dev11.jsonl runs/cal/dev11.jsonl --calibration-b CAL.json
    python eval/fit_calibration.py penalty runs/cal/tune.jsonl
    # which candidate to give (the reader's best, as `qa` does, or the most probable), on tune records
    python eval/fit_calibration.py policy runs/cal/tune.jsonl --calibration qa/models/reader/calibration.json

Conditions of `collect`: ``inside`` asks against an index of all chosen articles; ``outside`` against the same
index without the asked articles (the right output is to abstain); ``absent`` against the chosen articles with
the paragraphs the questions were drawn from cut out (the topic is there, the answer mostly not). Each record
is one question in one condition: its gold answers and the ``qa ask --json`` object of the reader's candidates
(no threshold, no calibration). An answer is right when its F1 against the gold answers is >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.calibration import CANDIDATES, FEATURES, LABEL, Calibrator, Logistic, weights_digest  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.errors import QAError  # noqa: E402
from qa.schema import Document  # noqa: E402
from qa.squad import load_squad  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_records import (  # noqa: E402
    answer_f1,
    candidate_rows,
    compare,
    penalty,
    policy,
    read_records,
    report,
    shown,
)

CONDITIONS = ("inside", "outside", "absent")


def choose(articles, *, n_articles: int, n_asked: int, per_article: int, seed: int, ask: list[str]):
    """(corpus articles, {title: [(paragraph index, question)]}) of a seeded draw, or of the named articles."""
    rng = random.Random(seed)
    if ask:
        titles = {a.title for a in articles}
        unknown = [t for t in ask if t not in titles]
        if unknown:
            raise QAError(f"no article titled {', '.join(map(repr, unknown))}")
        corpus = articles
        asked = {a.title: [(i, q) for i, p in enumerate(a.paragraphs) for q in p.questions]
                 for a in articles if a.title in ask}
        return corpus, asked
    pool = [a for a in articles if len(a.paragraphs) >= per_article]
    if len(pool) < n_articles:
        raise QAError(f"only {len(pool)} articles have {per_article} paragraphs; ask for fewer")
    corpus = rng.sample(pool, n_articles)
    asked = {}
    for a in corpus[:n_asked]:
        paras = rng.sample([i for i, p in enumerate(a.paragraphs) if p.questions], per_article)
        asked[a.title] = [(i, rng.choice(a.paragraphs[i].questions)) for i in sorted(paras)]
    return corpus, asked


def documents(corpus, cut: dict[str, set[int]] | None = None) -> list[Document]:
    """One document per article, paragraphs joined by a blank line; ``cut`` drops paragraphs by index."""
    cut = cut or {}
    return [Document(a.title, "\n\n".join(p.context for i, p in enumerate(a.paragraphs)
                                          if i not in cut.get(a.title, ())), title=a.title) for a in corpus]


def build_indexes(corpus, asked, conditions, work: Path, settings: Settings) -> dict[str, Path]:
    """The index of each condition, built once under ``work`` (outside and absent start from a copy of inside)."""
    from qa.indexing import index_documents, remove_documents
    from qa.store import peek_index_manifest
    from qa.store.manifest import FORMAT_VERSION

    for d in (work / c for c in CONDITIONS):  # an index of an older format (or a broken one) is built again
        if (d / "index.sqlite").exists():
            m = peek_index_manifest(d)
            if m is None or m.format_version != FORMAT_VERSION:
                shutil.rmtree(d)
    dirs = {}
    inside = work / "inside"
    if not (inside / "index.sqlite").exists():
        index_documents(documents(corpus), inside, settings=settings)
    dirs["inside"] = inside
    if "outside" in conditions:
        d = work / "outside"
        if not (d / "index.sqlite").exists():
            shutil.copytree(inside, work / "outside.tmp", dirs_exist_ok=True)
            remove_documents(list(asked), work / "outside.tmp")
            (work / "outside.tmp").rename(d)
        dirs["outside"] = d
    if "absent" in conditions:
        d = work / "absent"
        if not (d / "index.sqlite").exists():
            shutil.copytree(inside, work / "absent.tmp", dirs_exist_ok=True)
            cut = {t: {i for i, _ in qs} for t, qs in asked.items()}
            index_documents([doc for doc in documents(corpus, cut) if doc.doc_id in asked], work / "absent.tmp",
                            settings=settings)
            (work / "absent.tmp").rename(d)
        dirs["absent"] = d
    return dirs


def ask_record(assistant, question: str, gold, **fields) -> str:
    """One record line: ``fields`` (condition, article, ...), the question asked end to end with the reader's own
    score and no threshold, its gold answers, and every candidate and passage."""
    t0 = time.perf_counter()
    result = assistant.ask(question, max_answers=CANDIDATES, min_score=0.0)
    return json.dumps({**fields, "question": question, "gold": list(gold),
                       "rank_penalty": assistant.reader.rank_penalty,
                       "seconds": round(time.perf_counter() - t0, 4), "result": result.to_dict()}) + "\n"


def collect(args) -> int:
    from rich.progress import track

    from qa.pipeline import Assistant

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        raise QAError(f"unknown condition(s) {', '.join(bad)}; choose from {', '.join(CONDITIONS)}")
    articles = [a for a in load_squad(args.squad) if a.paragraphs]
    corpus, asked = choose(articles, n_articles=args.articles, n_asked=args.asked, per_article=args.per_article,
                           seed=args.seed, ask=args.ask)
    settings = Settings.from_env(reader=args.reader, threads=args.threads, calibration="none")
    work = args.work / f"{args.squad.stem}-{'-'.join(sorted(asked))[:60]}-{len(corpus)}-s{args.seed}"
    dirs = build_indexes(corpus, asked, conditions, work, settings)
    done = set()
    if args.out.exists():  # resume: skip what is written
        for line in args.out.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            done.add((r["condition"], r["qid"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as out:
        for cond in conditions:
            assistant = Assistant.open(dirs[cond], settings)
            try:
                todo = [(t, q) for t, qs in asked.items() for _, q in qs if (cond, q.qid) not in done]
                for title, q in track(todo, description=cond):
                    out.write(ask_record(assistant, q.question, q.answers, condition=cond, article=title, qid=q.qid))
                    out.flush()
            finally:
                assistant.close()
    print(f"{args.out}: {len(conditions)} condition(s) x {sum(map(len, asked.values()))} questions")
    return 0


def collect_gold(args) -> int:
    """Records of a JSONL gold file about a folder of documents (``inside``: the folder indexed, as `qa index`
    does); the record's ``article`` is the question's ``doc_id`` (its file's name when it has none)."""
    from rich.progress import track

    from qa.gold import load_gold_jsonl
    from qa.indexing import build_index
    from qa.pipeline import Assistant

    gold = load_gold_jsonl(args.gold)
    if not args.docs.is_dir():
        raise QAError(f"{args.docs}: no such folder of documents")
    settings = Settings.from_env(reader=args.reader, threads=args.threads, calibration="none")
    index = args.work / f"{args.docs.name}-index"
    build_index([args.docs], index, settings=settings)
    done = set()
    if args.out.exists():  # resume: skip what is written
        done = {json.loads(line)["qid"] for line in args.out.read_text(encoding="utf-8").splitlines() if line}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    assistant = Assistant.open(index, settings)
    try:
        with args.out.open("a", encoding="utf-8") as out:
            for ex in track([e for e in gold.examples if e.qid not in done], description=args.gold.name):
                out.write(ask_record(assistant, ex.question, ex.answers, condition="inside",
                                     article=ex.doc_id or args.gold.stem, file=args.gold.stem, qid=ex.qid))
                out.flush()
    finally:
        assistant.close()
    print(f"{args.out}: {len(gold.examples)} questions of {args.gold}")
    return 0


def fit_logistic(rows: list[tuple[tuple[float | None, ...], bool]], c: float = 1.0) -> Logistic:
    """A logistic regression over (features, label) rows (scikit-learn), standardized; a feature not measured
    (None) counts as its mean."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[np.nan if v is None else v for v in values] for values, _ in rows], dtype=np.float64)
    y = np.array([label for _, label in rows], dtype=int)
    if len(set(y.tolist())) < 2:
        raise QAError("the records hold only right or only wrong candidates: nothing to fit")
    mean = np.nanmean(x, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)  # a feature never measured
    x = np.where(np.isnan(x), mean, x)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    return Logistic(tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, model.coef_[0])),
                    float(model.intercept_[0]))


def fit_calibrator(records: list[dict], *, reader_sha256: str, info: dict, c: float = 1.0) -> Calibrator:
    """Two logistic regressions: one over the reader's best candidate of every record (what `qa` answers with or
    abstains on), one over the other candidates (the alternatives it lists)."""
    return calibrator_from_rows([candidate_rows(r) for r in records], reader_sha256=reader_sha256, info=info, c=c)


def calibrator_from_rows(per_record: list[list[tuple[tuple[float | None, ...], bool]]], *, reader_sha256: str,
                         info: dict, c: float = 1.0) -> Calibrator:
    """:func:`fit_calibrator` over each record's :func:`candidate_rows`, computed once by the caller."""
    best, others = [], []
    for rows in per_record:
        best += rows[:1]
        others += rows[1:]
    if not best:
        raise QAError("the records hold no candidate answers: nothing to fit")
    right = sum(label for _, label in best)
    best_model = fit_logistic(best, c)
    # too few other candidates to tell right from wrong (all right or all wrong): they are scored as best spans
    others_model = fit_logistic(others, c) if len({label for _, label in others}) == 2 else best_model
    return Calibrator(best_model, others_model, reader_sha256,
                      {**info, "candidates": len(best) + len(others), "best_candidates": len(best),
                       "right": int(right + sum(label for _, label in others)), "best_right": int(right),
                       "label": LABEL, "C": c})


def fit(args) -> int:
    records = read_records(args.records)
    reader = args.reader or str(Settings().reader_path)
    digest = weights_digest(reader)
    if digest is None:
        raise QAError(f"reader {reader}: no local weights file to tie the calibration to")
    info = {"reader": args.reader_name or Path(reader).name, "records": [p.name for p in args.records],
            "questions": len(records), "fitted": time.strftime("%Y-%m-%d")}
    min_score = None
    if args.hold_out:
        min_score, note = choose_threshold(records, args.hold_out, args.outside_abstention, args.c, args.seed,
                                           args.max_f1_drop)
        info["min_score_choice"] = note
        print(note)
    cal = replace(fit_calibrator(records, reader_sha256=digest, info=info, c=args.c), min_score=min_score)
    cal.save(args.out)
    print(f"{args.out}: fitted on {cal.info['candidates']} candidates of {len(records)} questions "
          f"({cal.info['right']} right; the reader's best: {cal.info['best_right']} of {cal.info['best_candidates']}"
          f" right); min_score {min_score}")
    print(f"  {'weights':20s} {'best':>7s} {'others':>7s}")
    for name, w, o in sorted(zip(FEATURES, cal.best.coef, cal.others.coef, strict=True), key=lambda t: -abs(t[1])):
        print(f"  {name:20s} {w:+7.3f} {o:+7.3f}")
    return 0


def choose_threshold(records: list[dict], hold_out: int, abstention: float, c: float, seed: int,
                     max_f1_drop: float | None = None) -> tuple[float, str]:
    """The default abstention threshold of a calibration, chosen on ``hold_out`` asked articles (a seeded draw)
    left out of a first fit: the lowest score at which it abstains on ``abstention`` of those articles' ``outside``
    questions, or (``max_f1_drop``) the highest at which the F1 of their answerable ``inside`` questions is at
    most that many points below never abstaining."""
    # drawn among the articles also asked about with the article not indexed: the rule needs their outside
    # questions (records of a JSONL gold file, all inside, are only fitted on)
    titles = sorted({r["article"] for r in records if r["condition"] == "outside"})
    if len(titles) <= hold_out:
        raise QAError(f"only {len(titles)} articles with outside records; hold out fewer than that")
    held = set(random.Random(seed).sample(titles, hold_out))
    cal = fit_calibrator([r for r in records if r["article"] not in held], reader_sha256="-", info={}, c=c)
    check = [(r, *shown(r, cal)) for r in records if r["article"] in held]
    outside = sorted(score for r, _, score in check if r["condition"] == "outside")
    if not outside:
        raise QAError("the held-out articles have no outside records")
    inside = [(answer_f1(r, text), score) for r, text, score in check if r["condition"] == "inside" and r["gold"]]
    if not inside:
        raise QAError("the held-out articles have no answerable inside records")

    def f1(threshold: float) -> float:
        return 100 * sum(f for f, score in inside if score >= threshold) / len(inside)

    never = f1(0.0)
    if max_f1_drop is None:
        t = outside[min(len(outside) - 1, math.ceil(abstention * len(outside)))]
        rule = f"abstains on {100 * abstention:.0f} % of the outside questions"
    else:
        # scores at which F1 changes, highest first: the first within the drop is the highest such threshold
        t = next((s for s in sorted({score for _, score in inside}, reverse=True) if never - f1(s) <= max_f1_drop),
                 0.0)
        t = math.floor(t * 1e4) / 1e4  # shown with 4 decimals: rounded down, so it keeps what t keeps
        rule = f"the highest at which inside F1 falls by <= {max_f1_drop:g} points"
    away = 100 * sum(score < t for score in outside) / len(outside)
    note = (f"min_score {t:.4f}: {rule} of {hold_out} held-out articles (seed {seed}); their inside F1 "
            f"{never:.1f} never abstaining -> {f1(t):.1f}, outside questions abstained {away:.1f} %")
    return round(t, 4), note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    c = sub.add_parser("collect", help="ask questions and keep every candidate (slow)")
    c.add_argument("squad", type=Path)
    c.add_argument("--out", type=Path, required=True, help="records file (JSONL; appended to, so a run resumes)")
    c.add_argument("--ask", action="append", default=[], help="ask every question of this article (repeat)")
    c.add_argument("--articles", type=int, default=40, help="articles drawn for the index")
    c.add_argument("--asked", type=int, default=20, help="of which this many are asked about")
    c.add_argument("--per-article", type=int, default=12, help="paragraphs (one question each) per asked article")
    c.add_argument("--conditions", default="inside,outside,absent")
    c.add_argument("--seed", type=int, default=7)
    c.add_argument("--reader", default=None, help="reader folder (default: the shipped one)")
    c.add_argument("--threads", type=int, default=None)
    c.add_argument("--work", type=Path, default=Path("runs/calibration"), help="folder for the indexes")
    g = sub.add_parser("collect-gold", help="the same for a JSONL gold file about a folder of documents")
    g.add_argument("gold", type=Path, help="JSONL gold file (eval/README.md)")
    g.add_argument("--docs", type=Path, required=True, help="the folder its questions are about")
    g.add_argument("--out", type=Path, required=True, help="records file (JSONL; appended to, so a run resumes)")
    g.add_argument("--reader", default=None, help="reader folder (default: the shipped one)")
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--work", type=Path, default=Path("runs/calibration"), help="folder for the index")
    f = sub.add_parser("fit", help="fit a calibration on records")
    f.add_argument("records", type=Path, nargs="+")
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--reader", default=None, help="reader folder it is for (default: the shipped one)")
    f.add_argument("--reader-name", default=None, help="name recorded for the reader (e.g. 'qa reader v4')")
    f.add_argument("-C", dest="c", type=float, default=1.0, help="inverse regularization strength")
    f.add_argument("--hold-out", type=int, default=0,
                   help="choose the default min_score on this many asked articles left out of a first fit")
    f.add_argument("--outside-abstention", type=float, default=0.8,
                   help="share of the held-out outside questions the chosen min_score abstains on")
    f.add_argument("--max-f1-drop", type=float, default=None,
                   help="instead: the highest min_score at which the held-out inside F1 falls by at most this many "
                        "points")
    f.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    r = sub.add_parser("report", help="abstention, F1 and calibration error on records")
    r.add_argument("records", type=Path, nargs="+")
    r.add_argument("--calibration", default=None, help="calibration file (default: the reader's own score)")
    r.add_argument("--threshold", type=float, default=0.5)
    pp = sub.add_parser("penalty", help="F1 of the best candidate by rank_penalty (choose it on tune records)")
    pp.add_argument("records", type=Path, nargs="+")
    po = sub.add_parser("policy", help="give the reader's best candidate or the most probable (choose on tune records)")
    po.add_argument("records", type=Path, nargs="+")
    po.add_argument("--calibration", required=True, help="calibration file")
    cp = sub.add_parser("compare", help="two readers' records of the same questions, paired bootstrap")
    cp.add_argument("a", type=Path)
    cp.add_argument("b", type=Path)
    cp.add_argument("--calibration-a", default=None, help="calibration of A (default: its reader's own score)")
    cp.add_argument("--calibration-b", default=None, help="calibration of B (default: its reader's own score)")
    cp.add_argument("--threshold", type=float, default=0.5)
    cp.add_argument("--threshold-b", type=float, default=None, help="B's threshold (default: --threshold)")
    args = ap.parse_args(argv)
    try:
        steps = {"collect": collect, "collect-gold": collect_gold, "fit": fit, "report": report, "penalty": penalty,
                 "compare": compare, "policy": policy}
        return steps[args.step](args)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
