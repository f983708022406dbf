"""What the benchmark scripts of eval/ share: running one of their own steps in a fresh process, saving a report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_step(argv: list[str], what: str) -> dict:
    """Run ``python argv...`` and return the JSON object its last line of output prints.

    Raises:
        RuntimeError: the process failed; the message names ``what`` and ends with its error output.
    """
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what}: failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def save_report(report: dict, out: Path | None) -> None:
    """Write ``report`` as indented JSON to ``out`` (its folder created), when given."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
