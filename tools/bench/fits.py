"""Running ``qcompress fit`` as subprocesses for the train and quality suites, reusing tools/fit_table.py.

Each fit is its own process so its peak RSS (reported by fit itself) belongs to that run alone,
and a crash in one variant cannot corrupt the others' numbers.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, for fit_table

from fit_table import qcompress  # noqa: E402


def fit(out: Path, flags: list[str], reuse: bool = False) -> dict[str, Any]:
    """Summary of ``qcompress fit FLAGS --out OUT``; with ``reuse`` a finished run's summary.json is read instead."""
    summary = out / "summary.json"
    if reuse and summary.is_file():
        return json.loads(summary.read_text())
    return qcompress("fit", *flags, "--out", str(out), "--force")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value, so one seed still renders)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
