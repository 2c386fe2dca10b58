"""qcompress.data.debian: files out of a .deb (ar container, data.tar) and R lazy-load blobs, damaged input refused."""

from __future__ import annotations

import bz2
import lzma
import zlib

import pytest

from qcompress.data.debian import _decompress_blob, ar_members, read_from_data_tar
from qcompress.errors import InputError

from deb_helpers import ar_archive, tar_xz


def test_members_and_package_files_come_out_whole():
    package = ar_archive({"debian-binary": b"2.0\n", "control.tar.xz": b"odd", "data.tar.xz": tar_xz({
        "./usr/lib/R/site-library/pkg/data/Rdata.rdb": b"blobs", "./usr/lib/R/site-library/pkg/data/Rdata.rdx": b"index"})})
    members = ar_members(package)
    assert list(members) == ["debian-binary", "control.tar.xz", "data.tar.xz"] and members["control.tar.xz"] == b"odd"
    assert read_from_data_tar(members, ("pkg/data/Rdata.rdx", "pkg/data/Rdata.rdb")) == [b"index", b"blobs"]
    with pytest.raises(InputError, match="lacks pkg/data/other: its layout changed"):
        read_from_data_tar(members, ("pkg/data/other",))
    with pytest.raises(InputError, match="has no data.tar member"):
        read_from_data_tar({"debian-binary": b"2.0\n"}, ("x",))


def test_a_damaged_or_truncated_package_is_one_clear_error():
    package = ar_archive({"debian-binary": b"2.0\n", "data.tar.xz": b"0123456789"})
    with pytest.raises(InputError, match="not a Debian package"):
        ar_members(b"<html>rate limited</html>")
    with pytest.raises(InputError, match="truncated .member 'data.tar.xz' runs past its end.: delete it and retry"):
        ar_members(package[:-4])
    garbled = bytearray(package)
    garbled[8 + 48 : 8 + 58] = b"\xff" * 10  # the first member's size field
    with pytest.raises(InputError, match="damaged .bad member header at byte 8."):
        ar_members(bytes(garbled))


@pytest.mark.parametrize(("compression", "packed"), [
    (1, zlib.compress(b"serialised")),
    (3, b"Z" + lzma.compress(b"serialised")),
    (3, b"2" + bz2.compress(b"serialised")),
    (3, b"0" + b"serialised"),
])
def test_lazy_load_blobs_in_every_compression_r_writes(compression, packed):
    assert _decompress_blob(packed, compression) == b"serialised"


def test_an_unknown_blob_compression_is_refused():
    with pytest.raises(InputError, match="unknown R lazy-load compression b'Q'"):
        _decompress_blob(b"Qdata", 3)
