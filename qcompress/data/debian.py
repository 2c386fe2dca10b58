"""Files out of a Debian package without installing it: ``apt-get download``, then the ``ar``
container, its ``data.tar``, and R lazy-load databases (how R data packages store their objects).

Debian's archive is one of the few sources every developer and CI machine reaches, and its
packages are signed and versioned, so corpora are taken from it rather than from the web.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path
from typing import Any

from qcompress.errors import InputError


def download_deb(package: str, folder: Path) -> Path:
    """``apt-get download`` one package (no install), running ``apt-get update`` once if root and lists are empty."""
    if shutil.which("apt-get") is None:
        raise InputError(
            f"this corpus comes from Debian's {package} package but apt-get is not available: "
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


def ar_members(archive: bytes) -> dict[str, bytes]:
    """The members of a Unix ``ar`` archive (the container format of a .deb), by name."""
    if not archive.startswith(b"!<arch>\n"):
        raise InputError("downloaded file is not a Debian package (.deb): delete it and retry")
    members, offset = {}, 8
    while offset + 60 <= len(archive):
        header = archive[offset : offset + 60]
        try:
            name = header[:16].decode("ascii").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:  # UnicodeDecodeError is one: a header of other bytes, or a size that is no number
            raise InputError(f"the Debian package is damaged (bad member header at byte {offset}): delete it and retry") from None
        if size < 0 or offset + 60 + size > len(archive):
            raise InputError(f"the Debian package is truncated (member {name!r} runs past its end): delete it and retry")
        members[name] = archive[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size % 2)  # members are 2-byte aligned
    return members


def read_from_data_tar(members: dict[str, bytes], wanted: tuple[str, ...]) -> list[bytes]:
    """The contents of the package files whose paths end with each of ``wanted``, in that order."""
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
