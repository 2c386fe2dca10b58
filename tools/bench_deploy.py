"""Deployment benchmark: PEFT LoRA (unmerged) and merged PyTorch vs the exported ONNX artifacts.

On the embedded default (SmolLM2-135M) it builds a PEFT LoRA r=8 model on q_proj, v_proj with
non-zero lora_B (speed does not depend on trained values), merges it, exports both the merged and
the base model through the same pipeline as ``qcompress export``, and measures greedy generation
tokens/s and first-token latency for all four, interleaved round-robin so machine load affects
them alike. ``--artifact NAME=DIR`` adds any other exported artifact (e.g. a QTHA run's, whose
circuit stays in the graph) to the same interleaved rounds, reported as its cost relative to the
merged artifact, and then to a paired decode-step measurement (see :func:`paired_decode`), which
is the steadier figure. ``--quantize int8,int4`` also exports the merged model with
``qcompress export --quantize`` for each scheme (same pipeline, perplexity gate included), times
them in the same rounds and reports float32 / int8 / int4 side by side: onnx/ size on disk,
tokens/s, first-token latency, decode step, and ``qcompress eval``'s ONNX Runtime perplexity of each
artifact on the same held-out tokens. Prints tables; ``--json PATH`` also writes the numbers.

    python tools/bench_deploy.py [--model smollm2-135m] [--new-tokens 48] [--threads 2] [--json out.json]
    python tools/bench_deploy.py --work runs/deploy --reuse --artifact qtha=artifacts/qtha
    python tools/bench_deploy.py --quantize int8,int4 --new-tokens 32 --repeats 1
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROMPTS = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune",
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition,",
    "The family of Dashwood had long been settled in Sussex.",
)


def lora_model(base, seed: int):
    """PEFT LoRA r=8 on q_proj, v_proj with random non-zero B (unmerged)."""
    import torch
    from peft import LoraConfig, get_peft_model

    # lora_A is initialised from the global generator: seeded too, or a --reuse run would time and score artifacts of
    # another model (it did: a float32 Gemma 3 artifact kept from an earlier run scored 104.9 against 116.9)
    torch.manual_seed(seed)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.01)
    return model.eval()


def torch_runner(model, tokenizer, new_tokens: int) -> Callable[[str], tuple[int, float, float]]:
    """Greedy ``generate`` timed end to end; first-token latency from a 1-token generate."""
    import torch

    def run(prompt: str) -> tuple[int, float, float]:
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            start = time.perf_counter()
            model.generate(**ids, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            first = time.perf_counter() - start
            start = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            seconds = time.perf_counter() - start
        return out.shape[1] - ids["input_ids"].shape[1], seconds, first

    return run


def ort_runner(artifact: Path, threads: int, new_tokens: int) -> Callable[[str], tuple[int, float, float]]:
    from qcompress.runtime import OnnxCausalLM
    from qcompress.runtime.sampling import SamplingConfig

    model = OnnxCausalLM.load(artifact, threads=threads)

    def run(prompt: str) -> tuple[int, float, float]:
        new_ids = model.generate_ids(model.encode(prompt), new_tokens, SamplingConfig())
        stats = model.last_stats
        return len(new_ids), stats.seconds, stats.first_token_seconds

    return run


def paired_decode(artifacts: dict[str, Path], threads: int, sessions: int, rounds: int, steps: int) -> dict[str, dict]:
    """Decode-step time of every artifact relative to the first one, from steps taken in turn.

    Why not the end-to-end figures: tokens/s of separate generations drift by several percent on a
    shared machine, and so do two ONNX Runtime sessions of the same model, depending on where
    their memory lands and on the order they were created in (measured here: the first session of
    a process ran ~5% slower than a second session of the same graph). Here each artifact takes one
    greedy decode step in turn, so every ratio compares two steps taken moments apart at the same
    cache length, and each of the ``sessions`` fresh sets of sessions is created and stepped in a
    rotated order, so over a multiple of len(artifacts) sessions every artifact holds every
    position equally often. Idle sessions must not spin-wait (``spinning=False``): with more than
    one thread, the workers of the session that just stepped would otherwise spin on the cores the
    next one needs (measured at 2 threads: merged 40.7 ms/step with spinning against 28.4 without,
    and the QTHA L = 8 ratio 1.23 against 1.39, which matches the end-to-end figure)."""
    import numpy as np
    from tokenizers import Tokenizer

    from qcompress.runtime.decoder_session import DecoderSession

    names = list(artifacts)
    prompt = np.asarray([Tokenizer.from_file(str(artifacts[names[0]] / "onnx" / "tokenizer.json")).encode(PROMPTS[0]).ids])
    times: dict[str, list[list[float]]] = {name: [] for name in names}
    for session in range(sessions):
        order = names[session % len(names):] + names[: session % len(names)]
        decoders = {name: DecoderSession(artifacts[name] / "onnx" / "model.onnx", threads, spinning=False) for name in order}
        for name in names:
            times[name].append([])
        for _ in range(rounds):
            state = {}
            for name, decoder in decoders.items():
                logits, past = decoder.step(prompt, np.ones_like(prompt), decoder.empty_past(1))
                state[name] = (logits, past, np.ones_like(prompt))
            for _ in range(steps):
                for name, decoder in decoders.items():
                    logits, past, mask = state[name]
                    token = logits[:, -1:].argmax(-1)
                    mask = np.concatenate([mask, np.ones((1, 1), dtype=mask.dtype)], 1)
                    start = time.perf_counter()
                    logits, past = decoder.step(token, mask, past)
                    times[name][-1].append(time.perf_counter() - start)
                    state[name] = (logits, past, mask)
        del decoders
    report = {}
    for name, per_session in times.items():
        ratios = [np.asarray(mine) / np.asarray(ref) for mine, ref in zip(per_session, times[names[0]])]
        q1, median, q3 = np.percentile(np.concatenate(ratios), [25, 50, 75])
        report[name] = {
            "step_ms": float(np.median(np.concatenate(per_session)) * 1000),
            "ratio": float(median), "ratio_q1": float(q1), "ratio_q3": float(q3),
            "session_ratios": [float(np.median(r)) for r in ratios],
        }
    return report


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(runners: dict[str, Callable], repeats: int) -> dict[str, dict[str, float]]:
    """Round-robin over runners and prompts; per runner the medians of end-to-end tokens/s, first-token latency
    (prompt processing) and the time of each later decode step, which separates prefill from per-token cost."""
    samples: dict[str, list[tuple[int, float, float]]] = {name: [] for name in runners}
    for run in runners.values():
        run(PROMPTS[0])  # warm-up
    for _ in range(repeats):
        for prompt in PROMPTS:
            for name, run in runners.items():
                samples[name].append(run(prompt))
    return {
        name: {
            "tokens_per_second": statistics.median(n / s for n, s, _ in rows),
            "first_token_ms": statistics.median(f for _, _, f in rows) * 1000,
            "decode_ms_per_token": statistics.median((s - f) / max(n - 1, 1) for n, s, f in rows) * 1000,
            "new_tokens": sum(n for n, _, _ in rows) / len(rows),
        }
        for name, rows in samples.items()
    }


#: the perplexity gate's tolerance during the bench: high enough that every scheme is written and measured
BENCH_TOLERANCE = 100.0


def export_variant(model, tokenizer, out: Path, spec: str, reuse: bool, quantize: str | None = None) -> tuple[dict, float] | None:
    """Export (or with ``reuse``, keep) one artifact; returns the new manifest and the seconds it took, ``None`` when reused."""
    from qcompress.export.artifact import export_artifact
    from qcompress.export.quantize import resolve_quantize

    if reuse and (out / "manifest.json").is_file():
        print(f"reusing {out}")
        return None
    start = time.perf_counter()
    # the gate is measured but never stops the bench: a scheme the default tolerance refuses is still timed, and
    # the report says that a plain `qcompress export --quantize` would have refused it (exit 3)
    options = resolve_quantize(quantize, tolerance=BENCH_TOLERANCE) if quantize else None
    manifest = export_artifact(model, tokenizer, out, source={"kind": "bench", "spec": spec, "model": out.name}, force=True,
                               quantize=options)
    seconds = time.perf_counter() - start
    print(f"exported {out.name} in {seconds:.1f} s; parity {manifest['formats']['onnx']['parity']['max_abs_diff']}")
    return manifest, seconds


def _gate(manifest: dict, scheme: str) -> dict | None:
    """The export's perplexity gate, judged against the default tolerance a plain export would have used."""
    from qcompress.export.quantize import DEFAULT_TOLERANCE

    gate = manifest["formats"]["onnx"].get("quantization", {}).get("perplexity_gate")
    if gate is None:
        return None
    tolerance = DEFAULT_TOLERANCE[scheme]
    return {**gate, "tolerance": tolerance, "passes_default_tolerance": gate["relative_change"] <= tolerance}


