"""The dev figures of a training run: the reader on each dev question's gold paragraph (EM, F1, no-answer accuracy).

`qa train-reader` scores its held-out ``--dev-article`` titles with it at the end of a run (training.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qa.metrics import exact_match, f1_score, max_over_gold
from qa.spans import clean_span, decode_window

if TYPE_CHECKING:
    from qa.squad import SquadQuestion
    from qa.training import TrainConfig

__all__ = ["DevScores", "predict_paragraph_answers", "score_dev"]


@dataclass(frozen=True, slots=True)
class DevScores:
    """Reader-on-gold-paragraph figures on the dev articles (rates in percent)."""

    n_answerable: int
    exact_match: float
    f1: float
    n_unanswerable: int
    no_answer_accuracy: float | None
    has_answer_f1_never_abstain: float


def predict_paragraph_answers(
    model,
    tokenizer,
    items: list[tuple[str, str]],
    *,
    max_length: int,
    stride: int,
    max_answer_tokens: int,
    batch_size: int = 64,
    device: str = "cpu",
) -> list[tuple[str, float]]:
    """Best answer and its margin over "no answer" for each (question, context) pair.

    The margin is best span logit minus the null logit of the same window; a reader abstains
    when it is below its threshold. Used by the recipe's dev evaluation.
    """
    import torch

    out: list[tuple[str, float]] = []
    model.eval()
    for b in range(0, len(items), batch_size):
        chunk = items[b : b + batch_size]
        enc = tokenizer(
            [q for q, _ in chunk],
            [c for _, c in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )
        inputs = {k: enc[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        with torch.inference_mode():
            res = model(**inputs)
        s_all = res.start_logits.float().cpu().numpy()
        e_all = res.end_logits.float().cpu().numpy()
        best: dict[int, tuple[str, float]] = {}
        for i, ex_i in enumerate(enc["overflow_to_sample_mapping"].tolist()):
            seq_ids = enc.sequence_ids(i)
            mask = np.array([s == 1 for s in seq_ids])
            cands = decode_window(
                s_all[i], e_all[i], enc["offset_mapping"][i].tolist(), mask, max_answer_tokens=max_answer_tokens
            )
            if not cands:
                continue
            context = chunk[ex_i][1]
            tidied = ((c, clean_span(context, c.char_start, c.char_end)) for c in cands)
            c, span = next(((c, t) for c, t in tidied if t is not None), (None, None))
            if c is None or span is None:
                continue
            text = context[span[0] : span[1]]
            if ex_i not in best or best[ex_i][1] < c.margin:
                best[ex_i] = (text, c.margin)
        out.extend(best.get(i, ("", -math.inf)) for i in range(len(chunk)))
    return out


def score_dev(
    model, tokenizer, dev: list[tuple[str, list[SquadQuestion]]], cfg: TrainConfig, threshold: float = 0.0
) -> DevScores:
    """EM/F1 on answerable dev questions (reader on the gold paragraph) and no-answer accuracy."""
    items, golds = [], []
    for ctx, qs in dev:
        for q in qs:
            items.append((q.question, ctx))
            golds.append(q.answers)
    preds = predict_paragraph_answers(
        model,
        tokenizer,
        items,
        max_length=cfg.max_length,
        stride=cfg.doc_stride,
        max_answer_tokens=cfg.max_answer_tokens,
        batch_size=cfg.eval_batch_size,
        device=cfg.device,
    )
    em = f1 = f1_never = 0.0
    n_ans = n_unans = correct_unans = 0
    for (text, margin), gold in zip(preds, golds, strict=True):
        answered = text if margin >= threshold else ""
        if gold:
            n_ans += 1
            em += max_over_gold(exact_match, answered, gold)
            f1 += max_over_gold(f1_score, answered, gold)
            f1_never += max_over_gold(f1_score, text, gold)
        else:
            n_unans += 1
            correct_unans += answered == ""
    return DevScores(
        n_answerable=n_ans,
        exact_match=100 * em / max(n_ans, 1),
        f1=100 * f1 / max(n_ans, 1),
        n_unanswerable=n_unans,
        no_answer_accuracy=100 * correct_unans / n_unans if n_unans else None,
        has_answer_f1_never_abstain=100 * f1_never / max(n_ans, 1),
    )
