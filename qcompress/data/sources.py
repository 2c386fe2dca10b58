"""Where a corpus spec's documents come from: a corpus name, a file, a folder, JSON lines or a hub dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

from qcompress.data.named import NAMED_CORPORA
from qcompress.data.splits import non_empty
from qcompress.errors import InputError
from qcompress.hub import cached_dataset_snapshot, is_hub_id, require_hub

TEXT_SUFFIXES = (".txt", ".md")
FIELD_SUFFIX = re.compile(r"^(?P<source>.+):(?P<field>[A-Za-z_][\w-]*)$")


def load_texts(spec: str) -> tuple[list[str], str]:
    """The non-empty documents of one source, and a short description of it."""
    if spec in NAMED_CORPORA:
        named = NAMED_CORPORA[spec]
        return named.read(), named.what
    if not spec.strip():  # Path("") is the current directory: an empty option must not read all of it
        raise InputError("the corpus is an empty string: give a .txt file, a folder, a .jsonl file or a dataset id")
    match = FIELD_SUFFIX.match(spec)
    field = "text"
    if match and not Path(spec).exists():
        spec, field = match["source"], match["field"]
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        texts = [_read_text(p) for p in files]
        what = f"{len(files)} text files under {spec}"
    elif path.is_file() and path.suffix.lower() == ".jsonl":
        texts = _read_jsonl(path, field)
        what = f"{len(texts)} records of {spec}"
    elif path.is_file():
        texts = [_read_text(path)]
        what = spec
    elif not is_hub_id(spec):
        raise InputError(
            f"corpus {spec!r} not found: give a .txt file, a folder of .txt/.md files, a .jsonl file, "
            f"a Hugging Face dataset id, or a corpus name ({', '.join(NAMED_CORPORA)})"
        )
    else:
        texts = _read_hub_dataset(spec, field)
        what = f"hub dataset {spec}"
    texts = non_empty(texts)
    if not texts:
        raise InputError(f"corpus {spec!r} is empty (no non-whitespace text): give a text with words in it")
    return texts, what


def _unreadable(path: Path, error: OSError) -> InputError:
    reason = error.strerror or type(error).__name__
    return InputError(f"cannot read {str(path)!r} ({reason}): check the file and its permissions")


def _read_text(path: Path) -> str:
    """The file's text with newlines made ``\\n`` (the held-out split looks for blank lines)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{str(path)!r} is not UTF-8 text: convert it to UTF-8 or leave it out") from None
    except OSError as error:
        raise _unreadable(path, error) from None


def _read_jsonl(path: Path, field: str) -> list[str]:
    """One text per non-blank line, each an object with a string ``field``; a bad line is named by number.

    Lines are decoded one by one so that a non-UTF-8 byte is reported with its line, not as a
    traceback; a byte-order mark (Windows editors write one) is dropped.
    """
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise _unreadable(path, error) from None
    texts = []
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{path}:{number} is not UTF-8 text: convert the file to UTF-8") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number} is not valid JSON ({error.msg}): fix or remove that line") from None
        if not isinstance(record, dict):
            raise InputError(
                f"{path}:{number} is a JSON {type(record).__name__}, not an object: "
                f'write one object per line, like {{"{field}": "..."}}'
            )
        if not isinstance(record.get(field), str):
            raise InputError(f"{path}:{number} has no string field {field!r}: name the field as '{path}:FIELD'")
        texts.append(record[field])
    return texts


def _read_hub_dataset(dataset_id: str, field: str) -> list[str]:
    """The train split's ``field`` column: from the local Hugging Face cache when it holds the dataset
    (no network at all), else from the hub when :func:`require_hub` allows it (one line, not minutes of
    retries, when it does not)."""
    import datasets

    snapshot = cached_dataset_snapshot(dataset_id)
    try:
        table = datasets.load_dataset(str(snapshot), split="train") if snapshot else None
    except Exception:  # an incomplete cached snapshot (datasets raises many types): the hub has it whole
        table = None
    if table is None:
        require_hub(f"corpus {dataset_id!r}", "download the text and pass a local file or folder")
        try:
            table = datasets.load_dataset(dataset_id, split="train")
        except Exception as error:  # datasets raises many unrelated types for "cannot get it"
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(f"cannot load dataset {dataset_id!r}: {first}") from None
    if field not in table.column_names:
        raise InputError(
            f"dataset {dataset_id!r} has no column {field!r} (columns: {', '.join(table.column_names)}): "
            f"pass '{dataset_id}:COLUMN'"
        )
    return [text for text in table[field] if isinstance(text, str)]
