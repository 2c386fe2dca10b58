"""The fair sweep's Markdown table and Pareto plots (perplexity against trainable parameters, in and out of domain)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import markdown_table, new_figure, save_png

#: plot families by variant-name prefix (first match wins), each with its own marker
PULLED = "-pull"
#: the texts every fit is scored on, in report order
TEXTS = ("validation", "test", "ood")
FAMILIES = {"lora-": "o", "vera": "v", "fourierft": "P", "vblora": "X", "ia3": "<", "tinylora": ">",
            "qpa-lora-": "s", "qpa-vera": "p", "classical-": "^", "qtha": "D", "qpa-dora": "*", "qpa-ffa": "h", PULLED: "d"}


def family(variant: str) -> str | None:
    """The plot's family of a variant: its name's prefix, or the -pull variants (--decay-to-init) together."""
    if variant.endswith(PULLED):
        return PULLED
    return next((prefix for prefix in FAMILIES if variant.startswith(prefix)), None)


def _mean_std(pair: list[float] | None) -> str | None:
    return None if pair is None else f"{pair[0]:.2f} ± {pair[1]:.2f}"


def render(payload: dict[str, Any]) -> str:
    """One table per step budget, rows sorted by test perplexity, so the winner is the first line."""
    s, base = payload["settings"], payload["base"]
    parts = [
        f"## Fair sweep: {s['model']}, learning rate chosen on validation, seeds {s['seeds']}\n\n"
        f"Train on `{s['train_data']}`; validation = its held-out part; test = `{s['test_data']}`; out of domain = "
        f"`{s['ood_data']}` (no fit trains on it). Learning-rate grid {', '.join(f'{lr:g}' for lr in s['lr_grid'])}, "
        f"extended past an edge up to {s['max_extensions']} times; the chosen rate is the one with the lowest validation "
        f"perplexity at seed {s['seeds'][0]}, then run over every seed. Device: {s['device']}.\n\n"
        f"Base model: validation {base['validation']:.2f}, test {base['test']:.2f}, out of domain {base['ood']:.2f}.\n"
    ]
    if s.get("merged_from"):
        parts.append(f"\nJoined from {len(s['merged_from'])} sweeps run apart under this protocol (`run.py sweep --merge`): "
                     f"{', '.join(s['merged_from'])}; each row's `source` in the JSON names its part.\n")
    if s.get("report_only"):
        parts.append("\n**Interim report** (`--report-only`): only the fits finished so far; a row whose lr grid or seeds "
                     f"fall short of the settings (grid {len(s['lr_grid'])} rates, {len(s['seeds'])} seeds) is incomplete.\n")
    for steps in s["steps"]:
        rows = [r for r in payload["rows"] if r["steps"] == steps]
        rows.sort(key=lambda r: r["test"][0] if "test" in r else float("inf"))
        table = [[r["variant"], f"{r['trainable']:,}" if "trainable" in r else None,
                  ", ".join(f"{lr:g}" for lr in r["lr_grid"]), f"{r['chosen_lr']:g}", len(r["seeds"]),
                  _mean_std(r.get("validation")), _mean_std(r.get("test")), _mean_std(r.get("ood")),
                  ("**worse than base**" if r["ood_worse_than_base"] else "no") if "ood" in r else None]
                 for r in rows]
        parts.append(f"\n### {steps} steps\n\n" + markdown_table(
            ["variant", "trainable params", "lr grid", "chosen lr", "seeds", "validation ppl", "test ppl", "out-of-domain ppl",
             "OOD worse than base"], table))
        failed = [f"{r['variant']} (seeds {r['failed_seeds']})" for r in rows if r["failed_seeds"]]
        if failed:
            parts.append(f"\nFits that failed (loss became NaN or the fit exited with an error): {', '.join(failed)}.\n")
    if payload.get("versus_ablation"):
        parts.append(render_versus_ablation(payload["versus_ablation"]))
    parts.append("\nTuning trace (validation perplexity at each rate tried, first seed; — = the fit failed):\n\n" + markdown_table(
        ["variant", "steps", "validation ppl by lr"],
        [[r["variant"], r["steps"], ", ".join(f"{lr}: {'—' if v is None else f'{v:.2f}'}" for lr, v in r["tuning"].items())]
         for r in payload["rows"]]))
    return "".join(parts)


def render_versus_ablation(comparisons: list[dict[str, Any]]) -> str:
    """Each circuit variant against its classical ablation, seed by seed, with issue 21's verdict per text."""
    table = [[c["circuit"], c["ablation"], c["steps"], ", ".join(c["seeds"]), text,
              ", ".join(f"{gap:+.2f}" for gap in c[text]["gaps"]), f"{c[text]['mean_gap']:+.2f}", f"{c[text]['spread']:.2f}",
              f"{c[text]['circuit_ahead_at']} of {len(c['seeds'])}", c[text]["verdict"]]
             for c in comparisons for text in TEXTS]
    return ("\n### Circuit against its classical ablation\n\nThe same generator and parameter count with the circuit replaced "
            "by a trainable vector, each at its own chosen rate. Gap = the ablation's perplexity minus the circuit's at each "
            "common seed (positive: the circuit is better); the circuit helps only where the mean gap exceeds the "
            "seed-to-seed spread (the larger standard deviation of the two rows over those seeds).\n\n"
            + markdown_table(["circuit", "ablation", "steps", "seeds", "text", "gap per seed", "mean gap", "spread",
                              "circuit ahead at", "verdict"], table))


def plot(payload: dict[str, Any], steps: int, path: Path) -> None:
    """Two panels, test and out-of-domain perplexity against trainable parameters (log x), std over seeds as error bars."""
    figure, axes = new_figure(panels=2)
    rows = [r for r in payload["rows"] if r["steps"] == steps and "test" in r]
    for panel, (metric, title) in zip(axes, (("test", "in domain (test)"), ("ood", "out of domain"))):
        for prefix, marker in FAMILIES.items():
            members = sorted((r for r in rows if family(r["variant"]) == prefix), key=lambda r: r["trainable"])
            if members:
                panel.errorbar([max(r["trainable"], 1) for r in members], [r[metric][0] for r in members],
                               yerr=[r[metric][1] for r in members], marker=marker, linestyle="-", capsize=3,
                               label="pulled toward dW = 0" if prefix == PULLED else prefix.strip("-"))
        panel.axhline(payload["base"][metric], color="grey", linestyle="--", label="base model")
        panel.set_xscale("log")
        panel.set_xlabel("trainable parameters")
        panel.set_ylabel("perplexity")
        panel.set_title(f"{title}, {steps} steps")
        panel.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    save_png(figure, path)
