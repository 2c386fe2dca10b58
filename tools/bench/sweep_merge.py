"""Several fair sweeps' reports as one: the rows of sweeps run at different times, under one protocol.

Why: a full sweep is days of fits on 2 CPU cores, so it is run a few variants at a time, often on
machines that do not keep each other's ``runs/`` (a finished fit is reused only where its run folder
still is). Each part's ``sweep.json`` is complete for its variants; this joins them into one table,
one ablation comparison and one Pareto plot per budget, refusing any part whose protocol differs
(model, seeds, learning-rate grid, texts, fit flags, device) or whose base-model figures disagree,
so the joined report is exactly what one ``run.py sweep`` over all their variants would write.
Every row keeps the file it came from (``source``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import write_suite
from sweep import versus_ablation
from sweep_report import TEXTS, plot, render

#: settings that make two sweeps one protocol; the step budgets may differ (each row carries its own)
PROTOCOL = ("model", "seeds", "lr_grid", "max_extensions", "train_data", "validation", "test_data", "ood_data",
            "fit_args", "device")
#: largest relative difference of the base model's perplexities (or of a row reported twice) taken as the same figure:
#: another machine's BLAS rounds differently in the 7th digit, a different text or model differs in the 1st
SAME_FIGURE = 1e-5


class MergeError(SystemExit):
    """A part that cannot be joined: one line naming the part and what differs (the bench tools' error style)."""


def load(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise MergeError(f"error: {path}: not a readable sweep report ({error}): pass the sweep.json a `run.py sweep` wrote")
    if not isinstance(payload, dict) or payload.get("suite") != "sweep":
        suite = payload.get("suite") if isinstance(payload, dict) else type(payload).__name__
        raise MergeError(f"error: {path}: suite is {suite!r}, not 'sweep': pass the sweep.json a `run.py sweep` wrote")
    if not all(isinstance(payload.get(key), kind) for key, kind in (("settings", dict), ("base", dict), ("rows", list))):
        raise MergeError(f"error: {path}: a sweep report without its settings, base figures or rows: pass the sweep.json "
                         "a `run.py sweep` wrote, unedited")
    if payload["settings"].get("report_only"):
        raise MergeError(f"error: {path}: an interim report (--report-only) has incomplete rows: merge the finished sweep's report")
    return payload


def same_figure(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SAME_FIGURE)


def check_protocol(first: tuple[Path, dict[str, Any]], other: tuple[Path, dict[str, Any]]) -> None:
    """Raise unless ``other`` ran the same protocol as ``first`` and scored the same base model."""
    (first_path, reference), (path, payload) = first, other
    for key in PROTOCOL:
        ours, theirs = reference["settings"].get(key), payload["settings"].get(key)
        if ours != theirs:
            raise MergeError(f"error: {path}: {key} is {theirs!r} where {first_path} has {ours!r}: "
                             "merge only sweeps run with the same protocol")
    for text in TEXTS:
        if not same_figure(reference["base"][text], payload["base"][text]):
            raise MergeError(f"error: {path}: the base model's {text} perplexity is {payload['base'][text]:.4f} where "
                             f"{first_path} has {reference['base'][text]:.4f}: not the same model or text")


def same_row(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two reports of one (variant, steps) agree: the same chosen rate, seeds, size and every seed's figures
    (what the ablation comparison reads), so keeping either changes nothing."""
    if (a["chosen_lr"], a["seeds"], a.get("trainable")) != (b["chosen_lr"], b["seeds"], b.get("trainable")):
        return False
    ours, theirs = a.get("per_seed", {}), b.get("per_seed", {})
    if ours.keys() != theirs.keys() or any(ours[text].keys() != theirs[text].keys() for text in ours):
        return False
    return all(same_figure(ours[text][seed], theirs[text][seed]) for text in ours for seed in ours[text])


def merge(parts: Sequence[tuple[Path, dict[str, Any]]], variants: Sequence[str] | None = None) -> dict[str, Any]:
    """One sweep payload from ``parts`` (path, payload), keeping only ``variants`` (all when None).

    A (variant, steps) reported by several parts must agree in every figure; the first part's row is kept."""
    if not parts:
        raise MergeError("error: nothing to merge: pass one or more sweep.json files")
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for path, payload in parts:
        check_protocol(parts[0], (path, payload))
        for row in payload["rows"]:
            if variants is not None and row["variant"] not in variants:
                continue
            key = (row["variant"], row["steps"])
            kept = rows.setdefault(key, {**row, "source": row.get("source", str(path))})  # a merged part keeps its rows' origin
            if not same_row(kept, row):
                raise MergeError(f"error: {path}: {row['variant']} at {row['steps']} steps differs from the row in "
                                 f"{kept['source']} (they are different fits): leave one part out, or keep the other "
                                 "rows by name with --sweep-variants")
    missing = [variant for variant in variants or [] if variant not in {variant for variant, _ in rows}]
    if missing:
        raise MergeError(f"error: no part has a row for {', '.join(missing)}: run them first, or drop them from --sweep-variants")
    if not rows:
        raise MergeError("error: the parts have no rows: pass sweep reports of finished sweeps")
    first = parts[0][1]
    steps = sorted({steps for _, steps in rows})
    return {
        "suite": "sweep",
        "settings": {**first["settings"], "steps": steps, "jobs": None, "merged_from": [str(path) for path, _ in parts]},
        "environment": {str(path): payload["environment"] for path, payload in parts},
        "base": first["base"],
        "rows": list(rows.values()),
        "versus_ablation": versus_ablation(list(rows.values())),
    }


def run(out: Path, paths: Sequence[Path], variants: Sequence[str] | None = None) -> dict[str, Any]:
    """Merge ``paths`` into ``out``/sweep.{json,md} and one sweep-<steps>.png per budget (inputs are read first,
    so ``out``'s own sweep.json may be one of them)."""
    payload = merge([(path, load(path)) for path in paths], variants)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render(payload)
    write_suite(out, "sweep", payload, markdown)
    for steps in payload["settings"]["steps"]:
        plot(payload, steps, out / f"sweep-{steps}.png")
    print(markdown)
    return payload
