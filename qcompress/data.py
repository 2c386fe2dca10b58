"""Training and evaluation text: what ``--data`` means, the embedded Austen corpus, and token blocks.

A corpus spec is one of: ``austen`` (Jane Austen's six novels, taken from Debian's
``r-cran-janeaustenr`` package and cached as plain text; five train, *Persuasion* is held out),
a ``.txt`` file, a folder of ``.txt``/``.md`` files, a ``.jsonl`` file (``file.jsonl:field`` picks
the text field, default ``text``), or a Hugging Face dataset id (``id:field`` likewise; train split).

Training text becomes fixed-length blocks with no padding, so every target token in the loss is
real text; evaluation text stays one long token stream for sliding-window perplexity.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import itertools
import json
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcompress.errors import InputError
from qcompress.atomic import publish_directory, staging_directory
from qcompress.hub import cached_dataset_snapshot, is_hub_id, require_hub
from qcompress.models import cache_dir

if TYPE_CHECKING:
    import torch

DEFAULT_CORPUS = "austen"
AUSTEN_PACKAGE = "r-cran-janeaustenr"
# R object names in the package, in publication order, with their titles.
AUSTEN_NOVELS = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
AUSTEN_HELDOUT = "persuasion"
AUSTEN_MANIFEST = "austen.json"
TEXT_SUFFIXES = (".txt", ".md")
FIELD_SUFFIX = re.compile(r"^(?P<source>.+):(?P<field>[A-Za-z_][\w-]*)$")


@dataclass
class Corpus:
    """Texts to train on and texts to measure perplexity on, with a one-line human description."""

    name: str
    train_texts: list[str]
    eval_texts: list[str]
    description: str


def load_corpus(spec: str, eval_spec: str | None = None, holdout_fraction: float = 0.05) -> Corpus:
    """Load ``spec`` for training; evaluate on ``eval_spec``, else on the source's natural held-out part
    (Austen: *Persuasion*), else on the last ``holdout_fraction`` of its characters."""
    if not 0.0 < holdout_fraction < 1.0:
        raise InputError(f"holdout fraction must be between 0 and 1 (exclusive), got {holdout_fraction}")
    heldout: list[str] | None = None
    if spec == DEFAULT_CORPUS:
        novels = read_austen(prepare_default_corpus())
        train = [novels[name] for name in AUSTEN_NOVELS if name != AUSTEN_HELDOUT]
        heldout = [novels[AUSTEN_HELDOUT]]
        what = f"Austen: {len(train)} novels for training"
        held_what = f"{AUSTEN_NOVELS[AUSTEN_HELDOUT]} held out"
    else:
        train, what = load_texts(spec)
    if eval_spec is not None:
        heldout, eval_what = load_texts(eval_spec)
        held_what = f"evaluation on {eval_what}"
    elif heldout is None:
        train, heldout = split_tail(train, holdout_fraction)
        held_what = f"last {holdout_fraction:.0%} held out for evaluation"
    return Corpus(name=spec, train_texts=train, eval_texts=heldout, description=f"{what}, {held_what}")


def load_texts(spec: str) -> tuple[list[str], str]:
    """The non-empty documents of one source, and a short description of it."""
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
            f"a Hugging Face dataset id, or {DEFAULT_CORPUS!r}"
        )
    else:
        texts = _read_hub_dataset(spec, field)
        what = f"hub dataset {spec}"
    texts = [text for text in texts if text.strip()]
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


def split_tail(texts: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """Hold out the last ``fraction`` of the characters, cut at the boundary nearest that point.

    Boundaries are document ends and paragraph breaks; a line break, then a space, is used only when
    the text has no paragraph break that leaves text on both sides.
    """
    starts = list(itertools.accumulate((len(text) for text in texts), initial=0))
    target = round(starts[-1] * (1.0 - fraction))
    for separator in ("\n\n", "\n", " "):
        cuts = [(index, 0) for index in range(1, len(texts))] + [
            (index, found.end()) for index, text in enumerate(texts) for found in re.finditer(separator, text)
        ]
        for index, position in sorted(cuts, key=lambda cut: abs(starts[cut[0]] + cut[1] - target)):
            train = _non_empty([*texts[:index], texts[index][:position]])
            heldout = _non_empty([texts[index][position:], *texts[index + 1 :]])
            if train and heldout:
                return train, heldout
    raise InputError("corpus is too short to hold out an evaluation part: pass --eval-data or more text")


def _non_empty(texts: list[str]) -> list[str]:
    return [text for text in texts if text.strip()]


def austen_dir() -> Path:
    """Where the six Austen novels are cached as UTF-8 text (it may not exist yet)."""
    return cache_dir() / "corpora" / DEFAULT_CORPUS


def prepare_default_corpus() -> Path:
    """Extract the Austen novels from Debian's package once; later calls return the cached folder."""
    target = austen_dir()
    if (target / AUSTEN_MANIFEST).is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="qcompress-deb-") as download:
        deb = download_deb(AUSTEN_PACKAGE, Path(download))
        novels = austen_from_deb(deb.read_bytes())
    staging = staging_directory(target)
    try:
        hashes = {}
        for name, text in novels.items():
            data = text.encode("utf-8")
            (staging / f"{name}.txt").write_bytes(data)
            hashes[f"{name}.txt"] = hashlib.sha256(data).hexdigest()
        manifest = {"source": f"Debian package {deb.name}", "sha256": hashes, "heldout": f"{AUSTEN_HELDOUT}.txt"}
        (staging / AUSTEN_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return publish_directory(staging, target)


def read_austen(folder: Path) -> dict[str, str]:
    """The cached novels by R name, each checked against the manifest's sha256."""
    manifest = json.loads((folder / AUSTEN_MANIFEST).read_text())
    novels = {}
    for name in AUSTEN_NOVELS:
        path = folder / f"{name}.txt"
        data = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != manifest["sha256"].get(path.name):
            raise InputError(
                f"cached corpus file {path} is missing or corrupt: delete {folder} and run `qcompress prepare`"
            )
        novels[name] = data.decode("utf-8")
    return novels


def download_deb(package: str, folder: Path) -> Path:
    """``apt-get download`` one package (no install), running ``apt-get update`` once if root and lists are empty."""
    if shutil.which("apt-get") is None:
        raise InputError(
            f"the {DEFAULT_CORPUS!r} corpus comes from Debian's {package} package but apt-get is not available: "
            "pass --data with your own text instead"
        )
    result = _apt("download", package, cwd=folder)
    if result.returncode != 0 and _unknown_package(result.stderr):
        if os.geteuid() != 0:
            raise InputError(f"apt does not know {package}: run `sudo apt-get update`, then `qcompress prepare`")
        _apt("update", cwd=folder)
        result = _apt("download", package, cwd=folder)
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        detail = (result.stderr.strip().splitlines() or ["no .deb was written"])[-1]
        raise InputError(f"`apt-get download {package}` failed ({detail}): check the network and apt sources")
    return debs[-1]


def _apt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True, text=True, check=False)


