"""Eval reports: one line per question, written as JSONL or CSV."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from qa.errors import QAError
from qa.summary import EvalSummary

__all__ = ["REPORT_SUFFIXES", "write_report"]

#: The report formats, by file suffix.
REPORT_SUFFIXES = (".jsonl", ".csv")

_CSV_FIELDS = (
    "id", "question", "gold", "gold_doc_id", "prediction", "abstained", "score", "best_answer",
    "doc_id", "start", "end", "em", "f1", "label", "rank", "latency_ms",
)  # fmt: skip


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return " | ".join(value)
    return value


def write_report(summary: EvalSummary, path: str | Path) -> Path:
    """Write one line per question (see :meth:`qa.scoring.QuestionRow.to_dict`) as JSONL or CSV.

    The format follows the suffix: ``.jsonl`` (gold answers as a list) or ``.csv`` (gold answers
    joined with `` | ``, None as an empty cell). Missing folders are created; the file is replaced
    atomically.

    Args:
        summary: the evaluation.
        path: where to write; must end in .jsonl or .csv.

    Returns:
        The path written.

    Raises:
        QAError: another suffix, or the file cannot be written.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise QAError(f"report {str(p)!r}: unknown format {suffix or '(no suffix)'!r}; use .jsonl or .csv")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                if suffix == ".jsonl":
                    for r in summary.rows:
                        fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
                else:
                    writer = csv.DictWriter(fh, fieldnames=_CSV_FIELDS)
                    writer.writeheader()
                    for r in summary.rows:
                        writer.writerow({k: _csv_cell(v) for k, v in r.to_dict().items()})
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise QAError(f"cannot write report {str(p)!r}: {exc.strerror or exc}") from None
    return p
