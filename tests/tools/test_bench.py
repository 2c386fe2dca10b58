"""The benchmark suites in tools/bench on tiny settings: outputs written, numbers checked, caps honoured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cirq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import common  # noqa: E402
import deploy  # noqa: E402
import generator  # noqa: E402
import peers  # noqa: E402
import quality  # noqa: E402
import train  # noqa: E402

from qcompress.circuits import build_ansatz  # noqa: E402
from qcompress.circuits.base import Ansatz  # noqa: E402
from qcompress.training.run_dir import read_header  # noqa: E402


def test_interleaved_medians_gives_each_step_its_own_repeats():
    calls = {"fast": 0, "slow": 0}

    def count(name):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    medians = common.interleaved_medians({"fast": count("fast"), "slow": count("slow")}, {"fast": 5, "slow": 2}, warmup=1)
    assert calls == {"fast": 6, "slow": 3}
    assert set(medians) == {"fast", "slow"}


def test_gate_sequence_is_the_qpa_circuit_and_refuses_other_gates():
    gates = list(peers.gate_sequence(build_ansatz("qpa", n_qubits=3, depth=2)))
    assert [g.kind for g in gates].count("ry") == 6 and [g.kind for g in gates].count("cnot") == 4
    assert sorted(g.second for g in gates if g.kind == "ry") == list(range(6))
    q = cirq.LineQubit.range(2)
    foreign = Ansatz(name="h", circuit=cirq.Circuit(cirq.H(q[0])), qubits=tuple(q), weight_symbols=())
    with pytest.raises(ValueError, match="only translate"):
        list(peers.gate_sequence(foreign))


def test_generator_suite_checks_every_simulator_against_the_reference(tmp_path):
    payload = generator.run(tmp_path, [3, 5], depth=2, device="cpu", repeats=2, max_step_s=30.0, budget_s=1.0, threads=1)
    for row in payload["rows"]:
        timed = {name: r for name, r in row["results"].items() if "ms" in r}
        assert {"torch_sv", "quimb", "cirq"} <= set(timed)
        assert min(r["ratio_to_fastest"] for r in timed.values() if r["backward"]) == pytest.approx(1.0)
        assert all(r["max_abs_diff_vs_reference"] < 1e-5 for r in row["results"].values())
    markdown = (tmp_path / "generator.md").read_text()
    assert "Ratio to the fastest" in markdown
    for name in payload["not_installed"]:
        assert payload["not_installed"][name].startswith("not installed here:")
        assert payload["simulators"][name] in markdown
    assert json.loads((tmp_path / "generator.json").read_text())["rows"] == payload["rows"]
    assert (tmp_path / "generator.png").read_bytes()[:4] == b"\x89PNG"


def test_generator_suite_drops_a_simulator_slower_than_the_cap_for_larger_n(tmp_path):
    payload = generator.run(tmp_path, [3, 4], depth=1, device="cpu", repeats=2, max_step_s=0.0, budget_s=1.0, threads=1)
    first, second = payload["rows"]
    assert all("skipped" in r for r in first["results"].values())
    assert second["results"] == {}
    assert "skipped from N=3" in (tmp_path / "generator.md").read_text()


def test_a_simulator_predicted_over_the_cap_is_not_run():
    previous = {"n_qubits": 16, "results": {"slow": {"ms": 400.0}, "fast": {"ms": 30.0}, "gone": {"skipped": "x"}}}
    dropped = generator.predicted_over_cap(previous, 20, max_step_s=5.0)
    assert list(dropped) == ["slow"] and "predicted 6.4 s" in dropped["slow"]
    assert generator.predicted_over_cap(None, 8, max_step_s=0.0) == {}


def tiny_fit_args(corpus_dir: Path, seq_len: int | None = 32) -> list[str]:
    """Flags for a seconds-long fit; ``seq_len=None`` leaves the block length to the suite's --shapes."""
    return ["--eval-data", str(corpus_dir / "heldout.txt"), "--rank", "4", "--n-mlp", "64", "--depth", "2",
            *(["--seq-len", str(seq_len)] if seq_len else []), "--eval-tokens", "256", "--eval-seq-len", "64", "--eval-stride", "32"]