def _unknown_package(stderr: str) -> bool:
    return "Unable to locate package" in stderr or "has no installation candidate" in stderr


def austen_from_deb(deb: bytes) -> dict[str, str]:
    """The six novels as paragraph text, read from the package's R lazy-load database inside the .deb."""
    rdb, rdx = _read_from_data_tar(ar_members(deb), ("janeaustenr/data/Rdata.rdb", "janeaustenr/data/Rdata.rdx"))
    variables = read_lazyload_db(rdb, rdx)
    missing = [name for name in AUSTEN_NOVELS if name not in variables]
    if missing:
        raise InputError(f"Debian package lacks novels {', '.join(missing)}: its layout changed; pass --data instead")
    return {name: lines_to_paragraphs(variables[name]) for name in AUSTEN_NOVELS}


def ar_members(archive: bytes) -> dict[str, bytes]:
    """The members of a Unix ``ar`` archive (the container format of a .deb), by name."""
    if not archive.startswith(b"!<arch>\n"):
        raise InputError("downloaded file is not a Debian package (.deb): delete it and retry")
    members, offset = {}, 8
    while offset + 60 <= len(archive):
        header = archive[offset : offset + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        members[name] = archive[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size % 2)  # members are 2-byte aligned
    return members


def _read_from_data_tar(members: dict[str, bytes], wanted: tuple[str, ...]) -> list[bytes]:
    data_names = [name for name in members if name.startswith("data.tar")]
    if not data_names:
        raise InputError("Debian package has no data.tar member: delete the cache and retry")
    try:
        archive = tarfile.open(fileobj=io.BytesIO(members[data_names[0]]), mode="r:*")
    except tarfile.ReadError:
        raise InputError(f"cannot unpack {data_names[0]} (unsupported compression): install a newer Python") from None
    with archive:
        found = {}
        for info in archive.getmembers():
            for suffix in wanted:
                if info.isfile() and info.name.endswith(suffix):
                    found[suffix] = archive.extractfile(info).read()
    missing = [suffix for suffix in wanted if suffix not in found]
    if missing:
        raise InputError(f"Debian package lacks {', '.join(missing)}: its layout changed; pass --data instead")
    return [found[suffix] for suffix in wanted]


def read_lazyload_db(rdb: bytes, rdx: bytes) -> dict[str, Any]:
    """The variables of an R lazy-load database (``.rdb`` blobs indexed by an ``.rdx`` RDS file).

    Each blob is a 4-byte big-endian length followed by a compressed serialised R object; the index
    says where each variable's blob is and how it was compressed (zlib, or a type byte for bzip2/xz).
    """
    import rdata

    index = rdata.conversion.convert(rdata.parser.parse_data(rdx, extension=".rds"))
    compression = int(index["compressed"][0])
    variables = {}
    for name, (offset, length) in index["variables"].items():
        blob = rdb[int(offset) : int(offset) + int(length)]
        serialised = _decompress_blob(blob[4:], compression)
        variables[str(name)] = rdata.conversion.convert(rdata.parser.parse_data(serialised, extension=".rds"))
    return variables


def _decompress_blob(payload: bytes, compression: int) -> bytes:
    if compression == 1:
        return zlib.decompress(payload)
    kind, body = payload[:1], payload[1:]
    decoders = {b"Z": lzma.decompress, b"2": bz2.decompress, b"1": zlib.decompress, b"0": bytes}
    if kind not in decoders:
        raise InputError(f"unknown R lazy-load compression {kind!r}: the package format changed; pass --data instead")
    return decoders[kind](body)


def lines_to_paragraphs(lines: Any) -> str:
    """Join a novel's printed lines into paragraphs: lines within one joined by a space, blank lines between."""
    paragraphs, current = [], []
    for line in lines:
        stripped = str(line).strip()
        if stripped:
            current.append(stripped)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs) + "\n"


