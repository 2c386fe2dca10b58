"""Runs and artifacts written by an earlier qcompress still load, score and export the same.

``tests/end_to_end/fixtures/v1`` was written by qcompress as of commit e523092 (before the method folders, the
collapse contract, method_config and the stacked QTHA training form), on the tiny Llama and corpus
the test suite builds (rebuilt here bit for bit from the same seeds, so the runs' recorded base-model
fingerprints match). ``expected.json`` holds the held-out perplexities that code measured.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qcompress.data import eval_tokens, load_corpus
from qcompress.training.checkpoint import load_checkpoint
from qcompress.training.evaluate import perplexity
from qcompress.training.run_dir import load_run, read_header

FIXTURES = Path(__file__).parent / "fixtures" / "v1"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["perplexity_256_tokens_window_64_stride_32"]


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_an_old_run_loads_verifies_and_scores_the_same(run_cli, tiny_llama_dir, corpus_dir, tmp_path, method):
    run = Path(shutil.copytree(FIXTURES / f"run-{method}", tmp_path / "run"))
    assert run_cli("verify", run).exit_code == 0
    header = read_header(run)
    assert load_checkpoint(run, header["config_sha256"]).step == header["config"]["steps"]
    loaded = load_run(run, model_spec=str(tiny_llama_dir))  # the run names the folder it was made from
    tokens = eval_tokens(load_corpus(str(corpus_dir / "train"), str(corpus_dir / "heldout.txt")).eval_texts, loaded.tokenizer)[:256]
    assert perplexity(loaded.adapted.model, tokens, 64, 32)["perplexity"] == pytest.approx(EXPECTED[method], rel=1e-5)


def test_an_old_run_exports_with_todays_code(tiny_llama_dir, tmp_path):
    from qcompress.export.artifact import export_artifact

    loaded = load_run(FIXTURES / "run-qpa-lora", model_spec=str(tiny_llama_dir))
    collapsed, tokenizer = loaded.collapse()
    manifest = export_artifact(collapsed, tokenizer, tmp_path / "artifact", source={"kind": "run"}, formats=["onnx"])
    assert max(manifest["formats"]["onnx"]["parity"]["max_abs_diff"].values()) < 1e-4


def test_an_old_artifact_verifies_evaluates_and_generates(run_cli, corpus_dir, tmp_path):
    artifact = Path(shutil.copytree(FIXTURES / "artifact-qpa-lora", tmp_path / "artifact"))
    assert run_cli("verify", artifact).exit_code == 0
    scored = run_cli("eval", artifact, "--data", corpus_dir / "train", "--eval-data", corpus_dir / "heldout.txt",
                     "--max-tokens", "256", "--seq-len", "64", "--stride", "32", "--json")
    assert scored.exit_code == 0, scored.stderr
    assert json.loads(scored.stdout)["perplexity"] == pytest.approx(EXPECTED["qpa-lora"], rel=1e-4)
    generated = run_cli("generate", artifact, "--prompt", "the letter", "--max-new-tokens", "5")
    assert generated.exit_code == 0, generated.stderr
