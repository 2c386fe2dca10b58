"""The Austen corpus and its named splits: read from a synthetic .deb and synthetic caches (the real
package is slow), plus checks on the real cached novels that `make setup` prepares (marked slow)."""

from __future__ import annotations

import gzip
import shutil
import zlib

import numpy as np
import pytest

from corpus_helpers import novel, populate_austen, shared_windows
from deb_helpers import deb
from qcompress.data import austen, eval_tokens, load_corpus, load_texts, pack_blocks
from qcompress.data.austen import AUSTEN_HELDOUT, AUSTEN_MANIFEST, AUSTEN_NOVELS
from qcompress.errors import InputError

TRAINING = [name for name in AUSTEN_NOVELS if name != AUSTEN_HELDOUT]


@pytest.fixture
def novels(monkeypatch, tmp_path) -> dict[str, str]:
    """A prepared cache of pretend novels; apt must not run."""
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(austen, "download_deb", lambda *args: pytest.fail("apt must not run on a cache hit"))
    return populate_austen(tmp_path)


def _lazyload_db(objects: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """An R lazy-load database (.rdb blobs + gzip'd .rdx index), as R's makeLazyLoadDB writes it."""
    from rdata.conversion import convert_python_to_r_data
    from rdata.unparser import unparse_data

    rdb, index = b"", {}
    for name, value in objects.items():
        serialised = unparse_data(convert_python_to_r_data(value), file_type="rds")
        blob = len(serialised).to_bytes(4, "big") + zlib.compress(serialised)
        index[name] = np.array([len(rdb), len(blob)], dtype=np.int32)
        rdb += blob
    rdx = {"variables": index, "references": {}, "compressed": np.array([True])}
    return rdb, gzip.compress(unparse_data(convert_python_to_r_data(rdx), file_type="rds"))


def test_austen_is_read_from_the_packages_lazy_load_database():
    lines = {name: np.array([title, "", "Chapter 1", "", "", "It was a  ", "  fine day.", ""])
             for name, title in AUSTEN_NOVELS.items()}
    rdb, rdx = _lazyload_db({**lines, "unrelated": np.array(["x"])})
    prefix = "./usr/lib/R/site-library/janeaustenr/data/"
    package = deb({prefix + "Rdata.rdb": rdb, prefix + "Rdata.rdx": rdx, "./usr/share/doc/readme": b"odd"})
    novels = austen.austen_from_deb(package)
    assert sorted(novels) == sorted(AUSTEN_NOVELS)
    assert novels["emma"] == "Emma\n\nChapter 1\n\nIt was a fine day.\n"


def test_not_a_deb_is_refused():
    with pytest.raises(InputError, match="not a Debian package"):
        austen.austen_from_deb(b"<html>proxy error</html>")


def test_austen_is_unchanged_by_the_splits(novels):
    corpus = load_corpus("austen")
    assert corpus.train_texts == [novels[name] for name in TRAINING]
    assert corpus.eval_texts == [novels[AUSTEN_HELDOUT]]
    assert corpus.description == "Austen: 5 novels for training, Persuasion held out"


def test_corrupt_austen_cache_says_how_to_rebuild(novels):
    (austen.austen_dir() / "emma.txt").write_text("tampered")
    with pytest.raises(InputError, match="missing or corrupt.*qcompress prepare"):
        load_corpus("austen")
    (austen.austen_dir() / AUSTEN_MANIFEST).write_text("{not json")
    with pytest.raises(InputError, match=f"{AUSTEN_MANIFEST} is missing or corrupt: delete .* and run `qcompress prepare`"):
        load_corpus("austen-test")


def test_validation_is_the_last_paragraphs_of_each_training_novel(novels):
    train, validation = load_texts("austen-train")[0], load_texts("austen-validation")[0]
    assert [head + tail for head, tail in zip(train, validation)] == [novels[name] for name in TRAINING]
    assert [tail.split(" goes")[0] for tail in validation] == [f"{name} paragraph 97" for name in TRAINING]
    assert all(head.endswith("paragraph 96 goes on a little.\n\n") for head in train)
    assert load_texts("austen-test")[0] == [novels[AUSTEN_HELDOUT]]


def test_austen_train_scores_the_validation_split(novels):
    corpus = load_corpus("austen-train")
    assert corpus.eval_texts == load_texts("austen-validation")[0]
    assert corpus.description.endswith("the Austen validation split (last ~3% of 5 novels) held out")
    assert load_corpus("austen", eval_spec="austen-validation").eval_texts == corpus.eval_texts
    assert load_corpus("austen-test").eval_texts[0].startswith("persuasion paragraph 95")  # no held-out part: last 5%


def test_a_folder_named_like_a_corpus_is_read_as_dot_slash(novels, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "austen-test").mkdir()
    (tmp_path / "austen-test" / "mine.txt").write_text("My own text.")
    assert load_texts("./austen-test")[0] == ["My own text."]
    assert load_texts("austen-test")[0] == [novels[AUSTEN_HELDOUT]]


def test_the_window_check_finds_a_shared_passage(tiny_llama_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    text = novel("emma", paragraphs=20)
    blocks = pack_blocks([text], tokenizer, seq_len=64).tolist()
    assert shared_windows(blocks, eval_tokens([text.split("\n\n", 10)[-1]], tokenizer).tolist(), 32) > 0
    assert shared_windows(blocks, eval_tokens([novel("mansfield", paragraphs=3)], tokenizer).tolist(), 32) == 0


@pytest.fixture(scope="module")
def smollm2():
    """The embedded model's tokenizer, from the cache `make setup` (`qcompress prepare`) fills."""
    from transformers import AutoTokenizer

    from qcompress.models import default_model_dir

    return AutoTokenizer.from_pretrained(default_model_dir())


@pytest.mark.slow
def test_real_validation_is_disjoint_from_training_blocks_and_the_test_text(smollm2):
    novels = austen.read_austen(austen.prepare_default_corpus())
    assert load_texts("austen")[0] == [novels[name] for name in TRAINING]
    validation = eval_tokens(load_texts("austen-validation")[0], smollm2).tolist()
    assert len(validation) >= 8192
    blocks = pack_blocks(load_texts("austen-train")[0], smollm2, seq_len=128).tolist()
    assert shared_windows(blocks, validation, 32) == 0
    test = eval_tokens(load_texts("austen-test")[0], smollm2).tolist()
    assert shared_windows([test], validation, 32) == 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")
def test_austen_from_the_real_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path))
    folder = austen.prepare_default_corpus()
    novels = austen.read_austen(folder)
    assert novels["persuasion"].startswith("Persuasion\n\nby\n\nJane Austen\n\n(1818)\n\nChapter 1\n\nSir Walter Elliot")
    assert all(400_000 < len(text) < 900_000 for text in novels.values())
    assert austen.prepare_default_corpus() == folder
