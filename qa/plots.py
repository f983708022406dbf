"""`qa eval --plot`: the reliability diagram of the score and the threshold curve, as one PNG (matplotlib)."""

from __future__ import annotations

from pathlib import Path

from qa.errors import QAError
from qa.summary import EvalSummary

#: Thresholds drawn on the curve (the sweep table lists every distinct score; a plot needs no more than this).
CURVE_POINTS = 201


def plot_eval(summary: EvalSummary, path: str | Path) -> Path:
    """Draw ``summary``'s reliability diagram (left) and threshold curve (right) into a PNG at ``path``.

    Left: for each score bin, the share of best answers that were right (F1 >= 0.5) against the bin's mean
    score; the diagonal is a perfectly calibrated score, the bars' widths follow the answers in each bin.
    Right: EM, F1 and the share of questions abstained on (and of unanswerable ones, when there are some) at
    every abstention threshold, with the run's threshold and the best-F1 one marked.

    Raises:
        QAError: retrieval mode (no scores), or matplotlib is not installed.
    """
    if not summary.reads:
        raise QAError("--plot needs the reader's scores; --mode retrieval runs no reader")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise QAError("--plot draws with matplotlib, which is not installed: pip install matplotlib") from None

    path = Path(path)
    bins = summary.reliability()
    curve = threshold_curve(summary)
    best = max(curve, key=lambda c: (c[2], -c[0]))[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), dpi=110)
    try:
        total = max(1, sum(n for _, _, n, _, _ in bins))
        for lo, hi, n, conf, acc in bins:
            if n:
                left.bar((lo + hi) / 2, acc, width=(hi - lo) * 0.9, color="tab:blue",
                         alpha=0.35 + 0.65 * min(1.0, 5 * n / total), edgecolor="tab:blue")
                left.plot([conf], [acc], "o", color="tab:orange", markersize=4)
        left.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
        ece = summary.expected_calibration_error
        left.set(xlim=(0, 1), ylim=(0, 1), xlabel="score of the best answer", ylabel="share right (F1 >= 0.5)",
                 title=f"Reliability ({total} answers, ECE {0.0 if ece is None else ece:.3f})")
        ts = [c[0] for c in curve]
        right.plot(ts, [c[1] for c in curve], label="EM", color="tab:blue")
        right.plot(ts, [c[2] for c in curve], label="F1", color="tab:green")
        right.plot(ts, [c[3] for c in curve], label="abstained (all)", color="tab:grey")
        if summary.no_answer_n:
            right.plot(ts, [c[4] for c in curve], label="abstained (unanswerable)", color="tab:red")
        right.axvline(summary.threshold, color="black", linewidth=1, label=f"threshold {summary.threshold:.2f}")
        right.axvline(best, color="tab:green", linestyle=":", linewidth=1, label=f"best F1 at {best:.2f}")
        right.set(xlim=(0, 1), ylim=(0, 100), xlabel="abstention threshold", ylabel="%",
                  title="Answer quality by threshold")
        right.legend(loc="lower left", fontsize=8)
        fig.suptitle(f"qa eval · {summary.mode} mode · {Path(summary.gold_path).name}", fontsize=10)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def threshold_curve(summary: EvalSummary, points: int = CURVE_POINTS) -> list[tuple[float, float, float, float, float]]:
    """``(threshold, EM, F1, % abstained, % of unanswerable abstained)`` at ``points`` evenly spaced thresholds,
    re-scored from the rows as :meth:`qa.scoring.QuestionRow.at` does (no model calls)."""
    rows = [r for r in summary.rows if r.was_read]
    n = max(1, len(rows))
    n_unans = sum(1 for r in rows if not r.answerable)
    out = []
    for i in range(points):
        t = i / (points - 1)
        em = f1 = abst = abst_unans = 0.0
        for r in rows:
            if r.best_answer and r.score is not None and r.score >= t:
                em += r.answered_em or 0.0
                f1 += r.answered_f1 or 0.0
            else:
                abst += 1
                if not r.answerable:  # abstaining on an unanswerable question is right
                    em += 1.0
                    f1 += 1.0
                    abst_unans += 1
        out.append((t, 100 * em / n, 100 * f1 / n, 100 * abst / n, 100 * abst_unans / max(1, n_unans)))
    return out
