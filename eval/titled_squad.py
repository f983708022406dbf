"""A SQuAD file with its article's title as the first line of a share of its paragraphs.

A SQuAD paragraph never holds its article's title, but the first passage of every document `qa` indexes begins
with the document's title line (and a README view often with a heading): a reader trained on SQuAD alone has
never seen a title above the text it reads, and one trained on README passages too learns that heading lines
can start answers. Readers fine-tuned on README questions began answers in the seed article's title ("Moscow"
of "... the Moscow Concert Hall Terror Attack") and ended them in the body (eval/results/reader-v20b-rule.md).
Here a share of the paragraphs gets ``TITLE\\n\\n`` in front (the article's title, "_" read as a space), with
every answer_start moved by its length, so that the answer is still the one the writers marked in the body,
even where the title holds the same words.

    python eval/titled_squad.py SQUAD.json OUT.json --share 0.3 [--seed 2026]

The choice of paragraphs is fixed by the seed (the same file every time). Plausible answers of SQuAD 2.0
questions move with the answers.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SEED = 2026


def title_line(title: str) -> str:
    """The line put above a paragraph: the article title as a reader would see it."""
    return title.replace("_", " ").strip()


def titled(data: dict, share: float, seed: int = SEED) -> tuple[dict, int, int]:
    """``data`` (a SQuAD file's JSON) with ``share`` of its paragraphs titled; returns it with the number of
    paragraphs titled and their number in all. The input is not changed."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"--share must be between 0 and 1, got {share}")
    rng = random.Random(seed)
    out, n_titled, n_all = {**data, "data": []}, 0, 0
    for art in data["data"]:
        line = title_line(str(art.get("title", "")))
        paragraphs = []
        for p in art["paragraphs"]:
            n_all += 1
            if not line or rng.random() >= share:
                paragraphs.append(p)
                continue
            head = f"{line}\n\n"
            shift = len(head)
            qas = []
            for q in p["qas"]:
                q = dict(q)
                for key in ("answers", "plausible_answers"):
                    if key in q:
                        q[key] = [{**a, "answer_start": int(a["answer_start"]) + shift} for a in q[key]]
                qas.append(q)
            paragraphs.append({**p, "context": head + p["context"], "qas": qas})
            n_titled += 1
        out["data"].append({**art, "paragraphs": paragraphs})
    return out, n_titled, n_all


def check(data: dict) -> int:
    """The number of answers checked: each must be the text at its answer_start (raises ValueError if not)."""
    n = 0
    for art in data["data"]:
        for p in art["paragraphs"]:
            ctx = p["context"]
            for q in p["qas"]:
                for key in ("answers", "plausible_answers"):
                    for a in q.get(key, []):
                        s = int(a["answer_start"])
                        if ctx[s : s + len(a["text"])] != a["text"]:
                            raise ValueError(f"question {q.get('id')}: {a['text']!r} is not at {s} of its paragraph")
                        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("squad", type=Path, help="a SQuAD v1.1 or v2.0 JSON file")
    ap.add_argument("out", type=Path, help="where to write the titled copy")
    ap.add_argument("--share", type=float, required=True, help="share of the paragraphs titled (0 to 1)")
    ap.add_argument("--seed", type=int, default=SEED, help="fixes which paragraphs are titled")
    a = ap.parse_args(argv)
    try:
        data = json.loads(a.squad.read_text(encoding="utf-8"))
        out, n_titled, n_all = titled(data, a.share, a.seed)
        n_answers = check(out)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{a.out}: {n_titled} of {n_all} paragraphs titled; {n_answers} answers checked at their offsets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
