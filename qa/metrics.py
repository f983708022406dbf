"""SQuAD answer metrics (the official v1.1/v2.0 normalisation, exact match, token F1) and percentiles."""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse white space."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 of the normalised strings (v2.0 rule: two empty strings score 1)."""
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(gold).split()
    if not pred_toks or not gold_toks:
        return float(pred_toks == gold_toks)
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_toks)
    recall = same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def max_over_gold(metric, prediction: str, golds: list[str] | tuple[str, ...]) -> float:
    """Best score of ``prediction`` against any gold answer; no gold answers means abstention is right.

    As the official SQuAD v2.0 script: gold answers that normalise to nothing are dropped (none left: the
    question counts as unanswerable), and against no answer a prediction scores 1 when it normalises to "".
    """
    golds = [g for g in golds if normalize_answer(g)]
    if not golds:
        return float(normalize_answer(prediction) == "")
    return max(metric(prediction, g) for g in golds)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default), ``q`` in [0, 1]; None when there are no values."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, samples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``b - a`` over paired per-question scores, and its bootstrap interval at ``level``.

    The questions are resampled with replacement ``samples`` times (seeded, so the interval is repeatable);
    an interval above zero says ``b`` is measurably better than ``a`` on this set.

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty score lists, got {len(a)} and {len(b)}")
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for s in range(0, samples, 1000):  # blocks of 1,000 resamples: bounded memory for large sets
        n = min(1000, samples - s)
        means[s : s + n] = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(diff.mean()), float(lo), float(hi)


def reliability_bins(
    pairs: Sequence[tuple[float, bool]], bins: int = 15
) -> list[tuple[float, float, int, float, float]]:
    """Equal-width bins of [0, 1] over ``(score, right)`` pairs: ``(low, high, n, mean score, share right)``.

    A score of exactly 1 falls in the last bin; empty bins are listed with n = 0 (mean score and share 0).
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    sums = [[0, 0.0, 0] for _ in range(bins)]
    for score, right in pairs:
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score {score} is outside [0, 1]")
        b = min(int(score * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += score
        sums[b][2] += bool(right)
    return [(i / bins, (i + 1) / bins, n, (s / n if n else 0.0), (r / n if n else 0.0))
            for i, (n, s, r) in enumerate(sums)]


def expected_calibration_error(pairs: Sequence[tuple[float, bool]], bins: int = 15) -> float:
    """ECE: the mean over equal-width bins of |share right - mean score|, weighted by the bin's share of pairs.

    0 is perfectly calibrated (of the answers scored 0.8, 80 % are right). Raises ValueError with no pairs.
    """
    if not pairs:
        raise ValueError("expected_calibration_error needs at least one (score, right) pair")
    return sum(n * abs(acc - conf) for _, _, n, conf, acc in reliability_bins(pairs, bins)) / len(pairs)
