"""qcompress.data.tokens: full training blocks with no padding, one evaluation stream, documents kept apart."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from qcompress.data.tokens import eval_tokens, pack_blocks
from qcompress.errors import InputError


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_documents_are_joined_by_eos_and_blocks_drop_the_tail(tokenizer):
    texts = ["the sister walked", "a letter came"]
    first, second = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts)
    stream = eval_tokens(texts, tokenizer).tolist()
    assert stream == [*first, tokenizer.eos_token_id, *second]
    blocks = pack_blocks(texts, tokenizer, 2)
    assert blocks.shape == (len(stream) // 2, 2)
    assert blocks.flatten().tolist() == stream[: blocks.numel()]


def test_too_little_text_or_too_short_blocks_are_input_errors(tokenizer):
    with pytest.raises(InputError, match="fewer than one block of 4096: add text or lower --seq-len"):
        pack_blocks(["a short text"], tokenizer, 4096)
    with pytest.raises(InputError, match="at least 2 tokens"):
        pack_blocks(["a short text"], tokenizer, 1)


def test_a_tokenizer_without_eos_is_refused(tokenizer):
    bare = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    bare.eos_token = None
    with pytest.raises(InputError, match="no end-of-sequence token"):
        eval_tokens(["text"], bare)
