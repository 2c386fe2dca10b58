"""Corpus sources (files, folders, JSON lines), held-out tails, and token blocks; synthetic text only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from qcompress.data import eval_tokens, load_corpus, pack_blocks
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