def quantized_report(results: dict, paired: dict, work: Path, schemes: list[str], ppl_tokens: int) -> dict[str, dict]:
    """float32 / int8 / int4 of the merged model side by side: size, speed (end to end, and the paired decode-step
    ratio when measured), and perplexity as ``qcompress eval`` measures an artifact (ONNX Runtime, the same
    held-out tokens for all), plus each export's gate."""
    from qcompress.training.eval_target import evaluate_target

    float_bytes = directory_size(work / "merged" / "onnx")
    report = {}
    for scheme in ["float32", *schemes]:
        name = "merged" if scheme == "float32" else f"merged-{scheme}"
        manifest = json.loads((work / name / "manifest.json").read_text())
        speed = results["ort_merged_artifact" if scheme == "float32" else f"ort_merged_{scheme}"]
        evaluated = evaluate_target(str(work / name), None, None, None, None, ppl_tokens)
        size = directory_size(work / name / "onnx")
        report[scheme] = {
            "onnx_bytes": size, "size_vs_float32": size / float_bytes, "tokens_per_second": speed["tokens_per_second"],
            "first_token_ms": speed["first_token_ms"], "decode_ms_per_token": speed["decode_ms_per_token"],
            "perplexity": evaluated["perplexity"], "perplexity_tokens": evaluated["tokens"], "data": evaluated["data"],
            "gate": _gate(manifest, scheme),
            "paired_decode_ratio": paired.get(name, {}).get("ratio"),
        }
    fp32 = report["float32"]
    print(f"\n{'merged ONNX':<12}{'onnx/ MB':>10}{'vs fp32':>9}{'tok/s':>8}{'first ms':>10}{'decode ms':>11}{'ppl':>9}{'vs fp32':>9}")
    for scheme, row in report.items():
        print(f"{scheme:<12}{row['onnx_bytes'] / 1e6:>10.1f}{row['size_vs_float32']:>9.1%}{row['tokens_per_second']:>8.1f}"
              f"{row['first_token_ms']:>10.1f}{row['decode_ms_per_token']:>11.1f}{row['perplexity']:>9.3f}"
              f"{row['perplexity'] / fp32['perplexity'] - 1:>+9.2%}")
    print(f"perplexity: ONNX Runtime on {fp32['perplexity_tokens']} tokens of {fp32['data']}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="Where to write the two artifacts (default: a temp dir).")
    parser.add_argument("--reuse", action="store_true", help="Reuse artifacts already in --work (export is deterministic).")
    parser.add_argument("--json", type=Path, default=None, dest="json_path")
    parser.add_argument("--artifact", action="append", default=[], metavar="NAME=DIR",
                        help="another exported artifact to measure alongside (repeatable)")
    parser.add_argument("--paired-sessions", type=int, default=None,
                        help="fresh sets of ONNX Runtime sessions for the paired decode-step measurement of --artifact, "
                             "each created in a rotated order (default: one per artifact measured; 0: skip)")
    parser.add_argument("--paired-rounds", type=int, default=4, help="prompts per session in the paired measurement")
    parser.add_argument("--paired-steps", type=int, default=32, help="decode steps per prompt in the paired measurement")
    parser.add_argument("--quantize", default="", help="comma-separated schemes (int8,int4) of the merged artifact to add")
    parser.add_argument("--ppl-tokens", type=int, default=2048, help="held-out tokens of the --quantize perplexity column")
    args = parser.parse_args()
    schemes = [scheme.strip() for scheme in args.quantize.split(",") if scheme.strip()]
    extra = dict(item.split("=", 1) for item in args.artifact)
    missing = [path for path in extra.values() if not (Path(path) / "manifest.json").is_file()]
    if any("=" not in item for item in args.artifact) or missing:
        raise SystemExit(f"--artifact takes NAME=DIR of an exported artifact (no manifest.json in {missing or args.artifact})")

    import torch

    from qcompress.models import load_model

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    loaded = load_model(args.model)
    peft_model = lora_model(loaded.model, seed=0)
    merged = copy.deepcopy(peft_model).merge_and_unload().eval()

    export_seconds, sizes = {}, {}
    variants = [("merged", merged, None), ("base", loaded.model, None), *((f"merged-{s}", merged, s) for s in schemes)]
    for name, model, scheme in variants:
        exported = export_variant(model, loaded.tokenizer, work / name, args.model, args.reuse, scheme)
        sizes[name] = {sub: directory_size(work / name / sub) for sub in ("model", "onnx")}
        if exported is not None:
            export_seconds[name] = exported[1]

    runners = {
        "pytorch_peft_unmerged": torch_runner(peft_model, loaded.tokenizer, args.new_tokens),
        "pytorch_merged": torch_runner(merged, loaded.tokenizer, args.new_tokens),
        "ort_merged_artifact": ort_runner(work / "merged", args.threads, args.new_tokens),
        "ort_base_artifact": ort_runner(work / "base", args.threads, args.new_tokens),
        **{f"ort_merged_{s}": ort_runner(work / f"merged-{s}", args.threads, args.new_tokens) for s in schemes},
        **{f"ort_{name}": ort_runner(Path(path), args.threads, args.new_tokens) for name, path in extra.items()},
    }
    results = measure(runners, args.repeats)
    peft_speed = results["pytorch_peft_unmerged"]["tokens_per_second"]
    base_ort = results["ort_base_artifact"]["tokens_per_second"]
    print(f"\n{'runner':<24}{'tok/s':>8}{'first ms':>10}{'decode ms':>11}{'vs PEFT':>9}{'vs base ONNX':>14}")
    for name, row in results.items():
        speed = row["tokens_per_second"]
        print(f"{name:<24}{speed:>8.1f}{row['first_token_ms']:>10.1f}{row['decode_ms_per_token']:>11.1f}"
              f"{speed / peft_speed:>9.2f}{speed / base_ort:>14.3f}")
    merged = results["ort_merged_artifact"]
    costs = {name: merged["tokens_per_second"] / results[f"ort_{name}"]["tokens_per_second"] for name in extra}
    decode_costs = {name: results[f"ort_{name}"]["decode_ms_per_token"] / merged["decode_ms_per_token"] for name in extra}
    for name, cost in costs.items():
        print(f"ort_{name}: {cost:.2f}x the time per token of the merged artifact end to end, "
              f"{decode_costs[name]:.2f}x per decode step")
    paired = {}
    paths = {"merged": work / "merged", "base": work / "base", **{f"merged-{s}": work / f"merged-{s}" for s in schemes},
             **{name: Path(path) for name, path in extra.items()}}
    sessions = len(paths) if args.paired_sessions is None else args.paired_sessions
    if (extra or schemes) and sessions > 0:
        paired = paired_decode(paths, args.threads, sessions, args.paired_rounds, args.paired_steps)
        print(f"\npaired decode steps vs merged ({sessions} sessions x {args.paired_rounds} prompts "
              f"x {args.paired_steps} steps): median ratio [quartiles] (per-session medians)")
        for name, row in paired.items():
            per_session = ", ".join(f"{r:.3f}" for r in row["session_ratios"])
            print(f"  {name:<22}{row['step_ms']:7.2f} ms  {row['ratio']:.3f} [{row['ratio_q1']:.3f}-{row['ratio_q3']:.3f}] ({per_session})")
    quantized = quantized_report(results, paired, work, schemes, args.ppl_tokens) if schemes else {}
    for name, size in sizes.items():
        took = f", export {export_seconds[name]:.1f} s" if name in export_seconds else ""
        print(f"artifact {name}: model/ {size['model'] / 1e6:.1f} MB, onnx/ {size['onnx'] / 1e6:.1f} MB{took}")
    if args.json_path:
        report = {
            "model": args.model, "threads": args.threads, "new_tokens": args.new_tokens, "prompts": list(PROMPTS),
            "results": results, "paired_decode": paired, "export_seconds": export_seconds, "sizes_bytes": sizes,
            "quantized": quantized,
            "ratios": {
                "ort_merged_vs_peft_unmerged": results["ort_merged_artifact"]["tokens_per_second"] / peft_speed,
                "ort_merged_vs_ort_base": results["ort_merged_artifact"]["tokens_per_second"] / base_ort,
                **{f"ort_{name}_cost_vs_merged": cost for name, cost in costs.items()},
                **{f"ort_{name}_decode_cost_vs_merged": cost for name, cost in decode_costs.items()},
            },
        }
        args.json_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
