"""Rich renderables for `qa eval`: the summary, the threshold sweep and the failed questions."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from qa.evaluation import FAILURE_LABELS, EvalSummary, QuestionRow

_NONE = "–"


def _pct(x: float | None) -> str:
    return _NONE if x is None else f"{x:.1f}"


def _ms(x: float | None) -> str:
    if x is None:
        return _NONE
    return f"{x:.1f} ms" if x < 10 else f"{x:.0f} ms"


def summary_table(summary: EvalSummary) -> Table:
    """A two-column table of the metrics of one evaluation.

    Args:
        summary: the result of :func:`qa.evaluation.evaluate`.

    Returns:
        The Rich table.
    """
    where = f"{summary.gold_kind} gold {summary.gold_path}"
    table = Table(
        title=escape(f"qa eval · {summary.mode} mode · {where}"), show_header=False, title_justify="left"
    )
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("", style="dim")

    table.add_row(
        "questions", str(summary.n), f"{summary.has_answer_n} answerable, {summary.no_answer_n} not"
    )
    if summary.reads:
        table.add_row("exact match", _pct(summary.exact_match), "% (SQuAD normalisation)")
        table.add_row("F1", _pct(summary.f1), "% token overlap")
        table.add_row(
            "answerable", f"{_pct(summary.has_answer_exact_match)} / {_pct(summary.has_answer_f1)}", "EM / F1 %"
        )
        table.add_row("unanswerable", _pct(summary.no_answer_accuracy), "% abstained on")
    else:
        table.add_row("exact match / F1", _NONE, "not measured: retrieval mode runs no reader")
    recall = summary.recall_at_k
    if recall is not None:
        table.add_section()
        for k, v in recall.items():
            table.add_row(f"recall@{k}", _pct(v), f"% of {summary.retrieval_n} questions")
        mrr = summary.mrr
        table.add_row("MRR", _NONE if mrr is None else f"{mrr:.3f}", "first relevant passage in the top 20")
    table.add_section()
    table.add_row("latency p50", _ms(summary.latency_p50_ms), "per question")
    table.add_row("latency p95", _ms(summary.latency_p95_ms), "per question")
    failures = summary.failures
    if failures:
        table.add_section()
    for label, count in failures.items():
        style = "red" if count else ""
        table.add_row(label.replace("_", " "), f"[{style}]{count}[/]" if style else str(count), "")
    table.add_section()
    if summary.reads:
        table.add_row("threshold", format_threshold(summary.threshold), "abstain below this answer score")
        ece = summary.expected_calibration_error
        if ece is not None:
            table.add_row("calibration error", f"{ece:.3f}", "ECE of the best answers' scores (right = F1 >= 0.5)")
    if summary.retriever is not None:
        note = "no reader" if summary.passages_k is None else f"{summary.passages_k} passages to the reader"
        table.add_row("retriever", escape(summary.retriever), note)
    return table


def _thin(n: int, keep: int, max_rows: int) -> list[int]:
    """At most ``max_rows`` evenly spread indices of ``range(n)``, always including ``keep``."""
    if n <= max_rows:
        return list(range(n))
    step = (n - 1) / max(1, max_rows - 2)
    picked = {round(i * step) for i in range(max_rows - 1)} | {keep, n - 1}
    return sorted(picked)


def format_threshold(t: float) -> str:
    """A threshold readable where answer scores crowd (logistic scores pile up next to 0 and 1): 0.437,
    1 - 2.4e-05, 3.1e-06."""
    if 0.999 < t < 1.0:
        return f"1 - {1.0 - t:.1e}"
    if 0.0 < t < 0.001:
        return f"{t:.1e}"
    return f"{t:.3f}"


def sweep_table(
    curve: Sequence[tuple[float, float, float, float | None]],
    best: float,
    *,
    max_rows: int | None = 25,
) -> Table:
    """The threshold sweep, with the best threshold highlighted.

    Args:
        curve: from :func:`qa.evaluation.sweep_thresholds`.
        best: from :func:`qa.evaluation.best_threshold`.
        max_rows: show at most this many thresholds, evenly spread (the best always shown); None: all.

    Returns:
        The Rich table.
    """
    table = Table(title="abstention threshold sweep", title_justify="left")
    table.add_column("threshold", justify="right")
    table.add_column("EM %", justify="right")
    table.add_column("F1 %", justify="right")
    table.add_column("no-answer acc %", justify="right")
    table.add_column("")
    best_i = next((i for i, row in enumerate(curve) if row[0] == best), -1)
    indices = list(range(len(curve))) if max_rows is None else _thin(len(curve), best_i, max_rows)
    for i in indices:
        if i < 0:
            continue
        t, em, f1, acc = curve[i]
        is_best = i == best_i
        table.add_row(
            format_threshold(t),
            f"{em:.1f}",
            f"{f1:.1f}",
            _pct(acc),
            "◀ best F1" if is_best else "",
            style="bold green" if is_best else None,
        )
    return table


def failures_table(rows: Sequence[QuestionRow], *, limit: int | None = 20) -> Table:
    """The wrong questions (those with a failure label), by label then id.

    Args:
        rows: ``summary.rows``.
        limit: show at most this many; None: all.

    Returns:
        The Rich table.
    """
    order = {label: i for i, label in enumerate(FAILURE_LABELS)}
    wrong = sorted(
        (r for r in rows if r.label is not None), key=lambda r: (order.get(r.label or "", 99), r.qid)
    )
    shown = wrong if limit is None else wrong[:limit]
    title = f"failed questions ({len(shown)} of {len(wrong)})"
    table = Table(title=title, title_justify="left")
    table.add_column("id", style="dim")
    table.add_column("label", style="red")
    table.add_column("question")
    table.add_column("gold")
    table.add_column("prediction")
    table.add_column("score", justify="right")
    for r in shown:
        gold = " | ".join(r.gold) if r.gold else "(no answer)"
        pred = r.prediction if r.prediction else f"(abstained; best: {r.best_answer or '-'})"
        table.add_row(
            escape(r.qid),
            escape(r.label or ""),
            escape(r.question),
            escape(gold),
            escape(pred),
            _NONE if r.score is None else f"{r.score:.2f}",
        )
    return table


def reliability_table(summary: EvalSummary) -> Table:
    """The reliability table: per score bin, how many best answers fell in it, their mean score, and the share
    that was right (F1 >= 0.5). A calibrated score has the two close; empty bins are left out."""
    ece = summary.expected_calibration_error
    title = "Reliability of the score" + ("" if ece is None else f" · expected calibration error {ece:.3f}")
    table = Table(title=title, title_justify="left")
    table.add_column("score", justify="left")
    table.add_column("answers", justify="right")
    table.add_column("mean score", justify="right")
    table.add_column("right", justify="right")
    table.add_column("gap", justify="right")
    for lo, hi, n, conf, acc in summary.reliability():
        if n:
            gap = acc - conf
            style = "red" if abs(gap) > 0.1 else ""
            table.add_row(f"{lo:.2f}-{hi:.2f}", str(n), f"{conf:.2f}", f"{acc:.2f}",
                          f"[{style}]{gap:+.2f}[/]" if style else f"{gap:+.2f}")
    return table
