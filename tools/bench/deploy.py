"""Deploy suite: wraps tools/bench_deploy.py (ONNX Runtime vs merged PyTorch vs unmerged PEFT, sizes,
and the merged artifact quantized to int8 / int4 beside float32).

bench_deploy.py does the heavy part (two exports of the model, interleaved generation timing) in
its own process; this suite only runs it, keeps its artifacts in the output folder so a rerun
with ``reuse`` skips the exports, and turns its JSON into the suite's JSON + Markdown.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import markdown_table, write_suite

SCRIPT = Path(__file__).resolve().parents[1] / "bench_deploy.py"
QUANTIZE = ("int8", "int4", "int8-dynamic")  # the schemes of qcompress export --quantize, reported beside float32


def run(out_dir: Path, model: str, new_tokens: int, repeats: int, threads: int, device: str, reuse: bool,
        quantize: tuple[str, ...] = QUANTIZE) -> dict[str, Any]:
    """Run bench_deploy.py and write deploy.{json,md} into ``out_dir``."""
    raw = out_dir / "deploy-raw.json"
    command = [sys.executable, str(SCRIPT), "--model", model, "--new-tokens", str(new_tokens), "--repeats", str(repeats),
               "--threads", str(threads), "--work", str(out_dir / "deploy-artifacts"), "--json", str(raw),
               "--quantize", ",".join(quantize)]
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command + (["--reuse"] if reuse else []), text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {done.returncode}")
    report = json.loads(raw.read_text())
    notes = [] if device == "cpu" else [f"--device {device} ignored: bench_deploy.py measures CPU inference only"]
    payload = {"suite": "deploy", "notes": notes, **report}
    markdown = render(payload)
    print(markdown)
    write_suite(out_dir, "deploy", payload, markdown)
    return payload


def render(payload: dict[str, Any]) -> str:
    """Speed table with ratios to the unmerged PEFT model, then artifact sizes."""
    results = payload["results"]
    peft = results["pytorch_peft_unmerged"]["tokens_per_second"]
    rows = [[name, f"{r['tokens_per_second']:.1f}", f"{r['first_token_ms']:.1f}", f"{r['decode_ms_per_token']:.1f}",
             f"{r['tokens_per_second'] / peft:.2f}x"] for name, r in results.items()]
    sizes = [[name, f"{s['model'] / 1e6:.1f}", f"{s['onnx'] / 1e6:.1f}"] for name, s in payload["sizes_bytes"].items()]
    return (render_quantized(payload.get("quantized", {})) + f"## Deploy: {payload['model']}, greedy {payload['new_tokens']} new tokens, {payload['threads']} thread(s)\n\n"
            + markdown_table(["runner", "tokens/s (median)", "first token (ms)", "decode step (ms)", "vs PEFT unmerged"], rows)
            + "\n### Artifact sizes (MB)\n\n" + markdown_table(["artifact", "model/ (safetensors)", "onnx/"], sizes)
            + "".join(f"\n- {note}\n" for note in payload["notes"]))


def render_quantized(quantized: dict[str, Any]) -> str:
    """float32 / int8 / int4 of the merged artifact side by side ('' when the run measured none)."""
    if not quantized:
        return ""
    fp32 = quantized["float32"]["perplexity"]
    rows = [[scheme, f"{r['onnx_bytes'] / 1e6:.1f}", f"{r['size_vs_float32']:.0%}", f"{r['tokens_per_second']:.1f}",
             f"{r['first_token_ms']:.1f}", f"{r['decode_ms_per_token']:.1f}",
             "" if r["paired_decode_ratio"] is None else f"{r['paired_decode_ratio']:.2f}",
             f"{r['perplexity']:.3f} ({r['perplexity'] / fp32 - 1:+.2%})",
             "" if r["gate"] is None else _verdict(r["gate"])]
            for scheme, r in quantized.items()]
    headers = ["merged ONNX", "onnx/ MB", "vs fp32", "tokens/s", "first token (ms)", "decode step (ms)",
               "paired step vs fp32", "perplexity (vs fp32)", "export gate vs PyTorch fp32"]
    return (f"## Quantized ONNX: perplexity on {quantized['float32']['perplexity_tokens']} tokens of "
            f"{quantized['float32']['data']}\n\n" + markdown_table(headers, rows) + "\n")


def _verdict(gate: dict[str, Any]) -> str:
    change, limit = gate["relative_change"], gate["tolerance"]
    return f"{change:+.2%} (<= +{limit:.0%}: passes)" if gate["passes_default_tolerance"] else f"{change:+.2%} (> +{limit:.0%}: export refuses, exit 3)"
