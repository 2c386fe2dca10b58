"""The ONNX Runtime side: same greedy tokens and perplexity as PyTorch, seeded sampling, and no
torch / transformers / quimb / cirq in the process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qcompress.errors import InputError
from qcompress.runtime.perplexity import sliding_windows


def _torch_model(kind, tiny_gpt2_dir, tiny_llama_dir):
    from qcompress.models import load_model

    return load_model(str(tiny_gpt2_dir if kind == "gpt2" else tiny_llama_dir))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_greedy_tokens_equal_pytorch(onnx_artifacts, kind, tiny_gpt2_dir, tiny_llama_dir):
    import torch

    from qcompress.runtime import OnnxCausalLM
    from qcompress.runtime.sampling import SamplingConfig

    loaded = _torch_model(kind, tiny_gpt2_dir, tiny_llama_dir)
    onnx_model = OnnxCausalLM.load(onnx_artifacts[kind], threads=1)
    prompt = onnx_model.encode("Elizabeth walked to the house and")
    new_ids = onnx_model.generate_ids(prompt, 20, SamplingConfig())
    with torch.no_grad():
        reference = loaded.model.generate(
            torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=20, do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id,
        )[0, len(prompt):].tolist()
    assert new_ids == reference[: len(new_ids)]
    assert len(new_ids) == len(reference) or new_ids[-1] in onnx_model.eos_ids


@pytest.mark.parametrize(("seq_len", "stride"), [(64, 64), (48, 16)])
def test_perplexity_equals_pytorch(onnx_artifacts, tiny_llama_dir, tiny_gpt2_dir, corpus_dir, seq_len, stride):
    import torch

    from qcompress.runtime import OnnxCausalLM
    from qcompress.training.evaluate import perplexity

    loaded = _torch_model("llama", tiny_gpt2_dir, tiny_llama_dir)
    text = (corpus_dir / "heldout.txt").read_text()[:1500]
    ids = np.asarray(loaded.tokenizer(text)["input_ids"], dtype=np.int64)
    ours = OnnxCausalLM.load(onnx_artifacts["llama"], threads=1).perplexity(ids, seq_len, stride)
    reference = perplexity(loaded.model, torch.from_numpy(ids), seq_len, stride)
    assert ours["tokens"] == reference["tokens"] == ids.size - 1 - (ids.size - 1) // seq_len * (stride == seq_len)
    assert ours["perplexity"] == pytest.approx(reference["perplexity"], rel=1e-5)


def _scored(n, seq_len, stride):
    return [i for begin, end, k in sliding_windows(n, seq_len, stride) for i in range(end - k, end)]


def test_windows_score_every_token_with_context_once():
    for n, seq_len, stride in [(2, 2, 1), (100, 16, 5), (97, 32, 7)]:
        assert _scored(n, seq_len, stride) == list(range(1, n))
    # disjoint windows: a window's first token has no context inside its window and is skipped
    assert _scored(40, 16, 16) == [i for i in range(1, 40) if i % 16]
    with pytest.raises(InputError):
        sliding_windows(10, 8, 9)


def test_sampling_is_seeded_and_validated(onnx_artifacts):
    from qcompress.runtime import OnnxCausalLM

    model = OnnxCausalLM.load(onnx_artifacts["gpt2"], threads=1)
    args = dict(max_new_tokens=12, do_sample=True, temperature=1.3, top_k=50, top_p=0.9)
    assert model.generate("The morning", seed=3, **args) == model.generate("The morning", seed=3, **args)
    assert len({model.generate("The morning", seed=s, **args) for s in range(4)}) > 1
    with pytest.raises(InputError, match="temperature"):
        model.generate("The morning", do_sample=True, temperature=0.0)
    with pytest.raises(InputError, match="top_p"):
        model.generate("The morning", do_sample=True, top_p=0.0)


NO_TORCH = """
import sys, json
import numpy as np
from qcompress.runtime import OnnxCausalLM
model = OnnxCausalLM.load({artifact!r}, threads=1)
text = model.generate("The sister said", max_new_tokens=8)
ids = np.asarray(model.encode("The sister said that her mother would never walk"), dtype=np.int64)
ppl = model.perplexity(ids, 8, 4)["perplexity"]
heavy = sorted(m for m in ("torch", "transformers", "quimb", "cirq", "cotengra") if m in sys.modules)
print(json.dumps({{"heavy": heavy, "ppl": ppl}}))
"""


def test_runtime_imports_no_torch(onnx_artifacts):
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH.format(artifact=str(onnx_artifacts["llama"]))], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["ppl"] > 1


def test_generate_command(onnx_artifacts, run_cli):
    result = run_cli("generate", onnx_artifacts["llama"], "--prompt", "The sister", "--max-new-tokens", "5", "--threads", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("The sister")
    assert "tokens/s" in result.stderr


def test_generate_command_without_artifact(tmp_path, run_cli):
    result = run_cli("generate", tmp_path, "--prompt", "hello")
    assert result.exit_code == 2
    assert "qcompress export" in result.stderr


def test_generate_command_module_imports_only_typer():
    script = (
        "import sys; import qcompress.commands.generate_cmd; "
        "print(sorted(m for m in ('torch','transformers','onnxruntime','quimb','cirq') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_sessions_spin_wait_by_default_and_not_when_asked(onnx_artifacts):
    """ORT's default spinning stays for real use; ``spinning=False`` is what a benchmark stepping several sessions needs."""
    from qcompress.runtime.decoder_session import DecoderSession

    key = "session.intra_op.allow_spinning"
    quiet = DecoderSession(onnx_artifacts["llama"] / "onnx" / "model.onnx", threads=2, spinning=False)
    assert quiet.session.get_session_options().get_session_config_entry(key) == "0"
    default = DecoderSession(onnx_artifacts["llama"] / "onnx" / "model.onnx", threads=2)
    with pytest.raises(RuntimeError, match=key):  # no entry: ONNX Runtime's own default (spinning on)
        default.session.get_session_options().get_session_config_entry(key)


def test_paired_decode_benchmark_reports_every_artifact_against_the_first(onnx_artifacts, monkeypatch):
    """tools/bench_deploy.py's paired measurement: per-artifact step time, ratio to the first, one median per
    session, every session created without spin-waiting (idle sessions' workers would take the cores)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from bench_deploy import paired_decode

    from qcompress.runtime import decoder_session

    created = []

    class Recorded(decoder_session.DecoderSession):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            created.append(self.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning"))

    monkeypatch.setattr(decoder_session, "DecoderSession", Recorded)
    report = paired_decode({"first": onnx_artifacts["llama"], "again": onnx_artifacts["llama"]}, threads=2, sessions=2, rounds=1, steps=3)
    assert created == ["0"] * 4
    assert list(report) == ["first", "again"]
    assert report["first"]["ratio"] == 1.0 and report["first"]["session_ratios"] == [1.0, 1.0]
    again = report["again"]
    assert len(again["session_ratios"]) == 2 and again["step_ms"] > 0
    assert again["ratio_q1"] <= again["ratio"] <= again["ratio_q3"]
