"""Small fit configurations for the tiny test models (seconds per run, not minutes)."""

from __future__ import annotations

from pathlib import Path

from qcompress.training.config import build_fit_config


def tiny_overrides(model_dir: Path, corpus_dir: Path, **extra) -> dict:
    base = {
        "model": str(model_dir),
        "data": str(corpus_dir / "train"),
        "eval_data": str(corpus_dir / "heldout.txt"),
        "adapter.rank": 4,
        "qpa.n_mlp": 64,
        "qpa.depth": 2,
        "steps": 8,
        "warmup_steps": 1,
        "batch_size": 4,
        "seq_len": 32,
        "eval_every": 4,
        "checkpoint_every": 4,
        "eval_tokens": 256,
        "eval_seq_len": 64,
        "eval_stride": 32,
        "threads": 1,
    }
    base.update(extra)
    return base


def tiny_config(model_dir: Path, corpus_dir: Path, **extra):
    return build_fit_config(None, tiny_overrides(model_dir, corpus_dir, **extra))


def tiny_cli_flags(model_dir: Path, corpus_dir: Path) -> list[str]:
    return [
        "--model", str(model_dir), "--data", str(corpus_dir / "train"), "--eval-data", str(corpus_dir / "heldout.txt"),
        "--rank", "4", "--n-mlp", "64", "--depth", "2", "--steps", "4", "--seq-len", "32", "--eval-every", "0",
        "--eval-tokens", "256", "--eval-seq-len", "64", "--eval-stride", "32",
        "--threads", "1",
    ]


def assert_resume_reaches_the_straight_run(config, tmp_path: Path, state_file: str) -> None:
    """A fit stopped at step 2 and resumed ends byte for byte where the same fit run straight through ends."""
    from qcompress.training.fit import fit

    fit(config, tmp_path / "straight")
    assert fit(config, tmp_path / "resumed", stop_after=2).summary == {"stopped_at": 2}
    fit(None, tmp_path / "resumed", resume=True)
    for name in (state_file, "checkpoint/trainable.safetensors", "checkpoint/state.safetensors"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
