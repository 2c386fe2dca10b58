"""Which model and corpus specs may reach the Hugging Face hub, and when: every test here counts the
connections the code attempts (each one refused), so "no network" is checked, not assumed."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from qcompress.data import load_corpus
from qcompress.errors import InputError
from qcompress.hub import is_hub_id
from qcompress.models import load_model

REVISION = "0" * 40


@pytest.fixture
def connections(monkeypatch, tmp_path) -> list[tuple]:
    """Every connection attempt (socket connects, ``create_connection``, DNS lookups), each refused.

    The Hugging Face cache is an empty one of this test's own, online mode is what huggingface_hub
    read at import unless a test sets ``HF_HUB_OFFLINE``, and huggingface_hub's once-a-day telemetry
    fetch (a registry of agent names, not a model or dataset) is switched off so it is not counted.
    """
    import datasets.config
    from huggingface_hub import constants

    attempts: list[tuple] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: refuse(address))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return attempts


@pytest.fixture
def workdir(monkeypatch, tmp_path) -> Path:
    """A current directory with ``runs/`` and ``models/`` in it, as in a project checkout."""
    root = tmp_path / "work"
    (root / "runs").mkdir(parents=True)
    (root / "models").mkdir()
    monkeypatch.chdir(root)
    return root


def _cache_repo(kind: str, repo_id: str, files: Path) -> Path:
    """Lay ``files`` out as huggingface_hub's cache does for ``repo_id`` at revision ``main``."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo_id.replace('/', '--')}"
    shutil.copytree(files, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return repo


@pytest.mark.parametrize(
    "spec, hub",
    [
        ("gpt2", True),
        ("HuggingFaceTB/SmolLM2-135M", True),
        ("runs/my-model", False),  # runs/ exists here: a mistyped local path
        ("models/x", False),
        ("no-such-dir/x", True),
        ("./x", False),
        ("/abs/x", False),
        ("~/x", False),
        ("a/b/c", False),
        ("dir\\model", False),
        ("model.gguf", False),
        ("org/weights.safetensors", False),
        ("notes.TXT", False),
        ("org/..", False),
        ("-bad", False),
        ("", False),
    ],
)
def test_hub_id_or_local_path(workdir, spec, hub):
    assert is_hub_id(spec) is hub


@pytest.mark.parametrize("spec", ["runs/my-model", "models/x", "./absent", "~/absent-model", "a/b/c", "tiny.gguf"])
def test_missing_local_model_is_not_found_without_network(workdir, connections, spec):
    with pytest.raises(InputError, match=f"model '{spec}' not found: ") as error:
        load_model(spec)
    assert "\n" not in str(error.value)
    assert connections == []


@pytest.mark.parametrize("spec", ["runs/corpus", "runs/corpus:body", "models/x.jsonl", "notes.txt", "./x", "a/b/c"])
def test_missing_local_corpus_is_not_found_without_network(workdir, connections, spec):
    with pytest.raises(InputError, match="not found: ") as error:
        load_corpus(spec)
    assert "\n" not in str(error.value)
    assert connections == []


def test_run_config_naming_a_missing_local_model_fails_without_network(workdir, connections, run_cli, corpus_dir):
    result = run_cli("fit", "--out", "runs/new", "--model", "runs/my-model", "--data", corpus_dir / "heldout.txt")
    assert result.exit_code == 2
    assert "model 'runs/my-model' not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert connections == []


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_uncached_hub_id_while_offline_fails_in_one_line_without_network(monkeypatch, connections, variable):
    monkeypatch.setenv(variable, "1")
    with pytest.raises(InputError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set.*local dir"):
        load_model("no-such-org/no-such-model")
    with pytest.raises(InputError, match="HF_HUB_OFFLINE is set: download the text") as error:
        load_corpus("no-such-org/no-such-data:body")
    assert "\n" not in str(error.value)
    assert connections == []


def test_uncached_hub_id_probes_the_hub_once_then_fails_in_one_line(connections):
    with pytest.raises(InputError, match="not in the local Hugging Face cache and the Hugging Face hub is unreachable"):
        load_model("no-such-org/no-such-model")
    assert len(connections) == 1
    with pytest.raises(InputError, match="hub is unreachable: download the text") as error:
        load_corpus("no-such-org/no-such-data")
    assert "\n" not in str(error.value)
    assert len(connections) == 2


def test_cached_hub_model_loads_without_network(monkeypatch, connections, tiny_llama_dir):
    _cache_repo("model", "someorg/tiny-llama", tiny_llama_dir)
    loaded = load_model("someorg/tiny-llama")
    assert connections == []
    assert loaded.spec == "someorg/tiny-llama"
    assert loaded.identity["weights_sha256"] == load_model(str(tiny_llama_dir)).identity["weights_sha256"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline changes nothing for a cached model
    assert load_model("someorg/tiny-llama").identity == loaded.identity


def test_cached_hub_dataset_loads_without_network(tmp_path, connections):
    files = tmp_path / "dataset-files"
    files.mkdir()
    rows = [{"text": "First row.", "body": "One"}, {"text": "Second row.", "body": "Two"}]
    (files / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    _cache_repo("dataset", "someorg/texts", files)
    corpus = load_corpus("someorg/texts:body", eval_spec="someorg/texts")
    assert corpus.train_texts == ["One", "Two"]
    assert corpus.eval_texts == ["First row.", "Second row."]
    assert connections == []
