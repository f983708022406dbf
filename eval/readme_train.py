"""Training data for the reader from the README gold files: each question with a passage that `qa` retrieves.

    python eval/fit_calibration.py collect-gold eval/docs7-gold.jsonl --docs eval/docs7 \
        --out ~/qa-runs/caldocs/docs7.jsonl --work ~/qa-runs/caldocs/idx          # once per gold file
    python eval/readme_train.py ~/qa-runs/v12/readme-train.json --records ~/qa-runs/caldocs \
        --indexes ~/qa-runs/caldocs/idx docs docs2 docs3 docs4 docs7 docs8
    qa train-reader ... ~/qa-runs/v12/readme-train.json:6 ...

SQuAD is Wikipedia prose; people ask `qa` about manuals and READMEs. The gold files ``eval/NAME-gold.jsonl``
hold questions that people wrote about real README files (``eval/NAME/``). For each gold file NAME this script
reads the ``collect-gold`` records of a reader (``RECORDS/NAME.jsonl``: the passages retrieved end to end for
each question, best first) and the index they were asked of (``INDEXES/NAME-index``), and writes a SQuAD v2.0
file in which:

- every document is an article whose paragraphs are all its indexed passages, as the reader reads them (the
  model view: markup and hard line wraps removed, :mod:`qa.modeltext`), so the trainer's
  ``--paragraph-negatives`` find other passages of the same README;
- an answerable question goes with the highest-ranked retrieved passage whose view holds one of its gold
  answers (the first gold answer, in the gold file's order, found there; its first occurrence), as SQuAD
  places a question in its paragraph; a question no retrieved passage answers is left out and counted;
- an unanswerable question goes, as unanswerable, with the passage retrieved first for it (what `qa` would
  have read it against).

The gold files named here become training data: a file a reader is judged on must not be named.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration_records import read_records  # noqa: E402  (shared with the calibration scripts)

from qa.errors import QAError  # noqa: E402


def place(record: dict, views: dict[str, str]) -> tuple[str, int, str] | None:
    """(chunk id, start, answer) of an answerable record's best retrieved passage that holds a gold answer, or
    ``None``; ``views`` maps a chunk id to its model view's text."""
    for passage in sorted(record["result"]["passages"], key=lambda p: p["rank"]):
        text = views.get(passage["chunk_id"])
        if text is None:
            continue
        for answer in record["gold"]:
            at = text.find(answer)
            if at >= 0:
                return passage["chunk_id"], at, answer
    return None


def build(names: list[str], records_dir: Path, indexes_dir: Path, eval_dir: Path) -> tuple[dict, dict]:
    """The SQuAD v2.0 data and counts (questions placed, answerable and not, left out) per gold file."""
    from qa.gold import load_gold_jsonl
    from qa.modeltext import model_view
    from qa.store.passage_store import PassageStore

    articles: dict[str, dict] = {}  # title -> {chunk id: paragraph}
    counts = {}
    for name in names:
        gold = load_gold_jsonl(eval_dir / f"{name}-gold.jsonl")
        path = records_dir / f"{name}.jsonl"
        if not path.exists():
            raise QAError(f"{path}: no records; run `fit_calibration.py collect-gold` on {name} first")
        records = {r["qid"]: r for r in read_records([path])}
        missing = [e.qid for e in gold.examples if e.qid not in records]
        if missing:
            raise QAError(f"{path}: no record of {len(missing)} question(s) of {name}, e.g. {missing[0]}")
        store = PassageStore.open(indexes_dir / f"{name}-index")
        try:
            views, paragraphs = {}, {}
            for summary in store.document_summaries():
                doc = store.get_document(summary["doc_id"])
                title = f"{name}/{doc.doc_id}"
                articles[title] = {}
                for chunk in store.chunks_of(doc.doc_id):
                    views[chunk.chunk_id] = model_view(chunk.text, doc.source).text
                    paragraphs[chunk.chunk_id] = articles[title][chunk.chunk_id] = {
                        "context": views[chunk.chunk_id], "qas": []}
        finally:
            store.close()
        c = {"answerable": 0, "unanswerable": 0, "left_out": 0}
        for ex in gold.examples:
            r = records[ex.qid]
            qid = f"{name}-{ex.qid}"
            if ex.answerable:
                placed = place(r, views)
                if placed is None:
                    c["left_out"] += 1
                    continue
                chunk_id, start, answer = placed
                paragraphs[chunk_id]["qas"].append({"id": qid, "question": ex.question, "is_impossible": False,
                                                    "answers": [{"text": answer, "answer_start": start}]})
                c["answerable"] += 1
            else:
                top = min(r["result"]["passages"], key=lambda p: p["rank"], default=None)
                if top is None or top["chunk_id"] not in paragraphs:
                    c["left_out"] += 1
                    continue
                paragraphs[top["chunk_id"]]["qas"].append({"id": qid, "question": ex.question,
                                                           "is_impossible": True, "answers": []})
                c["unanswerable"] += 1
        counts[name] = c
    data = [{"title": title, "paragraphs": list(paras.values())} for title, paras in articles.items()
            if any(p["qas"] for p in paras.values())]
    return {"version": "v2.0", "data": data}, counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out", type=Path, help="SQuAD v2.0 JSON file to write")
    ap.add_argument("names", nargs="+", help="gold files: NAME for eval/NAME-gold.jsonl about eval/NAME/")
    ap.add_argument("--records", type=Path, required=True, help="folder of the collect-gold records NAME.jsonl")
    ap.add_argument("--indexes", type=Path, required=True, help="folder of the indexes NAME-index they asked")
    ap.add_argument("--eval-dir", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args(argv)
    try:
        data, counts = build(args.names, args.records, args.indexes, args.eval_dir)
    except QAError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    for name, c in counts.items():
        print(f"{name}: {c['answerable']} answerable, {c['unanswerable']} unanswerable, {c['left_out']} left out")
    total = {k: sum(c[k] for c in counts.values()) for k in ("answerable", "unanswerable", "left_out")}
    print(f"{args.out}: {len(data['data'])} articles, {total['answerable']} answerable, "
          f"{total['unanswerable']} unanswerable questions ({total['left_out']} left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
