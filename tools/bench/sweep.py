"""The fair sweep: every variant at its own best learning rate, chosen on validation, reported on test and out of domain.

Protocol, the same for every variant and every step budget:
1. tune: one fit per learning rate of the grid (seed = the first seed) on the training split; its
   held-out part is the validation split, so the fit's own final perplexity is the validation figure.
   When the best rate sits at an edge of the grid the grid is extended one step past that edge (at
   most ``max_extensions`` times), so no method is reported at a rate it was not allowed to leave;
2. repeat: the chosen rate over the remaining seeds;
3. score: every fit of step 2 on the test text and on the out-of-domain text with ``qcompress eval``,
   and the base model on all three texts.
Runs live under ``OUT/sweep-runs/<steps>/<variant>/lr<lr>/seed<seed>`` and evaluations under
``OUT/sweep-evals``: a finished fit or evaluation is reused, an interrupted fit is resumed, so the
sweep can be stopped and restarted at any point. Fits and evaluations run ``jobs`` at a time, each as
its own ``qcompress`` process (on a CPU the cores are split between them), and every (variant, steps)
walks steps 1-3 on its own, so no worker waits for a round of other variants' fits to end.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import environment, write_suite
from fits import mean_std
from sweep_report import TEXTS, plot, render

from qcompress.atomic import write_json_atomic
from qcompress.training.run_dir import HEADER, read_header

LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
MAX_EXTENSIONS = 2
TRAIN_DATA, TEST_DATA, OOD_DATA = "austen-train", "austen-test", "state-of-the-union"

QTHA = ["--method", "qtha", "--qtha-inner", "32", "--qtha-bond", "4"]
CONFIGS = Path(__file__).with_name("configs")
VARIANTS: dict[str, list[str]] = {
    **{f"lora-r{r}": ["--method", "lora", "--rank", str(r)] for r in (1, 2, 4, 8, 16)},
    "vera": ["--method", "vera"],
    "fourierft": ["--method", "fourierft"],
    "vblora": ["--method", "vblora"],
    "ia3": ["--method", "ia3"],
    "tinylora": ["--method", "tinylora"],
    **{f"qpa-lora-{n}": ["--method", "qpa-lora", "--n-mlp", str(n)] for n in (512, 1024, 2048)},
    **{f"classical-ablation-{n}": ["--method", "qpa-lora", "--n-mlp", str(n), "--backend", "classical"] for n in (512, 1024, 2048)},
    # generators within VeRA's 38,400 parameters (issue 21), each beside its classical ablation
    **{f"{kind}-36k{suffix}": ["--method", "qpa-lora", "--n-mlp", str(n_mlp), "--config", str(CONFIGS / f"qpa-36k{suffix}.yaml"),
                                *(["--backend", "classical"] if kind == "classical" else [])]
       for kind in ("qpa-lora", "classical")
       for suffix, n_mlp in {"": 512, "-gelu": 512, "-zx": 512, "-ryrz": 512, "-deep": 512, "-rich": 512, "-layer": 512,
                             "-factors": 576, "-rich-r1": 512}.items()},  # factors: one chunk per row of A / column of B, at most 576 long
    # the rich generator writing VeRA's vectors (the vera plugin's qpa-vera), and its ablation
    **{f"{kind}-vera-20k": ["--method", "qpa-vera", "--n-mlp", "256", "--config", str(CONFIGS / "qpa-vera-20k.yaml"),
                            *(["--backend", "classical"] if kind == "classical" else [])] for kind in ("qpa", "classical")},
    "qtha-L4": [*QTHA, "--qtha-layers", "4"],
    "qtha-L8": [*QTHA, "--qtha-layers", "8"],
    "qpa-dora": ["--method", "qpa-dora"],
    "qpa-ffa": ["--method", "qpa-ffa"],
}
# the same with the update pulled back toward dW = 0 (--decay-to-init 3: 1% per step at lr 3e-3), against
# the out-of-domain damage fine-tuning does (issue 21); built from the base variants' flags, so a pair stays a pair
PULLED = ["lora-r1", "lora-r2", *(f"{kind}-36k{suffix}" for suffix in ("-gelu", "-rich", "-rich-r1") for kind in ("qpa-lora", "classical"))]
VARIANTS |= {f"{name}-pull": [*VARIANTS[name], "--decay-to-init", "3"] for name in PULLED}
#: each circuit variant's classical ablation: the same generator and parameter count, its circuit replaced by a
#: trainable vector (``--backend classical``); the report compares each pair seed by seed (issue 21's criterion)
ABLATIONS = {f"qpa-lora-{n}": f"classical-ablation-{n}" for n in (512, 1024, 2048)}
ABLATIONS |= {name: name.replace("qpa-lora-36k", "classical-36k", 1) for name in VARIANTS if name.startswith("qpa-lora-36k")}
ABLATIONS["qpa-vera-20k"] = "classical-vera-20k"
#: seconds per step of a 4 x 128-token fit of SmolLM2-135M relative to LoRA's (docs/BENCHMARKS.md), for the estimate
RELATIVE_STEP_COST = {"qtha": 2.6, "qpa": 1.15, "classical": 1.1}
#: LoRA's seconds per step at 4 x 128 tokens, when no finished fit tells better: 2 CPU cores, one GPU
PRIOR_STEP_SECONDS = {"cpu": 2.0, "cuda": 0.15}
EVAL_SECONDS = {"cpu": 45.0, "cuda": 5.0}  # one 8,192-token evaluation, model load included


@dataclass(frozen=True)
class FitKey:
    """One fit of the sweep: where it lives is a function of what it is, which is what makes restarts work."""

    variant: str
    steps: int
    lr: float
    seed: int

    def directory(self, root: Path) -> Path:
        return root / "sweep-runs" / f"{self.steps}steps" / self.variant / f"lr{self.lr:g}" / f"seed{self.seed}"

    def failure_file(self, root: Path) -> Path:
        """Where a failed fit is recorded (beside its run directory, which a failed fit does not keep)."""
        out = self.directory(root)
        return out.with_name(out.name + ".failed.json")

    def finished(self, root: Path) -> bool:
        return (self.directory(root) / "summary.json").is_file() or self.failure_file(root).is_file()


@dataclass
class Settings:
    out: Path
    model: str
    steps: list[int]
    seeds: list[int]
    variants: list[str]
    lr_grid: list[float]
    jobs: int
    device: str
    train_data: str = TRAIN_DATA
    test_data: str = TEST_DATA
    ood_data: str = OOD_DATA
    fit_args: Sequence[str] = ()
    max_extensions: int = MAX_EXTENSIONS
    #: tabulate the fits finished so far and start none (a long sweep's interim report; the rows say what is missing)
    report_only: bool = False

    def threads(self) -> int:
        """CPU threads per fit: the cores shared among the parallel fits."""
        return max(1, (os.cpu_count() or 1) // self.jobs)


def qcompress_json(*args: str, threads: int | None = None) -> tuple[dict[str, Any] | None, str]:
    """``qcompress ARGS --json``: (its JSON, "") on success, (None, its last error line) on failure.

    ``threads`` caps torch's threads through the environment, for commands without ``--threads``."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads)} if threads else None
    done = subprocess.run([sys.executable, "-m", "qcompress.cli", *args, "--json"], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return None, lines[-1] if lines else f"exit {done.returncode}"
    return json.loads(done.stdout), ""


def run_fit(key: FitKey, settings: Settings) -> dict[str, Any]:
    """The fit's summary (reused when finished, resumed when interrupted), or ``{"failed": reason}``.

    A fit that fails — typically a loss that became NaN at too high a rate — is a result of the
    sweep, not an error in it: it is recorded and scores as infinitely bad."""
    out = key.directory(settings.out)
    summary_file, failure_file = out / "summary.json", key.failure_file(settings.out)
    if summary_file.is_file():
        return json.loads(summary_file.read_text())
    if failure_file.is_file():
        return json.loads(failure_file.read_text())
    summary, error = qcompress_json("fit", "--out", str(out), "--resume") if (out / HEADER).is_file() else (None, "")
    if summary is None:
        flags = [*VARIANTS[key.variant], "--model", settings.model, "--data", settings.train_data, "--steps", str(key.steps),
                 "--lr", f"{key.lr:g}", "--seed", str(key.seed), "--eval-every", "0", "--device", settings.device,
                 "--threads", str(settings.threads()), *settings.fit_args]
        out.parent.mkdir(parents=True, exist_ok=True)
        summary, error = qcompress_json("fit", *flags, "--out", str(out), "--force")
    if summary is None:
        summary = {"failed": error}
        write_json_atomic(failure_file, summary)
    print(f"{key.variant} {key.steps} steps lr {key.lr:g} seed {key.seed}: "
          + (f"validation {summary['eval_perplexity']:.3f}" if "failed" not in summary else f"failed: {summary['failed']}"), flush=True)
    return summary


def evaluate(target: str, name: str, flags: Sequence[str], settings: Settings) -> float:
    """``qcompress eval TARGET FLAGS`` perplexity, cached in ``OUT/sweep-evals/NAME.json``."""
    cache = settings.out / "sweep-evals" / f"{name}.json"
    if cache.is_file():
        return json.loads(cache.read_text())["perplexity"]
    result, error = qcompress_json("eval", target, *flags, threads=settings.threads())  # beside fits: their share of the cores
    if result is None:
        raise SystemExit(f"qcompress eval {target} {' '.join(flags)} failed: {error}")
    write_json_atomic(cache, result)
    return result["perplexity"]


def window_flags(run: Path) -> list[str]:
    """The run's own evaluation tokens and window, so every text is scored the way the fit scored validation."""
    config = read_header(run)["config"]
    flags = ["--max-tokens", str(config["eval_tokens"])]
    for option, key in (("--seq-len", "eval_seq_len"), ("--stride", "eval_stride")):
        if config.get(key) is not None:
            flags += [option, str(config[key])]
    return flags


def validation_perplexity(summary: dict[str, Any]) -> float:
    return math.inf if "failed" in summary else summary["eval_perplexity"]


def chosen_rate(by_lr: dict[float, dict[str, Any]]) -> float:
    """The rate of the grid trace ``by_lr`` with the lowest validation perplexity: the one every seed then runs at."""
    return min(by_lr, key=lambda rate: validation_perplexity(by_lr[rate]))


def extend_grid(grid: list[float], scores: dict[float, float]) -> float | None:
    """The next rate to try when the best so far sits at an edge of ``grid`` (a grid step beyond it), else None."""
    ordered = sorted(grid)
    best = min(ordered, key=lambda lr: scores[lr])
    if len(ordered) < 2 or not math.isfinite(scores[best]):
        return None
    if best == ordered[0]:
        return ordered[0] * ordered[0] / ordered[1]
    if best == ordered[-1]:
        return ordered[-1] * ordered[-1] / ordered[-2]
    return None


def fits(task: Callable[[FitKey, Settings], dict[str, Any]], keys: list[FitKey], settings: Settings,
         pool: Executor) -> dict[FitKey, dict[str, Any]]:
    """``task`` (a fit) for every key of ``keys`` on the shared ``pool`` (only the finished ones with ``report_only``)."""
    if settings.report_only:
        keys = [key for key in keys if key.finished(settings.out)]
    futures = [pool.submit(task, key, settings) for key in keys]
    return {key: future.result() for key, future in zip(keys, futures)}


def tune(variant: str, steps: int, settings: Settings, pool: Executor) -> dict[float, dict[str, Any]]:
    """Step 1 for one (variant, steps): the grid's fits at the first seed, extended at an edge while the best sits there."""
    by_lr: dict[float, dict[str, Any]] = {}
    rates = list(settings.lr_grid)
    for _ in range(settings.max_extensions + 1):
        found = fits(run_fit, [FitKey(variant, steps, lr, settings.seeds[0]) for lr in rates], settings, pool)
        by_lr |= {key.lr: summary for key, summary in found.items()}
        extra = extend_grid(list(by_lr), {lr: validation_perplexity(s) for lr, s in by_lr.items()}) if by_lr else None
        if extra is None or len(by_lr) >= len(settings.lr_grid) + settings.max_extensions:
            break
        rates = [extra]
    return by_lr


def fit_and_score(key: FitKey, settings: Settings) -> dict[str, Any]:
    """One seed of the chosen rate: the fit, then (unless it failed) its test and out-of-domain evaluations."""
    summary = run_fit(key, settings)
    if "failed" not in summary:
        scores(key, settings)
    return summary


def walk(variant: str, steps: int, settings: Settings, pool: Executor) -> tuple[dict[float, dict[str, Any]], dict[int, dict[str, Any]]]:
    """One (variant, steps) through steps 1-3: its grid trace and, per seed, the chosen rate's fit summary.

    Each group walks on its own thread and hands its fits and evaluations to the shared pool, so a
    group that is extending its grid never holds back another that has moved on to its seeds, and
    the evaluations run beside the fits instead of after all of them."""
    by_lr = tune(variant, steps, settings, pool)
    if not by_lr:
        return by_lr, {}
    lr = chosen_rate(by_lr)
    repeats = fits(fit_and_score, [FitKey(variant, steps, lr, seed) for seed in settings.seeds], settings, pool)
    return by_lr, {key.seed: summary for key, summary in repeats.items()}


def estimate(settings: Settings) -> str:
    """Fits still to run and roughly how long they and the evaluations take, printed before anything starts."""
    device = "cuda" if settings.device.startswith("cuda") else "cpu"
    lora_step = finished_lora_step_seconds(settings) or PRIOR_STEP_SECONDS[device]
    runs = settings.out / "sweep-runs"
    todo = [(v, s) for v in settings.variants for s in settings.steps for lr in settings.lr_grid
            if not FitKey(v, s, lr, settings.seeds[0]).finished(settings.out)]
    todo += [(v, s) for v in settings.variants for s in settings.steps for seed in settings.seeds[1:]
             if not any((runs / f"{s}steps" / v).glob(f"*/seed{seed}/summary.json"))
             and not any((runs / f"{s}steps" / v).glob(f"*/seed{seed}.failed.json"))]
    total = len(settings.variants) * len(settings.steps) * (len(settings.lr_grid) + len(settings.seeds) - 1)
    fit_seconds = sum(steps * lora_step * step_cost(variant) + 2 * EVAL_SECONDS[device] for variant, steps in todo)
    eval_seconds = 2 * EVAL_SECONDS[device] * len(settings.variants) * len(settings.steps) * len(settings.seeds)
    hours = (fit_seconds + eval_seconds) / settings.jobs / 3600
    return (f"sweep: {len(settings.variants)} variants x {len(settings.steps)} budgets; {len(todo)} of {total} fits to run "
            f"(+ up to {settings.max_extensions} grid extensions each), LoRA ~{lora_step:.2f} s/step on {settings.device}, "
            f"{settings.jobs} at a time: at most about {hours:.1f} h (finished evaluations are reused too)")


def step_cost(variant: str) -> float:
    return next((cost for prefix, cost in RELATIVE_STEP_COST.items() if variant.startswith(prefix)), 1.0)


def finished_lora_step_seconds(settings: Settings) -> float | None:
    """LoRA's median s/step among this sweep's finished fits, the best predictor of the rest."""
    seconds = [json.loads(path.read_text())["seconds_per_step_median"]
               for path in (settings.out / "sweep-runs").glob("*/lora-r*/*/*/summary.json")]
    seconds = [value for value in seconds if value]
    return sorted(seconds)[len(seconds) // 2] if seconds else None


def run(settings: Settings, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole protocol; writes sweep.json, sweep.md and one sweep-<steps>.png per budget into ``settings.out``."""
    if not settings.report_only:
        progress(estimate(settings))
    groups = [(variant, steps) for variant in settings.variants for steps in settings.steps]
    with ThreadPoolExecutor(max_workers=settings.jobs) as pool, ThreadPoolExecutor(max_workers=len(groups)) as walkers:
        walked = dict(zip(groups, walkers.map(lambda group: walk(*group, settings, pool), groups)))
        finished = [FitKey(v, s, lr, settings.seeds[0]) for (v, s), (by_lr, _) in walked.items() for lr, summary in by_lr.items()
                    if "failed" not in summary]
        if not finished:
            raise SystemExit("sweep: every fit failed; see the .failed.json files under " + str(settings.out / "sweep-runs"))
        window = window_flags(finished[0].directory(settings.out))
        texts = text_flags(settings)
        base = dict(zip(texts, pool.map(lambda name: evaluate(settings.model, f"base-{name}", [*texts[name], *window], settings), texts)))
    rows = [row(variant, steps, *walked[(variant, steps)], base, settings) for variant, steps in groups if walked[(variant, steps)][0]]
    payload = {
        "suite": "sweep",
        "settings": {"model": settings.model, "device": settings.device, "steps": settings.steps, "seeds": settings.seeds,
                     "lr_grid": settings.lr_grid, "max_extensions": settings.max_extensions, "train_data": settings.train_data,
                     "validation": f"held-out part of {settings.train_data}", "test_data": settings.test_data,
                     "ood_data": settings.ood_data, "fit_args": list(settings.fit_args), "jobs": settings.jobs,
                     "report_only": settings.report_only},
        "environment": environment(["torch", "transformers", "peft", "quimb"]),
        "base": base,
        "rows": rows,
        "versus_ablation": versus_ablation(rows),
    }
    markdown = render(payload)
    progress(markdown)
    write_suite(settings.out, "sweep", payload, markdown)
    for steps in settings.steps:
        plot(payload, steps, settings.out / f"sweep-{steps}.png")
    return payload


def text_flags(settings: Settings) -> dict[str, list[str]]:
    """``qcompress eval`` flags of each scored text (:data:`TEXTS`): validation is the training corpus's held-out part."""
    return {"validation": ["--data", settings.train_data], "test": ["--eval-data", settings.test_data],
            "ood": ["--eval-data", settings.ood_data]}


def scores(key: FitKey, settings: Settings) -> dict[str, float]:
    """The finished fit ``key`` on the test and the out-of-domain text, each scored (and cached) like its validation."""
    run = key.directory(settings.out)
    texts = text_flags(settings)
    return {name: evaluate(str(run), f"{key.steps}steps-{key.variant}-lr{key.lr:g}-seed{key.seed}-{name}",
                           [*texts[name], *window_flags(run)], settings)
            for name in ("test", "ood")}


def row(variant: str, steps: int, by_lr: dict[float, dict[str, Any]], seeds: dict[int, dict[str, Any]],
        base: dict[str, float], settings: Settings) -> dict[str, Any]:
    """One table row: the tuning trace, then mean ± std over seeds on validation, test and out of domain."""
    lr = chosen_rate(by_lr)
    finished = {seed: s for seed, s in seeds.items() if "failed" not in s}
    result: dict[str, Any] = {
        "variant": variant, "steps": steps, "flags": VARIANTS[variant], "lr_grid": sorted(by_lr), "chosen_lr": lr,
        "tuning": {f"{tried:g}": (None if "failed" in s else s["eval_perplexity"]) for tried, s in sorted(by_lr.items())},
        "seeds": sorted(finished), "failed_seeds": sorted(set(seeds) - set(finished)),
    }
    if not finished:
        return result
    first = next(iter(finished.values()))
    by_seed = {seed: {"validation": s["eval_perplexity"], **scores(FitKey(variant, steps, lr, seed), settings)}
               for seed, s in finished.items()}
    values = {name: [figures[name] for figures in by_seed.values()] for name in TEXTS}
    result.update({
        "trainable": first["counts"]["trainable"],
        **{name: mean_std(figures) for name, figures in values.items()},
        "per_seed": {name: {str(seed): figures[name] for seed, figures in by_seed.items()} for name in TEXTS},
        "ood_worse_than_base": mean_std(values["ood"])[0] > base["ood"],
        "seconds_per_step": mean_std([s["seconds_per_step_median"] for s in finished.values()]),
    })
    return result


def versus_ablation(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every circuit variant against its ablation (:data:`ABLATIONS`) where both are in ``rows``, at their common seeds.

    Per text, the gap at each seed is the ablation's perplexity minus the circuit's (positive: the circuit
    is better). Issue 21's criterion: the circuit helps only where the mean gap exceeds the seed-to-seed
    spread, the larger of the two rows' standard deviations over those seeds; a pair with fewer than two
    common seeds has no spread and is left out."""
    scored = {(r["variant"], r["steps"]): r for r in rows if "per_seed" in r}
    comparisons = []
    for (variant, steps), circuit in scored.items():
        ablation = scored.get((ABLATIONS.get(variant, ""), steps))
        seeds = sorted(set(circuit["per_seed"]["test"]) & set(ablation["per_seed"]["test"]), key=int) if ablation else []
        if len(seeds) < 2:
            continue
        comparison: dict[str, Any] = {"circuit": variant, "ablation": ablation["variant"], "steps": steps, "seeds": seeds}
        for text in TEXTS:
            ours, theirs = ([row["per_seed"][text][seed] for seed in seeds] for row in (circuit, ablation))
            gaps = [their - our for our, their in zip(ours, theirs)]
            gap, spread = statistics.fmean(gaps), max(mean_std(ours)[1], mean_std(theirs)[1])
            comparison[text] = {"gaps": gaps, "mean_gap": gap, "spread": spread, "circuit_ahead_at": sum(g > 0 for g in gaps),
                                "verdict": "circuit better" if gap > spread else "ablation better" if -gap > spread
                                else "within the spread"}
        comparisons.append(comparison)
    return comparisons