def test_train_suite_times_each_method_and_the_bare_peft_loop_on_the_same_batch(tmp_path, tiny_gpt2_dir, corpus_dir):
    payload = train.run(tmp_path, str(tiny_gpt2_dir), str(corpus_dir / "train"), steps=2, rounds=1, threads=1,
                        device="cpu", fit_args=tiny_fit_args(corpus_dir, seq_len=None), methods=["lora", "qtha"], shapes=["2x16", "4x32"])
    for shape, tokens in (("2x16", 32), ("4x32", 128)):
        results = payload["results"][shape]
        assert set(results) == {"lora", "qtha", "peft-loop"} and results["qtha"]["trainable"] != results["lora"]["trainable"]
        assert {r["tokens_per_step"] for r in results.values()} == {tokens}
        assert all(r["peak_gpu_mb"] is None for r in results.values())  # no GPU: reported as absent, not 0
        assert results["peft-loop"]["peak_rss_mb"] is None  # its loop runs in-process with nothing else: not measured
    report = (tmp_path / "train.md").read_text()
    assert "device cpu" in report and "batch 4 x 32 tokens" in report  # passed to every fit and recorded


def test_quality_suite_fits_the_ablation_and_reuses_finished_runs(tmp_path, tiny_gpt2_dir, corpus_dir):
    args = dict(model=str(tiny_gpt2_dir), data=str(corpus_dir / "train"), steps=2, seeds=[1],
                variants=["lora-r4", "classical-ablation-512"], threads=1, device="cpu", fit_args=tiny_fit_args(corpus_dir))
    payload = quality.run(tmp_path, **args)
    rows = {r["variant"]: r for r in payload["rows"]}
    assert set(rows) == {"base", "lora-r4", "classical-ablation-512"}
    assert rows["base"]["trainable"] == 0 and rows["classical-ablation-512"]["trainable"] > 0
    header = read_header(tmp_path / "quality-runs" / "classical-ablation-512" / "seed1")
    assert header["config"]["qpa"]["backend"] == "classical" and header["config"]["seed"] == 1
    summary = tmp_path / "quality-runs" / "lora-r4" / "seed1" / "summary.json"
    before = summary.stat().st_mtime_ns
    assert quality.run(tmp_path, **args)["rows"] == payload["rows"]
    assert summary.stat().st_mtime_ns == before
    assert (tmp_path / "quality.png").read_bytes()[:4] == b"\x89PNG"


def test_quality_rows_are_mean_and_std_over_seeds_with_base_from_lora_step_zero():
    def summary(ppl: float, initial: float, trainable: int) -> dict:
        return {"eval_perplexity": ppl, "initial_eval_perplexity": initial, "counts": {"trainable": trainable},
                "seconds_per_step_median": 1.0}

    rows = quality.aggregate({"lora-r4": [summary(10.0, 20.0, 8), summary(12.0, 20.0, 8)],
                              "qpa-lora-512": [summary(11.0, 99.0, 4), summary(11.0, 99.0, 4)]})
    assert [r["variant"] for r in rows] == ["base", "lora-r4", "qpa-lora-512"]
    assert rows[0]["perplexity"] == (20.0, 0.0)
    assert rows[1]["perplexity"] == pytest.approx((11.0, 2**0.5)) and rows[1]["seeds"] == 2
    assert rows[2]["perplexity"] == (11.0, 0.0) and rows[2]["trainable"] == 4


def test_mean_std_of_one_value_has_zero_spread():
    from fits import mean_std

    assert mean_std([2.0]) == (2.0, 0.0)
    assert mean_std([1.0, 3.0]) == pytest.approx((2.0, 2**0.5))


def test_deploy_suite_puts_float32_int8_and_int4_side_by_side(tmp_path, tiny_llama_dir):
    payload = deploy.run(tmp_path, str(tiny_llama_dir), new_tokens=4, repeats=1, threads=1, device="cpu", reuse=False)
    quantized = payload["quantized"]
    assert list(quantized) == ["float32", "int8", "int4", "int8-dynamic"]
    assert quantized["float32"]["gate"] is None and quantized["float32"]["size_vs_float32"] == 1.0
    for scheme in ("int8", "int4", "int8-dynamic"):
        row = quantized[scheme]
        assert row["onnx_bytes"] < quantized["float32"]["onnx_bytes"]
        assert row["perplexity_tokens"] == quantized["float32"]["perplexity_tokens"]  # the same held-out tokens for all
        assert row["gate"]["tolerance"] == {"int8": 0.02, "int4": 0.05, "int8-dynamic": 0.02}[scheme]  # judged as a plain export would be
        assert row["gate"]["passes_default_tolerance"] == (row["gate"]["relative_change"] <= row["gate"]["tolerance"])
    report = (tmp_path / "deploy.md").read_text()
    assert "## Quantized ONNX" in report and "| int4 |" in report
