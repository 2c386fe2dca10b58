"""Debian packages built by hand for tests: a Unix ar archive of tar members, as dpkg writes them."""

from __future__ import annotations

import io
import tarfile


def tar_xz(files: dict[str, bytes]) -> bytes:
    """An xz-compressed tar holding ``files`` (path -> content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def ar_archive(members: dict[str, bytes]) -> bytes:
    """A Unix ar archive: 60-byte headers, each member padded to an even length."""
    out = bytearray(b"!<arch>\n")
    for name, content in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n"
        out += header.encode("ascii") + content + (b"\n" if len(content) % 2 else b"")
    return bytes(out)


def deb(files: dict[str, bytes]) -> bytes:
    """A minimal .deb: debian-binary, control.tar.xz and a data.tar.xz holding ``files``."""
    return ar_archive({"debian-binary": b"2.0\n", "control.tar.xz": tar_xz({"./control": b"Package: x\n"}),
                       "data.tar.xz": tar_xz(files)})
