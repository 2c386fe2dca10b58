"""What ``generate`` and ``eval`` do with a damaged artifact or a request longer than the model's
context: one ``error:`` line naming the file or the numbers, exit 2, the artifact left as it was;
and ``eval``'s default window fitted to a 128-token context for every kind of target."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fit_helpers import tiny_cli_flags
from fs_helpers import snapshot
from qcompress.errors import InputError

VERIFY_FIX = "re-export the artifact, or pass --no-verify to load it anyway"
CONTEXT = 128  # the tiny fixtures' n_positions / max_position_embeddings
LONG_PROMPT = "the lady walked to the house " * 40  # far more than 128 tokens with the tiny tokenizer


@pytest.fixture
def copy(onnx_artifacts, tmp_path) -> Path:
    """A private copy of the tiny GPT-2 artifact to damage."""
    return Path(shutil.copytree(onnx_artifacts["gpt2"], tmp_path / "artifact"))


def only_error(result) -> str:
    """The whole stderr of a refused command: exactly one ``error:`` line, exit 2."""
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def refused(run_cli, artifact: Path, *args: str) -> str:
    """Run a command that must fail, check it left the artifact byte-identical, return its error line."""
    before = snapshot(artifact)
    line = only_error(run_cli(*args))
    assert snapshot(artifact) == before
    return line


def generate(artifact: Path, *extra: str) -> tuple[str, ...]:
    return ("generate", str(artifact), "--prompt", "The sister", "--max-new-tokens", "4", "--threads", "1", *extra)


def evaluate(target: Path | str, corpus_dir: Path, *extra: str) -> tuple[str, ...]:
    data = ("--data", str(corpus_dir / "train"), "--eval-data", str(corpus_dir / "heldout.txt"))
    return ("eval", str(target), *data, "--max-tokens", "300", "--json", *extra)


def rewrite_file_table(artifact: Path) -> None:
    """Re-hash the manifest after a deliberate change, as an export would have written it."""
    from qcompress.export.manifest import file_table

    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"] = file_table(artifact)
    (artifact / "manifest.json").write_text(json.dumps(manifest))


# --- verification -------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "name"), [("generate", "model.onnx"), ("eval", "tokenizer.json"), ("eval", "config.json")])
def test_changed_file_is_refused_before_loading(copy, run_cli, corpus_dir, command, name):
    path = copy / "onnx" / name
    path.write_bytes(path.read_bytes()[:-1] + b" ")  # same size: only the hash can tell
    args = generate(copy) if command == "generate" else evaluate(copy, corpus_dir)
    line = refused(run_cli, copy, *args)
    assert line == f"error: {path} does not match its sha256 in {copy / 'manifest.json'} (changed or corrupt): {VERIFY_FIX}"


@pytest.mark.parametrize(
    ("content", "problem"), [(None, "is missing"), ("{ not json", "cannot be read"), ("{}", "no 'format_version' entry")]
)
def test_missing_or_unreadable_manifest_is_refused(copy, run_cli, content, problem):
    manifest = copy / "manifest.json"
    if content is None:
        manifest.unlink()
    else:
        manifest.write_text(content)
    line = refused(run_cli, copy, *generate(copy))
    assert line.startswith(f"error: {manifest} ") and problem in line and line.endswith(VERIFY_FIX)


def test_listed_file_that_is_missing_is_named(copy, run_cli):
    (copy / "onnx" / "generation_config.json").unlink()
    line = refused(run_cli, copy, *generate(copy))
    missing = copy / "onnx" / "generation_config.json"
    assert line == f"error: {missing} is listed in {copy / 'manifest.json'} but missing: {VERIFY_FIX}"


def test_file_the_runtime_reads_must_be_listed(copy, run_cli):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = [entry for entry in manifest["files"] if entry["path"] != "onnx/model.onnx"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    line = refused(run_cli, copy, *generate(copy))
    assert f"{copy / 'onnx' / 'model.onnx'} is not listed in" in line


def test_no_verify_skips_hashing(copy, run_cli, monkeypatch):
    import qcompress.integrity

    config = copy / "onnx" / "generation_config.json"
    config.write_text(config.read_text() + "\n")  # harmless, but no longer what was exported
    assert "does not match its sha256" in refused(run_cli, copy, *generate(copy))

    def no_hashing(path: Path, chunk: int = 0) -> str:
        raise AssertionError(f"hashed {path} despite --no-verify")

    monkeypatch.setattr(qcompress.integrity, "sha256_file", no_hashing)
    result = run_cli(*generate(copy, "--no-verify"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("The sister")


def test_external_weights_are_verified_and_a_missing_one_is_one_line(copy, run_cli):
    import onnx

    graph = copy / "onnx" / "model.onnx"
    proto = onnx.load(str(graph))  # re-saved the way the exporter saves graphs above 2 GB
    onnx.save_model(proto, str(graph), save_as_external_data=True, location="model.onnx_data", size_threshold=1024)
    rewrite_file_table(copy)
    assert run_cli(*generate(copy)).exit_code == 0
    data = copy / "onnx" / "model.onnx_data"
    data.write_bytes(data.read_bytes()[:-4])
    assert f"{data} does not match its sha256" in refused(run_cli, copy, *generate(copy))
    data.unlink()
    line = refused(run_cli, copy, *generate(copy, "--no-verify"))
    assert line.startswith(f"error: cannot load {graph} (") and line.endswith("): re-export the artifact")


def test_python_load_verifies_by_default(copy):
    from qcompress.runtime import OnnxCausalLM

    (copy / "onnx" / "config.json").write_text((copy / "onnx" / "config.json").read_text() + " ")
    with pytest.raises(InputError, match="does not match its sha256"):
        OnnxCausalLM.load(copy, threads=1)
    assert OnnxCausalLM.load(copy, threads=1, verify=False).generate("The sister", max_new_tokens=2) is not None


# --- damaged files with --no-verify: ONNX Runtime / tokenizers errors become one line -----------


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "config.json"])
@pytest.mark.parametrize("command", ["generate", "eval"])
def test_corrupt_file_is_one_line_without_verification(copy, run_cli, corpus_dir, command, name):
    path = copy / "onnx" / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    args = generate(copy, "--no-verify") if command == "generate" else evaluate(copy, corpus_dir, "--no-verify")
    line = refused(run_cli, copy, *args)
    assert line.startswith(f"error: cannot load {path} (") and line.endswith("): re-export the artifact")


# --- context --------------------------------------------------------------------------------------


@pytest.fixture
def no_session(monkeypatch):
    """Fail the test if an ONNX Runtime session is created: context errors must come before it."""
    from qcompress.runtime import causal_lm

    def refuse(*args, **kwargs):
        raise AssertionError("an ONNX Runtime session was created")

    monkeypatch.setattr(causal_lm, "DecoderSession", refuse)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_generate_past_the_context_is_refused_before_the_session(onnx_artifacts, run_cli, no_session, kind):
    from qcompress.runtime.artifact import open_artifact

    artifact = onnx_artifacts[kind]
    n = len(open_artifact(artifact).encode("The sister"))
    line = refused(run_cli, artifact, "generate", artifact, "--prompt", "The sister", "--max-new-tokens", "200")
    assert line == (
        f"error: the prompt ({n} tokens) plus --max-new-tokens 200 is {n + 200} tokens, longer than the model's context "
        f"({CONTEXT} tokens): shorten the prompt or lower --max-new-tokens to {CONTEXT - n}"
    )
    line = refused(run_cli, artifact, "generate", artifact, "--prompt", LONG_PROMPT, "--max-new-tokens", "1")
    assert f"fills the model's context ({CONTEXT} tokens)" in line and "shorten the prompt" in line


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_generate_up_to_the_context_works(onnx_artifacts, kind):
    """The last position the context allows is usable (GPT-2's absolute positions end exactly there)."""
    from qcompress.runtime import OnnxCausalLM
    from qcompress.runtime.sampling import SamplingConfig

    model = OnnxCausalLM.load(onnx_artifacts[kind], threads=1)
    model.eos_ids = frozenset()  # run to the very end
    prompt = model.encode("The sister")
    assert len(model.generate_ids(prompt, CONTEXT - len(prompt), SamplingConfig())) == CONTEXT - len(prompt)
    with pytest.raises(InputError, match="context"):
        model.generate_ids(prompt, CONTEXT - len(prompt) + 1, SamplingConfig())


def check_default_window(result) -> None:
    """Default window clamped to the context with one note, stride half of it."""
    assert result.exit_code == 0, result.stderr
    expected = f"note: --seq-len defaults to 256 but the model's context is {CONTEXT} tokens: using {CONTEXT}"
    assert result.stderr.splitlines() == [expected]
    report = json.loads(result.stdout)
    assert (report["seq_len"], report["stride"]) == (CONTEXT, CONTEXT // 2)
    assert report["tokens"] == 299 and report["perplexity"] > 1


def test_eval_artifact_default_window_fits_the_context(onnx_artifacts, run_cli, corpus_dir):
    check_default_window(run_cli(*evaluate(onnx_artifacts["gpt2"], corpus_dir)))


def test_eval_model_default_window_fits_the_context(tiny_gpt2_dir, run_cli, corpus_dir):
    check_default_window(run_cli(*evaluate(tiny_gpt2_dir, corpus_dir)))


def test_eval_run_default_window_fits_the_context(tiny_gpt2_dir, run_cli, corpus_dir, tmp_path):
    run = tmp_path / "run"
    fitted = run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--method", "lora", "--steps", "1", "--out", run)
    assert fitted.exit_code == 0, fitted.stderr
    check_default_window(run_cli(*evaluate(run, corpus_dir)))


@pytest.mark.parametrize("target", ["artifact", "model"])
def test_eval_explicit_window_past_the_context_is_refused(onnx_artifacts, tiny_llama_dir, run_cli, corpus_dir, target):
    path = onnx_artifacts["llama"] if target == "artifact" else tiny_llama_dir
    line = refused(run_cli, path, *evaluate(path, corpus_dir, "--seq-len", "200"))
    assert line == f"error: --seq-len 200 is longer than the model's context ({CONTEXT} tokens): give at most {CONTEXT}"


def test_eval_explicit_window_within_the_context_is_kept(onnx_artifacts, run_cli, corpus_dir):
    result = run_cli(*evaluate(onnx_artifacts["llama"], corpus_dir, "--seq-len", "64"))
    assert result.exit_code == 0 and result.stderr == ""
    report = json.loads(result.stdout)
    assert (report["seq_len"], report["stride"]) == (64, 32)


def test_window_and_generation_arithmetic():
    from qcompress.runtime.context import check_generation_fits, context_length, eval_window

    assert eval_window(None, None, None) == (256, 128, None)
    assert eval_window(64, None, CONTEXT) == (64, 32, None)
    assert eval_window(None, 16, CONTEXT)[:2] == (CONTEXT, 16)
    with pytest.raises(InputError, match=r"--stride 100 is longer than the window \(--seq-len 64\)"):
        eval_window(64, 100, None)
    check_generation_fits(100, CONTEXT - 100, CONTEXT)  # prompt + new tokens may fill the context exactly
    check_generation_fits(10_000, 10, None)  # a config that states no context is not second-guessed
    with pytest.raises(InputError, match="lower --max-new-tokens to 28"):
        check_generation_fits(100, CONTEXT - 99, CONTEXT)
    assert context_length({"text_config": {"max_position_embeddings": 64}}) == 64
