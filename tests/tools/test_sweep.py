"""The fair sweep (tools/bench/sweep.py): rate chosen on validation, grid extended at an edge, failures recorded, restarts reuse."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import sweep  # noqa: E402


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({1e-3: 5.0, 1e-2: 6.0, 1e-1: 7.0}, 1e-4),  # best at the low edge: one grid step below
        ({1e-3: 7.0, 1e-2: 6.0, 1e-1: 5.0}, 1.0),  # best at the high edge: one grid step above
        ({1e-3: 7.0, 1e-2: 5.0, 1e-1: 6.0}, None),  # best inside: the grid brackets it
        ({1e-3: math.inf, 1e-2: math.inf}, None),  # every fit failed: nothing to extend towards
    ],
)
def test_grid_is_extended_only_past_the_edge_where_the_best_rate_sits(scores, expected):
    extra = sweep.extend_grid(list(scores), scores)
    assert extra == (None if expected is None else pytest.approx(expected))


def test_sweep_chooses_on_validation_records_failures_and_reuses_everything(tmp_path, tiny_gpt2_dir, corpus_dir):
    settings = sweep.Settings(
        out=tmp_path, model=str(tiny_gpt2_dir), steps=[2], seeds=[0, 1], variants=["lora-r1"], lr_grid=[1e-3, 1e30],
        jobs=2, device="cpu", train_data=str(corpus_dir / "train"), test_data=str(corpus_dir / "heldout.txt"),
        ood_data=str(corpus_dir / "train" / "book0.txt"), max_extensions=1,
        fit_args=["--seq-len", "32", "--eval-tokens", "256", "--eval-seq-len", "64", "--eval-stride", "32"],
    )
    messages: list[str] = []
    payload = sweep.run(settings, progress=messages.append)
    assert messages[0].startswith("sweep: 1 variants x 1 budgets; 3 of 3 fits to run")
    (row,) = payload["rows"]
    assert row["tuning"]["1e+30"] is None  # the loss became NaN: recorded as a failed rate, not a crash of the sweep
    tried = {float(lr): ppl for lr, ppl in row["tuning"].items() if ppl is not None}
    assert row["lr_grid"] == [1e-36, 1e-3, 1e30]  # 1e-3 won at the low edge: one grid step (x 1e-33) below it was tried
    assert row["chosen_lr"] == min(tried, key=tried.get)
    assert row["seeds"] == [0, 1] and row["failed_seeds"] == []
    assert row["validation"][0] == pytest.approx(sum(
        json.loads((sweep.FitKey("lora-r1", 2, row["chosen_lr"], seed).directory(tmp_path) / "summary.json").read_text())["eval_perplexity"]
        for seed in (0, 1)) / 2)
    assert {"test", "ood", "trainable"} <= set(row) and set(payload["base"]) == {"validation", "test", "ood"}
    assert all(list(row["per_seed"][text]) == ["0", "1"] for text in ("validation", "test", "ood"))
    assert row["test"][0] == pytest.approx(sum(row["per_seed"]["test"].values()) / 2)
    assert payload["versus_ablation"] == []  # lora-r1 has no circuit to ablate
    assert row["ood_worse_than_base"] == (row["ood"][0] > payload["base"]["ood"])
    report = (tmp_path / "sweep.md").read_text()
    assert "| lora-r1 |" in report and "1e-36, 0.001, 1e+30" in report
    assert (tmp_path / "sweep-2.png").read_bytes()[:4] == b"\x89PNG"

    records = [*tmp_path.rglob("summary.json"), *tmp_path.rglob("*.failed.json"), *(tmp_path / "sweep-evals").glob("*.json")]
    stamps = {path: path.stat().st_mtime_ns for path in records}
    assert len(stamps) == 3 + 1 + 4 + 3  # 3 summaries, 1 failure record, 2 x 2 run evaluations, 3 of the base model
    again: list[str] = []
    assert sweep.run(settings, progress=again.append)["rows"] == payload["rows"]
    assert "0 of 3 fits to run" in again[0]
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())

    interim = sweep.run(dataclasses.replace(settings, seeds=[0, 1, 2], report_only=True), progress=again.append)
    assert interim["rows"][0]["seeds"] == [0, 1] and interim["settings"]["report_only"]  # seed 2 is missing, not run
    assert not list(tmp_path.rglob("seed2*")) and "Interim report" in (tmp_path / "sweep.md").read_text()


def test_a_variant_moves_on_to_its_seeds_while_another_still_extends_its_grid(tmp_path, monkeypatch):
    """The sweep's scheduling, with the fits replaced by timed stand-ins (the real fits are the test above):
    lora-r1's best rate sits at the grid's edge, so it needs one more rate; lora-r2's does not, and its
    second seed must start while lora-r1's extra rate is still running, not in a round after it."""
    validation = {"lora-r1": {1e-3: 9.0, 1e-2: 8.0, 1e-1: 7.0}, "lora-r2": {1e-3: 9.0, 1e-2: 7.0, 1e-1: 8.0}}
    extra = sweep.extend_grid(list(validation["lora-r1"]), validation["lora-r1"])  # one grid step past 1e-1
    events: list[tuple[str, sweep.FitKey]] = []

    def timed_fit(key: sweep.FitKey, settings: sweep.Settings) -> dict:
        events.append(("start", key))
        time.sleep(0.4 if key.lr == extra else 0.02)  # lora-r1's extension is the long one
        events.append(("end", key))
        return {"eval_perplexity": validation[key.variant].get(key.lr, 6.0)}

    monkeypatch.setattr(sweep, "run_fit", timed_fit)
    monkeypatch.setattr(sweep, "scores", lambda key, settings: {})
    settings = sweep.Settings(out=tmp_path, model="unused", steps=[2], seeds=[0, 1], variants=["lora-r1", "lora-r2"],
                              lr_grid=[1e-3, 1e-2, 1e-1], jobs=2, device="cpu", max_extensions=1)
    with ThreadPoolExecutor(max_workers=2) as pool, ThreadPoolExecutor(max_workers=2) as walkers:
        walked = list(walkers.map(lambda variant: sweep.walk(variant, 2, settings, pool), settings.variants))
    assert [sorted(by_lr) for by_lr, _ in walked] == [[1e-3, 1e-2, 1e-1, extra], [1e-3, 1e-2, 1e-1]]
    assert [sorted(seeds) for _, seeds in walked] == [[0, 1], [0, 1]]
    extension_ends = events.index(("end", sweep.FitKey("lora-r1", 2, extra, 0)))
    assert events.index(("start", sweep.FitKey("lora-r2", 2, 1e-2, 1))) < extension_ends


