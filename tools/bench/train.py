"""Train suite: seconds per step and peak RSS of lora vs qpa-lora vs qtha on one model, same batch.

Each round runs every method once for a few steps (round-robin, so load drifts hit all methods
alike); a method's time is the median over rounds of each run's median step time, and its peak
RSS the largest over rounds. Evaluation is cut to a minimum since it is not what is measured.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from common import environment, markdown_table, write_suite
from fits import fit

METHODS: dict[str, list[str]] = {
    "lora": ["--method", "lora"],
    "qpa-lora": ["--method", "qpa-lora"],
    "qtha": ["--method", "qtha", "--qtha-inner", "32", "--qtha-bond", "4"],  # the fit table's budget-sized QTHA
}


def run(out_dir: Path, model: str, data: str, steps: int, rounds: int, threads: int, device: str,
        fit_args: list[str], methods: list[str] | None = None) -> dict[str, Any]:
    """Run the suite and write train.{json,md} into ``out_dir``."""
    common = ["--model", model, "--data", data, "--steps", str(steps), "--eval-every", "0", "--eval-tokens", "512",
              "--threads", str(threads), "--device", device, "--seed", "0", *fit_args]
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in methods or METHODS}
    for round_ in range(rounds):
        for name in samples:
            summary = fit(out_dir / "train-runs" / name, [*common, *METHODS[name]])
            samples[name].append(summary)
            print(f"round {round_}: {name} {summary['seconds_per_step_median']:.3f} s/step, "
                  f"{summary['peak_rss_mb']:.0f} MB", flush=True)
    results = {
        name: {
            "seconds_per_step": statistics.median(s["seconds_per_step_median"] for s in runs),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in runs),
            "trainable": runs[0]["counts"]["trainable"],
            "tokens_per_step": runs[0]["tokens_per_step"],
        }
        for name, runs in samples.items()
    }
    payload = {
        "suite": "train",
        "settings": {"model": model, "data": data, "device": device, "steps": steps, "rounds": rounds, "threads": threads,
                     "fit_args": fit_args},
        "environment": environment(["torch", "transformers", "peft", "quimb"]),
        "results": results,
    }
    first = next(iter(results))
    rows = [[name, f"{r['trainable']:,}", r["tokens_per_step"], f"{r['seconds_per_step']:.3f}",
             f"{r['seconds_per_step'] / results[first]['seconds_per_step']:.2f}x", f"{r['peak_rss_mb']:.0f}"]
            for name, r in results.items()]
    markdown = (f"## Train: {model} on {data}, {steps} steps x {rounds} rounds, {threads} thread(s), device {device}\n\n"
                + markdown_table(["method", "trainable", "tokens/step", "s/step (median)", f"vs {first}", "peak RSS (MB)"], rows))
    print(markdown)
    write_suite(out_dir, "train", payload, markdown)
    return payload
