"""What every suite shares: interleaved median timing, and one way of writing JSON + Markdown results.

Timings are interleaved (round-robin over the things compared) so that background load, which on
a shared 2-core machine comes and goes, hits every contender alike; a median then discards the
runs it hit hardest.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qcompress.atomic import write_atomic, write_json_atomic, write_text_atomic
from qcompress.versions import library_versions


def interleaved_medians(
    steps: Mapping[str, Callable[[], None]], repeats: int | Mapping[str, int], warmup: int = 2
) -> dict[str, float]:
    """Median ms of each step, run round-robin; a slow step may get fewer ``repeats`` (it drops out early)."""
    counts = {name: repeats if isinstance(repeats, int) else repeats[name] for name in steps}
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(warmup + max(counts.values(), default=0)):
        for name, step in steps.items():
            if round_ >= warmup + counts[name]:
                continue
            start = time.perf_counter()
            step()
            if round_ >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in samples.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; cells are formatted by the caller, None becomes an em dash."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("—" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def environment(packages: Sequence[str]) -> dict[str, Any]:
    """Versions and core count recorded with every result, since timings mean nothing without them."""
    return {"versions": library_versions(packages), "cpu_count": os.cpu_count()}


def write_suite(out_dir: Path, suite: str, payload: dict[str, Any], markdown: str) -> list[Path]:
    """``<suite>.json`` and ``<suite>.md`` in ``out_dir``, each written atomically; returns the paths."""
    json_path, md_path = out_dir / f"{suite}.json", out_dir / f"{suite}.md"
    write_json_atomic(json_path, payload)
    write_text_atomic(md_path, markdown)
    return [json_path, md_path]


def new_figure(panels: int = 1):
    """A headless matplotlib figure and its axes, ``panels`` side by side (Agg: benchmarks run on servers without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=(6 + 5 * (panels - 1), 4 + 0.2 * (panels - 1)))


def save_png(figure, path: Path) -> None:
    """Write ``figure`` to ``path`` atomically and free it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)