def _scored_row(variant: str, test: dict[str, float]) -> dict:
    """A sweep row as far as the ablation comparison reads it; validation and out of domain copy the test figures."""
    return {"variant": variant, "steps": 100, "per_seed": {text: test for text in ("validation", "test", "ood")}}


def test_each_circuit_is_compared_with_its_own_ablation_at_common_seeds_against_the_spread():
    rows = [
        _scored_row("qpa-lora-36k-rich", {"0": 38.5, "1": 38.9, "2": 38.9, "3": 38.5}),
        _scored_row("classical-36k-rich", {"0": 38.7, "1": 39.4, "2": 39.3, "3": 39.2, "4": 39.1}),  # seed 4: no twin
        _scored_row("qpa-lora-36k-gelu", {"0": 38.9, "1": 39.0}),
        _scored_row("classical-36k-gelu", {"0": 38.8, "1": 39.2}),
        _scored_row("qpa-lora-2048", {"0": 39.3}),  # one common seed: no spread, left out
        _scored_row("classical-ablation-2048", {"0": 39.4, "1": 39.5}),
        _scored_row("lora-r1", {"0": 37.5, "1": 37.6}),
    ]
    rich, gelu = sweep.versus_ablation(rows)
    assert (rich["circuit"], rich["ablation"], rich["seeds"]) == ("qpa-lora-36k-rich", "classical-36k-rich", ["0", "1", "2", "3"])
    assert rich["test"]["gaps"] == pytest.approx([0.2, 0.5, 0.4, 0.7]) and rich["test"]["circuit_ahead_at"] == 4
    assert rich["test"]["spread"] == pytest.approx(0.3109, abs=1e-4)  # the ablation's std over seeds 0-3 (circuit's 0.23)
    assert rich["test"]["verdict"] == "circuit better"  # mean gap 0.45 > 0.31
    assert gelu["test"]["gaps"] == pytest.approx([-0.1, 0.2]) and gelu["test"]["verdict"] == "within the spread"
    assert sweep.versus_ablation([rows[2], _scored_row("classical-36k-gelu", {"0": 37.0, "1": 37.1})])[0]["ood"]["verdict"] \
        == "ablation better"


