"""Joining sweeps run apart (tools/bench/sweep_merge.py): one protocol or a refusal, agreeing duplicates, one report."""

from __future__ import annotations

import copy
import json
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import run  # noqa: E402
import sweep_merge  # noqa: E402

BASE = {"validation": 38.65, "test": 41.80, "ood": 21.49}
SETTINGS = {"model": "smollm2-135m", "device": "cpu", "steps": [100], "seeds": [0, 1, 2], "lr_grid": [3e-4, 1e-3, 3e-3, 1e-2],
            "max_extensions": 2, "train_data": "austen-train", "validation": "held-out part of austen-train",
            "test_data": "austen-test", "ood_data": "state-of-the-union", "fit_args": [], "jobs": 2, "report_only": False}


def fake_row(variant: str, test: list[float], trainable: int = 1000) -> dict:
    """A finished row as sweep.row writes it, with these per-seed test figures (validation and ood follow them)."""
    per_seed = {text: {str(seed): value + shift for seed, value in enumerate(test)}
                for text, shift in (("validation", -4.0), ("test", 0.0), ("ood", -17.0))}
    figures = {text: [statistics.fmean(v.values()), statistics.stdev(v.values())] for text, v in per_seed.items()}
    return {"variant": variant, "steps": 100, "flags": [], "lr_grid": [3e-4, 1e-3, 3e-3, 1e-2], "chosen_lr": 3e-3,
            "tuning": {"0.003": figures["validation"][0]}, "seeds": [0, 1, 2], "failed_seeds": [], "trainable": trainable,
            **figures, "per_seed": per_seed, "ood_worse_than_base": figures["ood"][0] > BASE["ood"],
            "seconds_per_step": [2.0, 0.0]}


def write_part(path: Path, rows: list[dict], **settings) -> Path:
    payload = {"suite": "sweep", "settings": {**SETTINGS, **settings}, "environment": {"torch": "2.13.0"},
               "base": dict(BASE), "rows": rows, "versus_ablation": []}
    path.write_text(json.dumps(payload))
    return path


def test_parts_join_into_one_report_that_compares_a_circuit_with_an_ablation_from_another_part(tmp_path):
    first = write_part(tmp_path / "a.json", [fake_row("lora-r1", [37.4, 37.6, 37.8]), fake_row("qpa-lora-2048", [39.3, 39.4, 39.2])])
    second = write_part(tmp_path / "b.json", [fake_row("lora-r1", [37.4, 37.6, 37.8]),  # the same row again: agrees, kept once
                                              fake_row("classical-ablation-2048", [39.2, 39.3, 39.3])])
    out = tmp_path / "merged"
    payload = sweep_merge.run(out, [first, second])
    assert [(row["variant"], row["source"]) for row in payload["rows"]] == [
        ("lora-r1", str(first)), ("qpa-lora-2048", str(first)), ("classical-ablation-2048", str(second))]
    (comparison,) = payload["versus_ablation"]  # the pair met only in the merge
    assert (comparison["circuit"], comparison["ablation"]) == ("qpa-lora-2048", "classical-ablation-2048")
    assert comparison["test"]["gaps"] == pytest.approx([-0.1, -0.1, 0.1])
    assert payload["settings"]["merged_from"] == [str(first), str(second)]
    again = sweep_merge.run(tmp_path / "again", [out / "sweep.json"])  # a merged report merged again keeps each row's part
    assert [row["source"] for row in again["rows"]] == [str(first), str(first), str(second)]
    report = (out / "sweep.md").read_text()
    assert "Joined from 2 sweeps" in report and "| classical-ablation-2048 |" in report
    assert json.loads((out / "sweep.json").read_text()) == json.loads(json.dumps(payload))
    assert (out / "sweep-100.png").read_bytes()[:4] == b"\x89PNG"


