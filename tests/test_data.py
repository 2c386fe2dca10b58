"""Corpus sources, held-out splits, token blocks, and the Austen loader (a synthetic .deb; the real one is slow)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from qcompress import data
from qcompress.data import AUSTEN_HELDOUT, AUSTEN_NOVELS, eval_tokens, load_corpus, pack_blocks
from qcompress.errors import InputError


def paragraphs(count: int, prefix: str = "Paragraph") -> str:
    return "\n\n".join(f"{prefix} {i} has a few words in it." for i in range(count))


@pytest.fixture
def tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_text_file_holds_out_its_tail_at_a_paragraph_boundary(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(paragraphs(100))
    corpus = load_corpus(str(path), holdout_fraction=0.2)
    assert corpus.eval_texts[0].startswith("Paragraph 80 ")
    assert corpus.train_texts[0].rstrip().endswith("Paragraph 79 has a few words in it.")
    assert "20% held out" in corpus.description
    assert corpus.name == str(path)


def test_holdout_respects_document_boundaries(tmp_path):
    for i in range(4):
        (tmp_path / f"doc{i}.txt").write_text(f"Document {i}. " * 50)
    corpus = load_corpus(str(tmp_path), holdout_fraction=0.25)
    assert corpus.train_texts == [f"Document {i}. " * 50 for i in range(3)]
    assert corpus.eval_texts == ["Document 3. " * 50]


def test_single_paragraph_falls_back_to_a_word_boundary(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("word " * 100)
    corpus = load_corpus(str(path), holdout_fraction=0.1)
    assert corpus.eval_texts == ["word " * 10]


def test_folder_is_read_recursively_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "second.md").write_text("Second document.")
    (tmp_path / "a.txt").write_text("First document.")
    (tmp_path / "ignored.csv").write_text("not,text")
    corpus = load_corpus(str(tmp_path), eval_spec=str(tmp_path / "a.txt"))
    assert corpus.train_texts == ["First document.", "Second document."]
    assert corpus.eval_texts == ["First document."]
    assert "evaluation on" in corpus.description


def test_jsonl_default_and_named_field(tmp_path):
    path = tmp_path / "records.jsonl"
    rows = [{"text": f"row {i}", "body": f"body {i}"} for i in range(3)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    assert load_corpus(str(path), eval_spec=str(path)).train_texts == ["row 0", "row 1", "row 2"]
    assert load_corpus(f"{path}:body", eval_spec=str(path)).train_texts == ["body 0", "body 1", "body 2"]


@pytest.mark.parametrize(
    "content, message",
    [('{"text": "ok"}\nnot json\n', "records.jsonl:2 is not valid JSON"), ('{"other": "x"}\n', "no string field 'text'")],
)
def test_bad_jsonl_lines_are_located(tmp_path, content, message):
    path = tmp_path / "records.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_corpus(str(path))


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', "records.jsonl:2 is not UTF-8 text"),
        (b'{"text": "ok"}\n"just a string"\n', "records.jsonl:2 is a JSON str, not an object"),
        (b"", "is empty"),
        (b"\n  \n", "is empty"),
    ],
)
def test_bad_jsonl_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "records.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as error:
        load_corpus(str(path))
    assert "\n" not in str(error.value)


def test_jsonl_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "first"}\r\n{"text": "second"}\r\n')
    assert load_corpus(str(path), eval_spec=str(path)).train_texts == ["first", "second"]


def test_folder_with_a_non_utf8_file_names_it_in_one_line(tmp_path):
    (tmp_path / "good.txt").write_text("Fine text.")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "latin1.md").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.md' is not UTF-8 text") as error:
        load_corpus(str(tmp_path))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name, reader", [("book.txt", "read_text"), ("records.jsonl", "read_bytes")])
def test_unreadable_file_is_a_one_line_error(monkeypatch, tmp_path, name, reader):
    path = tmp_path / name
    path.write_text('{"text": "x"}\n')

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, reader, denied)  # root reads through chmod 000, so simulate it
    with pytest.raises(InputError, match=f"cannot read '.*{name}' \\(Permission denied\\): check the file"):
        load_corpus(str(path))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_holdout_fraction_must_be_a_proper_fraction(tmp_path, fraction):
    path = tmp_path / "book.txt"
    path.write_text(paragraphs(10))
    with pytest.raises(InputError, match="between 0 and 1"):
        load_corpus(str(path), holdout_fraction=fraction)


def test_empty_corpus_is_refused(tmp_path):
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    with pytest.raises(InputError, match="is empty"):
        load_corpus(str(tmp_path / "blank.txt"))
    with pytest.raises(InputError, match="is empty"):
        load_corpus(str(tmp_path))


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_corpus(str(tmp_path / "absent.txt"))
    (tmp_path / "book.txt").write_text(paragraphs(3))
    with pytest.raises(InputError, match="corpus './absent' not found"):
        load_corpus(str(tmp_path), eval_spec="./absent")


def test_pack_blocks_cuts_full_blocks_without_padding(tokenizer, corpus_dir):
    texts = [path.read_text() for path in sorted((corpus_dir / "train").glob("*.txt"))]
    blocks = pack_blocks(texts, tokenizer, seq_len=64)
    stream = eval_tokens(texts, tokenizer)
    assert blocks.dtype == stream.dtype == torch.long
    assert blocks.shape == (len(stream) // 64, 64)
    assert blocks.flatten().tolist() == stream[: blocks.numel()].tolist()
    separators = (stream == tokenizer.eos_token_id).sum().item()
    assert separators == len(texts) - 1
    assert tokenizer.decode(stream).count("<|endoftext|>") == len(texts) - 1


def test_pack_blocks_refuses_a_corpus_shorter_than_one_block(tokenizer):
    with pytest.raises(InputError, match=r"only \d+ tokens, fewer than one block of 4096"):
        pack_blocks(["A short text."], tokenizer, seq_len=4096)


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


def _deb(files: dict[str, bytes]) -> bytes:
    """A minimal .deb: an ar archive with debian-binary, control.tar.xz and data.tar.xz."""
    def tar_xz(entries: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
            for name, content in entries.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
        return buffer.getvalue()

    members = {"debian-binary": b"2.0\n", "control.tar.xz": tar_xz({"./control": b"Package: x\n"}),
               "data.tar.xz": tar_xz(files)}
    out = b"!<arch>\n"
    for name, content in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode()
        out += header + content + (b"\n" if len(content) % 2 else b"")
    return out


def test_austen_is_read_from_the_packages_lazy_load_database():
    lines = {name: np.array([title, "", "Chapter 1", "", "", "It was a  ", "  fine day.", ""])
             for name, title in AUSTEN_NOVELS.items()}
    rdb, rdx = _lazyload_db({**lines, "unrelated": np.array(["x"])})
    prefix = "./usr/lib/R/site-library/janeaustenr/data/"
    deb = _deb({prefix + "Rdata.rdb": rdb, prefix + "Rdata.rdx": rdx, "./usr/share/doc/readme": b"odd"})
    novels = data.austen_from_deb(deb)
    assert sorted(novels) == sorted(AUSTEN_NOVELS)
    assert novels["emma"] == "Emma\n\nChapter 1\n\nIt was a fine day.\n"


def test_not_a_deb_is_refused():
    with pytest.raises(InputError, match="not a Debian package"):
        data.austen_from_deb(b"<html>proxy error</html>")


def _populate_austen_cache(root: Path) -> Path:
    folder = root / "corpora" / "austen"
    folder.mkdir(parents=True)
    hashes = {}
    for name in AUSTEN_NOVELS:
        content = f"{name} first paragraph.\n\n{name} second paragraph.\n".encode()
        (folder / f"{name}.txt").write_bytes(content)
        hashes[f"{name}.txt"] = hashlib.sha256(content).hexdigest()
    (folder / data.AUSTEN_MANIFEST).write_text(json.dumps({"sha256": hashes}))
    return folder


def test_austen_cache_hit_needs_no_apt(monkeypatch, tmp_path):
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path))
    _populate_austen_cache(tmp_path)
    monkeypatch.setattr(data, "download_deb", lambda *args: pytest.fail("apt must not run on a cache hit"))
    corpus = load_corpus("austen")
    assert len(corpus.train_texts) == 5
    assert corpus.eval_texts == [f"{AUSTEN_HELDOUT} first paragraph.\n\n{AUSTEN_HELDOUT} second paragraph.\n"]
    assert corpus.train_texts[0].startswith("sensesensibility")
    assert corpus.description == "Austen: 5 novels for training, Persuasion held out"


def test_corrupt_austen_cache_says_how_to_rebuild(monkeypatch, tmp_path):
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path))
    folder = _populate_austen_cache(tmp_path)
    (folder / "emma.txt").write_text("tampered")
    with pytest.raises(InputError, match="missing or corrupt.*qcompress prepare"):
        load_corpus("austen")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")
def test_austen_from_the_real_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path))
    folder = data.prepare_default_corpus()
    novels = data.read_austen(folder)
    assert novels["persuasion"].startswith("Persuasion\n\nby\n\nJane Austen\n\n(1818)\n\nChapter 1\n\nSir Walter Elliot")
    assert all(400_000 < len(text) < 900_000 for text in novels.values())
    assert data.prepare_default_corpus() == folder