#: trainable parameters of each generator within VeRA's budget (the counts docs/RESEARCH.md quotes)
VERA_BUDGET_COUNTS = {"": 35_856, "-gelu": 35_856, "-zx": 35_888, "-ryrz": 35_946, "-deep": 35_871, "-rich": 36_008,
                      "-layer": 35_888, "-factors": 35_753, "-rich-r1": 35_525}


@pytest.mark.parametrize("variant", [name for name in sweep.VARIANTS if "-36k" in name])
def test_the_vera_budget_generators_stay_within_veras_parameters(variant):
    """Issue 21's generators must train no more than VeRA's 38,400 numbers on SmolLM2-135M (LoRA at the config's
    rank on q_proj and v_proj of 30 blocks), each exactly the count RESEARCH.md quotes and each ablation exactly as
    many as its twin.
    Built through the method's own layout (TensorSlot regions), so the factors layout's padding and its n_mlp
    check are what a real fit meets."""
    import torch

    from qcompress.generators.qpa import QPAGenerator
    from qcompress.methods.generated import TensorSlot
    from qcompress.training.config import build_fit_config

    flags = sweep.VARIANTS[variant]
    config = build_fit_config(Path(flags[flags.index("--config") + 1]), {"qpa.n_mlp": int(flags[flags.index("--n-mlp") + 1])})
    width = config.qpa.n_mlp if config.qpa.layout == "factors" else None
    layers, rank = [], config.adapter.rank
    for out_features in (576, 192) * 30:  # q_proj, v_proj; A (rank, 576) and B (out, rank), shapes only
        a = torch.nn.Linear(576, rank, bias=False, device="meta")
        b = torch.nn.Linear(rank, out_features, bias=False, device="meta")
        layers.append(TensorSlot("A", a, rank_axis=0).region(width) + TensorSlot("B", b, rank_axis=1).region(width))
    counts = {backend: QPAGenerator(sum(layers), config.qpa.model_copy(update={"backend": backend}), layers).trainable_parameters()
              for backend in ("quimb", "classical")}
    suffix = variant.removeprefix("qpa-lora-36k").removeprefix("classical-36k").removesuffix("-pull")
    assert counts["quimb"] == counts["classical"] == VERA_BUDGET_COUNTS[suffix] <= 38_400


@pytest.mark.parametrize("variant", ["qpa-vera-20k", "classical-vera-20k"])
def test_the_generator_of_veras_vectors_trains_half_veras_parameters(variant):
    """qpa-vera writes VeRA's 38,400 vectors (d: 256 and b: the output width, on q_proj and v_proj of 30 blocks
    of SmolLM2-135M) with 19,558 trained numbers, the count RESEARCH.md quotes, circuit and ablation alike."""
    from qcompress.generators.qpa import QPAGenerator
    from qcompress.training.config import build_fit_config

    flags = sweep.VARIANTS[variant]
    config = build_fit_config(Path(flags[flags.index("--config") + 1]), {
        "qpa.n_mlp": int(flags[flags.index("--n-mlp") + 1]),
        "qpa.backend": "classical" if "--backend" in flags else "quimb",
    })
    VeraOptions = pytest.importorskip("qcompress_vera", reason="plugin not installed: pip install -e plugins/qcompress-vera").VeraOptions

    vectors = sum(VeraOptions().projection_rank + out_features for out_features in (576, 192) * 30)
    assert vectors == 38_400  # VeRA's default rank 256, as the sweep's vera row
    assert QPAGenerator(vectors, config.qpa).trainable_parameters() == 19_558
    assert sweep.ABLATIONS["qpa-vera-20k"] == "classical-vera-20k"
