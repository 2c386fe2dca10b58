"""Train suite: seconds per step and peak RSS of lora vs qpa-lora vs qtha on one model, same batch.

Each round runs every method once for a few steps (round-robin, so load drifts hit all methods
alike); a method's time is the median over rounds of each run's median step time, and its peak
RSS the largest over rounds. Evaluation is cut to a minimum since it is not what is measured.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import environment, markdown_table, write_suite
from fits import fit

METHODS: dict[str, list[str]] = {
    "lora": ["--method", "lora"],
    "qpa-lora": ["--method", "qpa-lora"],
    "qtha": ["--method", "qtha", "--qtha-inner", "32", "--qtha-bond", "4"],  # the fit table's budget-sized QTHA
    # the same QTHA with its circuits recomputed in backward, as --set recompute=auto chooses when memory is short
    "qtha-recompute": ["--method", "qtha", "--qtha-inner", "32", "--qtha-bond", "4", "--set", "recompute=always"],
}


def peft_loop(model: str, batch_size: int, seq_len: int, steps: int, threads: int, device: str, precision: str) -> dict[str, Any]:
    """The bare PEFT LoRA loop (tools/bench/peft_loop.py) on the same model, batch and device."""
    from qcompress.models import DEFAULT_MODEL, prepare_default_model

    folder = str(prepare_default_model()) if model == DEFAULT_MODEL else model
    command = [sys.executable, str(Path(__file__).with_name("peft_loop.py")), "--model", folder, "--batch-size", str(batch_size),
               "--seq-len", str(seq_len), "--steps", str(steps), "--device", device, "--threads", str(threads),
               "--precision", "bf16" if precision == "bf16" else "fp32"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(out_dir: Path, model: str, data: str, steps: int, rounds: int, threads: int, device: str,
        fit_args: list[str], methods: list[str] | None = None, shapes: list[str] | None = None,
        precision: str = "fp32") -> dict[str, Any]:
    """Run the suite for every batch shape ("4x128": blocks x tokens) and write train.{json,md} into ``out_dir``."""
    results: dict[str, dict[str, Any]] = {}
    sections = []
    for shape in shapes or ["4x128"]:
        batch_size, seq_len = (int(part) for part in shape.split("x"))
        common = ["--model", model, "--data", data, "--steps", str(steps), "--eval-every", "0", "--eval-tokens", "512",
                  "--threads", str(threads), "--device", device, "--seed", "0", "--batch-size", str(batch_size),
                  "--seq-len", str(seq_len), "--precision", precision, *fit_args]
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in methods or METHODS}
        if "lora" in samples:
            samples["peft-loop"] = []
        for round_ in range(rounds):
            for name in samples:
                if name == "peft-loop":
                    summary = peft_loop(model, batch_size, seq_len, steps, threads, device, precision)
                    summary = {"seconds_per_step_median": summary["seconds_per_step"], "peak_rss_mb": None,
                               "peak_gpu_mb": summary["peak_gpu_mb"], "counts": {"trainable": 0},
                               "tokens_per_step": summary["tokens_per_step"]}
                else:
                    summary = fit(out_dir / "train-runs" / shape / name, [*common, *METHODS[name]])
                samples[name].append(summary)
                print(f"{shape} round {round_}: {name} {summary['seconds_per_step_median']:.3f} s/step", flush=True)
        shape_results = {
            name: {
                "seconds_per_step": statistics.median(s["seconds_per_step_median"] for s in runs),
                "peak_rss_mb": max((s["peak_rss_mb"] or 0.0) for s in runs) or None,  # None: not measured (peft-loop)
                "peak_gpu_mb": max((s.get("peak_gpu_mb") or 0.0) for s in runs) or None,
                "trainable": runs[0]["counts"]["trainable"],
                "tokens_per_step": runs[0]["tokens_per_step"],
            }
            for name, runs in samples.items()
        }
        results[shape] = shape_results
        first = next(iter(shape_results))
        rows = [[name, f"{r['trainable']:,}" if name != "peft-loop" else "(same as lora)", r["tokens_per_step"],
                 f"{r['seconds_per_step']:.3f}", f"{r['seconds_per_step'] / shape_results[first]['seconds_per_step']:.2f}x",
                 f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "-", f"{r['peak_gpu_mb']:.0f}" if r["peak_gpu_mb"] else "-"]
                for name, r in shape_results.items()]
        sections.append(f"### batch {batch_size} x {seq_len} tokens\n\n" + markdown_table(
            ["method", "trainable", "tokens/step", "s/step (median)", f"vs {first}", "peak RSS (MB)", "peak GPU (MB)"], rows))
    payload = {
        "suite": "train",
        "settings": {"model": model, "data": data, "device": device, "steps": steps, "rounds": rounds, "threads": threads,
                     "fit_args": fit_args, "shapes": shapes or ["4x128"], "precision": precision},
        "environment": environment(["torch", "transformers", "peft", "quimb"]),
        "results": results,
    }
    markdown = (f"## Train: {model} on {data}, {steps} steps x {rounds} rounds, {threads} thread(s), device {device}, {precision}\n\n"
                "peft-loop: a bare PEFT LoRA loop on the same model, batch and device (tools/bench/peft_loop.py).\n\n"
                + "\n\n".join(sections))
    print(markdown)
    write_suite(out_dir, "train", payload, markdown)
    return payload
