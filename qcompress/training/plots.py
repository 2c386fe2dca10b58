"""The loss / perplexity plot saved as ``curves.png`` in the run directory."""

from __future__ import annotations

from pathlib import Path

from qcompress.atomic import write_atomic


def plot_curves(metrics: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [m for m in metrics if "loss" in m]
    evals = [m for m in metrics if "eval_perplexity" in m]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([m["step"] for m in train], [m["loss"] for m in train], lw=1)
    left.set(xlabel="step", ylabel="training loss (nats/token)", title="training loss")
    right.plot([m["step"] for m in evals], [m["eval_perplexity"] for m in evals], "o-")
    right.set(xlabel="step", ylabel="held-out perplexity", title="held-out perplexity")
    figure.suptitle(title)
    figure.tight_layout()
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
