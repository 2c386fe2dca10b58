"""Write files and directories so that a crash, an error or Ctrl-C never leaves one half-written.

Everything is built under a temporary sibling name first and renamed into place (``os.replace`` is
atomic on one filesystem), so a reader sees either the old version or the complete new one.

Temporary siblings are named ``.NAME.PID.qcompress-KIND-XXXX``: the owner's process id in the name
lets a later run tell leftovers of a process that was killed (``kill -9`` cannot be caught) from
the work of one still running, and :func:`remove_stale_siblings` clears only the former.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.qcompress-(?P<kind>tmp|staging|old)-")


def _sibling_prefix(target: Path, kind: str) -> str:
    return f".{target.name}.{os.getpid()}.qcompress-{kind}-"


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename the result onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_sibling_prefix(path, "tmp"), dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's private 0600 would otherwise survive the rename
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def staging_directory(target: Path) -> Path:
    """A fresh temporary directory next to ``target`` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_sibling_prefix(target, "staging"), dir=target.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's private 0700 would survive the rename
    return staging


def publish_directory(staging: Path, target: Path) -> Path:
    """Move a fully written ``staging`` directory to a ``target`` that does not exist yet, in one rename.

    For caches: if another process published ``target`` first, its copy wins and ours is discarded
    (both were built from the same source).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return target


def user_path(path: str | os.PathLike) -> str:
    """The path the user asked for, where ``path`` lies inside one of our temporary siblings
    (an error message should name ``runs/x``, not ``runs/.x.4242.qcompress-staging-k2j``)."""
    parts = list(Path(path).parts)
    for index, part in enumerate(parts):
        match = SIBLING.match(part)
        if match:
            return str(Path(*parts[:index], match["name"]))
    return str(path)


def paths_overlap(first: Path, second: Path) -> bool:
    """Whether one path is the other or lies inside it (after resolving links)."""
    a, b = first.resolve(), second.resolve()
    return a == b or a in b.parents or b in a.parents


def rename_into_place(new: Path, target: Path) -> None:
    """Move ``new`` onto a ``target`` that is missing or empty; ``FileExistsError`` when another
    process put something there meanwhile (the rename itself refuses a non-empty directory)."""
    try:
        os.rename(new, target)
    except OSError:
        if target.exists():
            raise FileExistsError(errno.EEXIST, "appeared while this command ran", str(target)) from None
        raise


def replace_directory(new: Path, target: Path) -> None:
    """Move the finished ``new`` directory to ``target``, replacing an old one only at the end.

    A directory cannot be swapped in one ``os.replace`` when the target exists, so the old one is
    first renamed aside and restored if the final rename fails; it is deleted only after success.
    A process killed between the two renames leaves the old one aside, and
    :func:`remove_stale_siblings` puts it back.
    """
    if target.is_dir() and not any(target.iterdir()):  # an empty directory is replaced by a plain rename
        os.replace(new, target)
        return
    backup = None
    if target.exists():
        backup = Path(tempfile.mkdtemp(prefix=_sibling_prefix(target, "old"), dir=target.parent))
        os.replace(target, backup)
    try:
        os.replace(new, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def remove_stale_siblings(target: Path) -> list[Path]:
    """Clear what dead processes left beside ``target``; return what was removed or restored."""
    return remove_stale_leftovers(target.parent, only=target.name)


def remove_stale_leftovers(folder: Path, only: str | None = None) -> list[Path]:
    """Clear what dead processes left in ``folder`` (for the entry ``only``, or for every entry).

    Temporary files and staging directories of a process that no longer runs are deleted. An old
    version set aside by :func:`replace_directory` is renamed back when its entry is missing (the
    swap never finished), and deleted when the new version is in place.
    """
    cleared: list[Path] = []
    if not folder.is_dir():
        return cleared
    for path in sorted(folder.iterdir()):
        match = SIBLING.match(path.name)
        if not match or (only is not None and match["name"] != only) or _process_alive(int(match["pid"])):
            continue
        target = folder / match["name"]
        if match["kind"] == "old" and not target.exists():
            os.replace(path, target)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        cleared.append(path)
    return cleared


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
