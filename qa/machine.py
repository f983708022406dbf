"""Where a benchmark ran: CPU model, cores, load, thread settings and library versions (every figure that
depends on speed is printed with it)."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa.config import Settings

__all__ = ["Machine", "cpu_model", "describe_machine", "machine_info"]

_PACKAGES = (
    ("qa", "qa"),
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("sentence-transformers", "sentence-transformers"),
    ("onnxruntime", "onnxruntime"),
    ("faiss", "faiss-cpu"),
    ("numpy", "numpy"),
)


@dataclass(frozen=True, slots=True)
class Machine:
    """Where the benchmark ran."""

    cpu: str
    cores: int | None
    torch_threads: int | None  # None when torch was not imported
    onnx_threads: int | None  # Settings.threads; None means onnxruntime's default
    system: str
    versions: dict[str, str | None] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: CPU model, cores, OS."""
        return f"{self.cpu}, {self.cores} cores, {self.system}"


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(settings: Settings) -> Machine:
    """CPU model, cores, thread settings and library versions of this process."""
    torch_threads = None
    if "torch" in sys.modules:  # only report it when indexing already paid for the import
        torch_threads = int(sys.modules["torch"].get_num_threads())
    import qa

    versions: dict[str, str | None] = {name: _version(dist) for name, dist in _PACKAGES}
    versions["qa"] = versions["qa"] or qa.__version__  # a source checkout that is not installed
    versions["python"] = platform.python_version()
    return Machine(
        cpu=cpu_model(),
        cores=os.cpu_count(),
        torch_threads=torch_threads,
        onnx_threads=settings.threads,
        system=f"{platform.system()} {platform.machine()}",
        versions=versions,
    )


def describe_machine() -> str:
    """One line: CPU model, cores, load average and Python (latency figures depend on all four)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{cpu_model()}; {os.cpu_count()} cores; load average {load}; Python {platform.python_version()}"
