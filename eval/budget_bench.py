"""Reader time and F1 by passage budget (top-k) on SQuAD questions; prints a Markdown table.

    python eval/budget_bench.py ../shared/data/squad/squad11-dev-train.json \
        --article Steam_engine --article Packet_switching --article Immune_system --article Imperialism

The file's paragraphs are indexed once into the same cache `qa eval` uses. Each question's top 10
passages are retrieved once; then the reader reads the first k of them for each k, so only reading
is timed. Run it on an idle machine: the times are wall-clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.config import Settings  # noqa: E402
from qa.errors import QAError  # noqa: E402
from qa.evaluation import load_gold, select_articles, squad_index_dir  # noqa: E402
from qa.indexing import index_documents  # noqa: E402
from qa.metrics import f1_score, max_over_gold  # noqa: E402
from qa.pipeline import Assistant  # noqa: E402

BUDGETS = (1, 2, 3, 5, 8, 10)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, time the reader at each budget, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("squad", type=Path, help="SQuAD v1.1/v2.0 JSON file (its paragraphs are the corpus)")
    ap.add_argument("--article", action="append", help="only questions of this article title (repeat)")
    ap.add_argument("--questions", type=int, default=100, help="questions timed, spread evenly [default: 100]")
    args = ap.parse_args(argv)
    if args.questions < 1:
        ap.error(f"--questions must be at least 1, got {args.questions}")

    settings = Settings.from_env()
    try:
        gold = load_gold(args.squad)
        questions = select_articles(gold, args.article).examples if args.article else gold.examples
    except QAError as exc:
        ap.error(str(exc))
    examples = [e for e in questions if e.answers]
    if not examples:
        ap.error("no answerable questions match")
    step = max(1, len(examples) // args.questions)
    examples = examples[::step][: args.questions]
    index_dir = squad_index_dir(args.squad, settings)
    index_documents(gold.documents, index_dir, settings=settings)
    assistant = Assistant.open(index_dir, settings)
    hits = {e.qid: assistant.retrieve(e.question, k=max(BUDGETS)) for e in examples}
    for e in examples[:3]:  # warm-up, untimed
        assistant.read(e.question, hits[e.qid][:5])

    print(f"{len(examples)} questions of {args.squad.name}; {settings.retriever} retrieval; "
          f"rank_penalty {settings.rank_penalty}\n")
    print("| passages (top-k) | reader p50 ms | reader p95 ms | F1 (these questions) |")
    print("|---|---|---|---|")
    for k in BUDGETS:
        times, f1s = [], []
        for e in examples:
            t0 = time.perf_counter()
            result = assistant.read(e.question, hits[e.qid][:k])
            times.append(1000 * (time.perf_counter() - t0))
            f1s.append(max_over_gold(f1_score, result.answers[0].text if result.answers else "", e.answers))
        times.sort()
        p95 = times[max(0, round(0.95 * len(times)) - 1)]
        print(f"| {k} | {statistics.median(times):.0f} | {p95:.0f} | {100 * statistics.mean(f1s):.1f} |", flush=True)
    assistant.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
