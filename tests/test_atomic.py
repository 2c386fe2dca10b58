"""Atomic writes: a failure leaves the old file and no temporary behind; permissions are normal."""

import os
import stat

import pytest

from qcompress.atomic import write_atomic, write_json_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    write_json_atomic(target, {"step": 1})

    def half_write(tmp):
        tmp.write_text('{"step": 2')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, half_write)
    assert target.read_text() == '{\n  "step": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_written_files_follow_the_umask_not_mkstemp(tmp_path):
    target = tmp_path / "a.json"
    write_json_atomic(target, {})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
