"""Questions whose answer is not in the index: how often qa abstains, and what a similarity floor would change.

    python eval/out_of_corpus.py ../shared/data/squad/squad11-dev-train.json \
        --article Steam_engine --article Packet_switching --article Immune_system --article Imperialism

Every article of the file becomes one document (its paragraphs joined by a blank line), chunked and indexed
the way `qa index` does. The questions of the named articles are asked twice, end to end with the default
settings: against an index of all articles (inside: they should be answered) and against one without the named
articles (outside: the right output is to abstain). Indexes are built once under --work.

It also measures a rule qa does not ship, a floor on the best dense cosine of the question to any passage
(abstain below it): the floor is chosen on the first half of the named articles (F1 inside and abstention
outside, weighed equally) and reported on the second half.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.config import Settings  # noqa: E402
from qa.errors import QAError  # noqa: E402
from qa.indexing import index_documents  # noqa: E402
from qa.metrics import f1_score, max_over_gold  # noqa: E402
from qa.pipeline import Assistant  # noqa: E402
from qa.schema import Document  # noqa: E402
from qa.squad import load_squad  # noqa: E402

FLOORS = tuple(round(0.30 + 0.025 * i, 3) for i in range(13))  # 0.30 .. 0.60


def ask_all(index_dir: Path, questions: list[dict], settings: Settings, label: str) -> list[dict]:
    """Per question: the best dense cosine, and the best answer's text and score (read with no threshold)."""
    from rich.progress import track

    assistant = Assistant.open(index_dir, settings)
    retriever, out = assistant.retriever, []
    try:
        for q in track(questions, description=label, transient=True):
            vec = retriever.embedder.encode_query(q["question"])
            dense = retriever.retrieve_vector(q["question"], vec, 1, mode="dense")
            hits = retriever.retrieve_vector(q["question"], vec, settings.passages_k)
            answers = assistant.reader.read(q["question"], hits, max_answers=1, min_score=0.0)
            best = answers[0] if answers else None
            out.append({**q, "cosine": dense[0].score if dense else 0.0,
                        "prediction": best.text if best else "", "score": best.score if best else 0.0})
    finally:
        assistant.close()
    return out


def summary(inside: list[dict], outside: list[dict], min_score: float, floor: float) -> tuple[float, float, float]:
    """(F1 inside, % abstained on inside, % abstained on outside) when answering needs both thresholds."""
    def answers(r: dict) -> bool:
        return r["score"] >= min_score and r["cosine"] >= floor

    f1 = 100 * sum(max_over_gold(f1_score, r["prediction"], r["answers"]) for r in inside if answers(r)) / len(inside)
    return (f1, 100 * sum(not answers(r) for r in inside) / len(inside),
            100 * sum(not answers(r) for r in outside) / len(outside))


def main(argv: list[str] | None = None) -> int:
    """Build both indexes, ask every question against each, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("squad", type=Path, help="SQuAD v1.1/v2.0 JSON file")
    ap.add_argument("--article", action="append", required=True,
                    help="article whose questions are asked (repeat; the first half chooses the floor)")
    ap.add_argument("--work", type=Path, default=Path("runs/out-of-corpus"), help="folder for the indexes")
    args = ap.parse_args(argv)
    if len(set(args.article)) < 2:
        ap.error("name at least two articles: the first half chooses the floor, the second checks it")
    # one pair of indexes per file and article set, so that a run with other articles never reuses them
    key = hashlib.sha256(json.dumps([str(args.squad.resolve()), sorted(args.article)]).encode()).hexdigest()[:12]
    work = args.work / f"{args.squad.stem}-{key}"

    settings = Settings.from_env()
    try:
        articles = [a for a in load_squad(args.squad) if a.paragraphs]
        titles = {a.title for a in articles}
        unknown = [t for t in args.article if t not in titles]
        if unknown:
            raise QAError(f"{args.squad}: no article titled {', '.join(map(repr, unknown))}")
        docs = [Document(a.title, "\n\n".join(p.context for p in a.paragraphs), title=a.title, source=str(args.squad))
                for a in articles]
        questions = [{"article": a.title, "question": q.question, "answers": list(q.answers)}
                     for a in articles if a.title in args.article for p in a.paragraphs for q in p.questions
                     if q.answers]
        index_documents(docs, work / "inside", settings=settings)
        index_documents([d for d in docs if d.doc_id not in args.article], work / "outside", settings=settings)
        inside = ask_all(work / "inside", questions, settings, "inside")
        outside = ask_all(work / "outside", questions, settings, "outside")
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    choice = set(args.article[: max(1, len(args.article) // 2)])
    def part(rows: list[dict], chosen: bool) -> list[dict]:
        return [r for r in rows if (r["article"] in choice) == chosen]

    halves = {"choice": (part(inside, True), part(outside, True)), "check": (part(inside, False), part(outside, False)),
              "all": (inside, outside)}
    print(f"{len(questions)} questions of {', '.join(args.article)}; corpus {len(docs)} articles; "
          f"top-k {settings.passages_k}, {settings.retriever}, min_score {settings.min_score}\n")
    print("| rule | set | F1 inside | abstained inside | abstained outside |\n|---|---|---|---|---|")
    for name, (ins, outs) in halves.items():
        f1, fa, ab = summary(ins, outs, settings.min_score, 0.0)
        print(f"| shipped (answer score only) | {name} | {f1:.1f} | {fa:.1f} % | {ab:.1f} % |")
    best = max(FLOORS, key=lambda c: sum(summary(*halves["choice"], settings.min_score, c)[i] for i in (0, 2)))
    for name, (ins, outs) in halves.items():
        f1, fa, ab = summary(ins, outs, settings.min_score, best)
        print(f"| + cosine floor {best} (chosen on choice) | {name} | {f1:.1f} | {fa:.1f} % | {ab:.1f} % |")
    print("\nEvery floor, check half:\n")
    print("| floor | F1 inside | abstained inside | abstained outside |\n|---|---|---|---|")
    for c in FLOORS:
        f1, fa, ab = summary(*halves["check"], settings.min_score, c)
        print(f"| {c} | {f1:.1f} | {fa:.1f} % | {ab:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