def test_the_out_folders_own_report_can_be_one_of_the_parts_and_rows_can_be_kept_by_name(tmp_path):
    own = write_part(tmp_path / "sweep.json", [fake_row("lora-r1", [37.4, 37.6, 37.8])])
    other = write_part(tmp_path / "qtha.json", [fake_row("qtha-L8", [38.6, 38.7, 38.8]), fake_row("qtha-L4", [38.7, 38.8, 38.9])])
    run.main(["sweep", "--out", str(tmp_path), "--merge", str(own), str(other), "--sweep-variants", "lora-r1", "qtha-L8"])
    merged = json.loads(own.read_text())
    assert [row["variant"] for row in merged["rows"]] == ["lora-r1", "qtha-L8"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["settings"].update(seeds=[0, 1, 2, 3, 4]), "seeds is [0, 1, 2, 3, 4] where"),
        (lambda p: p["settings"].update(lr_grid=[1e-3, 1e-2]), "lr_grid is"),
        (lambda p: p["settings"].update(device="cuda"), "device is 'cuda'"),
        (lambda p: p["base"].update(ood=25.0), "the base model's ood perplexity is 25.0000"),
        (lambda p: p["rows"][0]["per_seed"]["ood"].__setitem__("2", 30.0), "lora-r1 at 100 steps differs from the row in"),
        (lambda p: p["rows"][0].update(trainable=7), "lora-r1 at 100 steps differs"),
        (lambda p: p["rows"][0].update(chosen_lr=1e-2), "lora-r1 at 100 steps differs"),
        (lambda p: p["settings"].update(report_only=True), "an interim report"),
        (lambda p: p.update(suite="train"), "suite is 'train'"),
        (lambda p: p.pop("settings"), "without its settings, base figures or rows"),
    ],
)
def test_a_part_of_another_protocol_or_disagreeing_figures_is_refused_in_one_line(tmp_path, change, message):
    first = write_part(tmp_path / "a.json", [fake_row("lora-r1", [37.4, 37.6, 37.8])])
    payload = json.loads(first.read_text())
    second = copy.deepcopy(payload)
    change(second)
    (tmp_path / "b.json").write_text(json.dumps(second))
    with pytest.raises(SystemExit) as refused:
        sweep_merge.run(tmp_path / "out", [first, tmp_path / "b.json"])
    assert str(refused.value).startswith("error: ") and message in str(refused.value)
    assert "\n" not in str(refused.value) and not (tmp_path / "out").exists()  # nothing written


def test_a_base_figure_from_another_machines_rounding_is_the_same_figure(tmp_path):
    first = write_part(tmp_path / "a.json", [fake_row("lora-r1", [37.4, 37.6, 37.8])])
    payload = json.loads(first.read_text())
    payload["base"]["test"] *= 1 + 4e-8  # measured: a fresh machine's base figures differ in the 8th digit
    payload["rows"] = [fake_row("vera", [37.6, 37.7, 37.7])]
    (tmp_path / "b.json").write_text(json.dumps(payload))
    assert len(sweep_merge.run(tmp_path / "out", [first, tmp_path / "b.json"])["rows"]) == 2


def test_unreadable_parts_and_empty_selections_are_refused(tmp_path):
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SystemExit, match="not a readable sweep report"):
        sweep_merge.run(tmp_path / "out", [tmp_path / "broken.json"])
    part = write_part(tmp_path / "a.json", [fake_row("lora-r1", [37.4, 37.6, 37.8])])
    with pytest.raises(SystemExit, match="no part has a row for vera: run them first"):
        sweep_merge.run(tmp_path / "out", [part], ["lora-r1", "vera"])
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(SystemExit, match="suite is 'list', not 'sweep'"):
        sweep_merge.run(tmp_path / "out", [tmp_path / "list.json"])
    with pytest.raises(SystemExit, match="--merge joins finished sweep reports and runs nothing"):
        run.main(["sweep", "--merge", str(part), "--report-only"])
    assert not (tmp_path / "out").exists()
