"""Quality suite: held-out perplexity against trainable parameters, over seeds, with the circuit ablation.

Variants: LoRA at r = 4, 8, 16; QPA-LoRA at several n_mlp; the same QPA-LoRA with the circuit
replaced by the ``classical`` backend (a trainable vector of the same N*L size feeding the same
mapping MLP, see qcompress/backends/classical.py), which isolates what the circuit contributes;
and QTHA. Every (variant, seed) is one ``qcompress fit`` process; finished runs are reused, so the
long suite can be stopped and restarted. The base model's perplexity is each zero-initialised
LoRA run's step-0 evaluation: the same held-out tokens and evaluation code as every other row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import environment, new_figure, save_png, markdown_table, write_suite
from fits import fit, mean_std

VARIANTS: dict[str, list[str]] = {
    "lora-r4": ["--method", "lora", "--rank", "4"],
    "lora-r8": ["--method", "lora", "--rank", "8"],
    "lora-r16": ["--method", "lora", "--rank", "16"],
    **{f"qpa-lora-{n}": ["--method", "qpa-lora", "--n-mlp", str(n)] for n in (512, 1024, 2048)},
    **{f"classical-ablation-{n}": ["--method", "qpa-lora", "--n-mlp", str(n), "--backend", "classical"] for n in (512, 1024, 2048)},
    "qtha": ["--method", "qtha", "--qtha-inner", "32", "--qtha-bond", "4"],
}


def run(out_dir: Path, model: str, data: str, steps: int, seeds: list[int], variants: list[str], threads: int,
        device: str, fit_args: list[str]) -> dict[str, Any]:
    """Run every (variant, seed) not already finished; write quality.{json,md,png} into ``out_dir``."""
    common = ["--model", model, "--data", data, "--steps", str(steps), "--eval-every", "0", "--threads", str(threads), "--device", device,
              *fit_args]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for seed in seeds:
        for name in variants:
            summary = fit(out_dir / "quality-runs" / name / f"seed{seed}", [*common, *VARIANTS[name], "--seed", str(seed)],
                          reuse=True)
            runs[name].append(summary)
            print(f"{name} seed {seed}: perplexity {summary['eval_perplexity']:.3f}", flush=True)
    payload = {
        "suite": "quality",
        "settings": {"model": model, "data": data, "device": device, "steps": steps, "seeds": seeds, "threads": threads, "fit_args": fit_args},
        "environment": environment(["torch", "transformers", "peft", "quimb"]),
        "rows": aggregate(runs),
    }
    markdown = render(payload)
    print(markdown)
    write_suite(out_dir, "quality", payload, markdown)
    plot(payload, out_dir / "quality.png")
    return payload


def aggregate(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per variant (mean ± std over seeds), preceded by the base model from the LoRA runs' step 0."""
    base = [s["initial_eval_perplexity"] for name, summaries in runs.items() if name.startswith("lora") for s in summaries]
    rows = [{"variant": "base", "trainable": 0, "perplexity": mean_std(base), "seeds": len(base)}] if base else []
    for name, summaries in runs.items():
        rows.append({"variant": name, "trainable": summaries[0]["counts"]["trainable"], "seeds": len(summaries),
                     "perplexity": mean_std([s["eval_perplexity"] for s in summaries]),
                     "seconds_per_step": mean_std([s["seconds_per_step_median"] for s in summaries])})
    return rows


def render(payload: dict[str, Any]) -> str:
    s = payload["settings"]
    rows = [[r["variant"], f"{r['trainable']:,}", f"{r['perplexity'][0]:.2f} ± {r['perplexity'][1]:.2f}", r["seeds"]]
            for r in payload["rows"]]
    return (f"## Quality: {s['model']} on {s['data']}, {s['steps']} steps, seeds {s['seeds']}\n\n"
            + markdown_table(["variant", "trainable params", "held-out perplexity (mean ± std)", "runs"], rows)
            + "\nclassical-ablation-* = qpa-lora with the circuit replaced by a trainable vector of the same size "
              f"(--backend classical). Device: {s['device']}.\n")


def plot(payload: dict[str, Any], path: Path) -> None:
    """Perplexity against trainable parameters (log x), error bars = std over seeds: the Pareto picture."""
    figure, axes = new_figure()
    families = {"lora": "o", "qpa-lora": "s", "classical-ablation": "^", "qtha": "D"}
    for family, marker in families.items():
        rows = [r for r in payload["rows"] if r["variant"].startswith(family)]
        if rows:
            axes.errorbar([r["trainable"] for r in rows], [r["perplexity"][0] for r in rows],
                          yerr=[r["perplexity"][1] for r in rows], marker=marker, linestyle="-", capsize=3, label=family)
    base = next((r for r in payload["rows"] if r["variant"] == "base"), None)
    if base:
        axes.axhline(base["perplexity"][0], color="grey", linestyle="--", label="base model")
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters")
    axes.set_ylabel("held-out perplexity")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    save_png(figure, path)
