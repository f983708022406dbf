"""Unanswerable questions written for SQuAD v1.1 train paragraphs, in the manner of SQuAD 2.0.

SQuAD 2.0's unanswerable questions were written by people against a paragraph, to look answerable there: each
has a plausible answer in the paragraph (a span of the right type) and is still not answered by it (Rajpurkar et
al. 2018, "Know What You Don't Know": negation, antonym, entity swap, mutual exclusion, impossible condition,
other). Only 12 articles of them exist here (`squad20-dev-half-train.json`, most of them dev). This tool samples
paragraphs of the v1.1 train set for writers, checks what they wrote, and joins it with the paragraphs into a
SQuAD v2.0 training file (the paragraph text is not stored in the repo: `eval/written-unanswerable/*.jsonl` names
each paragraph by article title and index).

    python eval/written_unanswerable.py sample SQUAD11_TRAIN OUT_DIR --batches 8 --per-batch 60
    python eval/written_unanswerable.py check SQUAD11_TRAIN eval/written-unanswerable/wu1.jsonl
    python eval/written_unanswerable.py build SQUAD11_TRAIN OUT.json eval/written-unanswerable/*.jsonl

Each written line: {"id", "title", "paragraph", "question", "plausible_answer", "kind"}.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

KINDS = ("negation", "antonym", "entity swap", "mutual exclusion", "impossible condition", "other")
FIELDS = {"id", "title", "paragraph", "question", "plausible_answer", "kind"}
SEED = 2026
MAX_CONTEXT_CHARS = 1100  # about one 256-token window with its question
MAX_DISTINCT_TITLES = 400  # past this many articles in a batch (the train set has 442) titles may repeat


def _paragraphs(squad_path: Path) -> dict[tuple[str, int], dict]:
    data = json.loads(squad_path.read_text(encoding="utf-8"))["data"]
    return {(a["title"], i): p for a in data for i, p in enumerate(a["paragraphs"])}


def sample(squad_path: Path, out_dir: Path, batches: int, per_batch: int) -> list[Path]:
    """Write ``batches`` files of ``per_batch`` paragraphs (distinct articles within a batch where possible)."""
    paras = _paragraphs(squad_path)
    keys = sorted(k for k, p in paras.items() if len(p["context"]) <= MAX_CONTEXT_CHARS)
    rng = random.Random(SEED)
    rng.shuffle(keys)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, pos = [], 0
    for b in range(1, batches + 1):
        chosen, titles = [], set()
        while len(chosen) < per_batch and pos < len(keys):
            key = keys[pos]
            pos += 1
            if key[0] in titles and len(titles) < MAX_DISTINCT_TITLES:
                continue  # skipped for good: each paragraph goes to one batch at most
            titles.add(key[0])
            chosen.append(key)
        path = out_dir / f"wu{b}-paragraphs.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for title, idx in chosen:
                p = paras[(title, idx)]
                row = {"title": title, "paragraph": idx, "context": p["context"],
                       "answerable_questions": [q["question"] for q in p["qas"]]}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def read_written(path: Path, paras: dict[tuple[str, int], dict]) -> list[dict]:
    """Read and check one written file; raises ValueError naming the file, line and fault."""
    rows, ids = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            r = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON: {exc}") from None
        if set(r) != FIELDS:
            raise ValueError(f"{where}: fields {sorted(r)}, expected {sorted(FIELDS)}")
        if r["id"] in ids:
            raise ValueError(f"{where}: id {r['id']!r} repeated")
        ids.add(r["id"])
        key = (r["title"], r["paragraph"])
        if key not in paras:
            raise ValueError(f"{where}: no paragraph {r['paragraph']} in article {r['title']!r}")
        p = paras[key]
        if r["kind"] not in KINDS:
            raise ValueError(f"{where}: kind {r['kind']!r} not one of {KINDS}")
        if not r["question"].strip().endswith("?"):
            raise ValueError(f"{where}: the question does not end with '?'")
        if not r["plausible_answer"] or r["plausible_answer"] not in p["context"]:
            raise ValueError(f"{where}: plausible_answer {r['plausible_answer']!r} is not verbatim in the paragraph")
        if _norm(r["question"]) in {_norm(q["question"]) for q in p["qas"]}:
            raise ValueError(f"{where}: the question is one of the paragraph's answerable questions")
        rows.append(r)
    return rows


def build(squad_path: Path, out: Path, written: list[Path]) -> tuple[int, int]:
    """Write a SQuAD v2.0 file of the written questions over their paragraphs; returns (paragraphs, questions)."""
    paras = _paragraphs(squad_path)
    by_para: dict[tuple[str, int], list[dict]] = {}
    ids: set[str] = set()
    for path in written:
        for r in read_written(path, paras):
            if r["id"] in ids:
                raise ValueError(f"{path}: id {r['id']!r} also in an earlier file")
            ids.add(r["id"])
            by_para.setdefault((r["title"], r["paragraph"]), []).append(r)
    articles: dict[str, list[dict]] = {}
    for (title, idx), rows in sorted(by_para.items()):
        ctx = paras[(title, idx)]["context"]
        qas = [{"id": r["id"], "question": r["question"], "answers": [], "is_impossible": True,
                "plausible_answers": [{"text": r["plausible_answer"],
                                       "answer_start": ctx.index(r["plausible_answer"])}]} for r in rows]
        articles.setdefault(title, []).append({"context": ctx, "qas": qas})
    data = [{"title": t, "paragraphs": ps} for t, ps in articles.items()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"version": "v2.0", "data": data}, ensure_ascii=False), encoding="utf-8")
    return sum(len(ps) for ps in articles.values()), len(ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample", help="write paragraph batches for writers")
    s.add_argument("squad", type=Path)
    s.add_argument("out_dir", type=Path)
    s.add_argument("--batches", type=int, default=8)
    s.add_argument("--per-batch", type=int, default=60)
    c = sub.add_parser("check", help="check written files against their paragraphs")
    c.add_argument("squad", type=Path)
    c.add_argument("written", type=Path, nargs="+")
    b = sub.add_parser("build", help="join written files with their paragraphs into a SQuAD v2.0 file")
    b.add_argument("squad", type=Path)
    b.add_argument("out", type=Path)
    b.add_argument("written", type=Path, nargs="+")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "sample":
            for path in sample(a.squad, a.out_dir, a.batches, a.per_batch):
                print(path)
        elif a.cmd == "check":
            paras = _paragraphs(a.squad)
            for path in a.written:
                rows = read_written(path, paras)
                kinds = {k: sum(r["kind"] == k for r in rows) for k in KINDS}
                n_par = len({(r["title"], r["paragraph"]) for r in rows})
                print(f"OK {path}: {len(rows)} questions on {n_par} paragraphs; {kinds}")
        else:
            n_par, n_q = build(a.squad, a.out, a.written)
            print(f"{a.out}: {n_q} unanswerable questions on {n_par} paragraphs")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