def _token_stream(texts: list[str], tokenizer: Any) -> list[int]:
    """All documents tokenised without special tokens and joined by EOS, so no document runs into the next."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise InputError("the tokenizer has no end-of-sequence token: use a model whose tokenizer defines one")
    stream: list[int] = []
    for index, text in enumerate(texts):
        if index:
            stream.append(eos)
        stream.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return stream


def pack_blocks(texts: list[str], tokenizer: Any, seq_len: int) -> torch.LongTensor:
    """Training blocks ``(n_blocks, seq_len)``: the token stream cut into full blocks, tail dropped, no padding."""
    import torch

    if seq_len < 2:
        raise InputError(f"sequence length must be at least 2 tokens, got {seq_len}")
    stream = _token_stream(texts, tokenizer)
    n_blocks = len(stream) // seq_len
    if n_blocks == 0:
        raise InputError(
            f"the corpus has only {len(stream)} tokens, fewer than one block of {seq_len}: "
            "add text or lower --seq-len"
        )
    return torch.tensor(stream[: n_blocks * seq_len], dtype=torch.long).view(n_blocks, seq_len)


def eval_tokens(texts: list[str], tokenizer: Any) -> torch.LongTensor:
    """One long 1-D token stream for sliding-window perplexity."""
    import torch

    return torch.tensor(_token_stream(texts, tokenizer), dtype=torch.long)
