"""Deploy suite: wraps tools/bench_deploy.py (ONNX Runtime vs merged PyTorch vs unmerged PEFT, sizes).

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


def run(out_dir: Path, model: str, new_tokens: int, repeats: int, threads: int, device: str, reuse: bool) -> dict[str, Any]:
    """Run bench_deploy.py and write deploy.{json,md} into ``out_dir``."""
    raw = out_dir / "deploy-raw.json"
    command = [sys.executable, str(SCRIPT), "--model", model, "--new-tokens", str(new_tokens), "--repeats", str(repeats),
               "--threads", str(threads), "--work", str(out_dir / "deploy-artifacts"), "--json", str(raw)]
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
    return (f"## Deploy: {payload['model']}, greedy {payload['new_tokens']} new tokens, {payload['threads']} thread(s)\n\n"
            + markdown_table(["runner", "tokens/s (median)", "first token (ms)", "decode step (ms)", "vs PEFT unmerged"], rows)
            + "\n### Artifact sizes (MB)\n\n" + markdown_table(["artifact", "model/ (safetensors)", "onnx/"], sizes)
            + "".join(f"\n- {note}\n" for note in payload["notes"]))
