"""Which specs name something on the Hugging Face hub, and when the hub may be asked.

Model and corpus specs share one rule, so that a mistyped local path is reported "not found" at once
instead of after a TCP probe and a minute of transformers' retries. A spec is local when it starts
with ``.``, ``/`` or ``~``, contains a backslash or ``..``, has more than one ``/``, ends with a file
suffix, or its first path component exists on disk; otherwise only ``name`` or ``org/name`` (letters,
digits, ``_.-``) is a hub id.

A hub id is looked up in the local Hugging Face cache first (no network); the hub itself is asked
only when the cache lacks it, ``HF_HUB_OFFLINE`` is not set, and one TCP probe says it is there.

huggingface_hub is imported inside the functions: deciding what a spec is must stay cheap.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from qcompress.errors import InputError

# Suffixes of files qcompress reads: a spec ending in one is a path someone mistyped, never a repo.
LOCAL_SUFFIXES = (".gguf", ".safetensors", ".bin", ".json", ".txt", ".jsonl", ".md")
_COMPONENT = r"[A-Za-z0-9][\w.-]{0,95}"
HUB_ID = re.compile(rf"^(?:{_COMPONENT}/)?{_COMPONENT}$")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


def is_hub_id(spec: str) -> bool:
    """Whether ``spec`` may name a hub repository; ``False`` means "a local path" (existing or not)."""
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1 or ".." in spec:
        return False
    if spec.lower().endswith(LOCAL_SUFFIXES) or Path(spec.split("/", 1)[0]).exists():
        return False
    return HUB_ID.match(spec) is not None


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now: huggingface_hub reads it once, at import."""
    from huggingface_hub import constants

    now = any(os.environ.get(name, "").strip().upper() in TRUE_VALUES for name in OFFLINE_VARIABLES)
    return now or constants.is_offline_mode()


def hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub opens; huggingface_hub itself retries for about a minute first."""
    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def require_hub(subject: str, hint: str) -> None:
    """Return only when ``subject`` (missing from the local cache) may be downloaded now; else one line.

    Called after the cache lookup failed, so a cached model or dataset never costs a probe.
    """
    from huggingface_hub import constants

    if hub_offline():
        reason = "HF_HUB_OFFLINE is set"
    elif not hub_reachable(constants.ENDPOINT):
        reason = "the Hugging Face hub is unreachable"
    else:
        return
    raise InputError(f"{subject} is not in the local Hugging Face cache and {reason}: {hint}")


def cached_dataset_snapshot(dataset_id: str) -> Path | None:
    """The cached snapshot folder of a hub dataset (its README and data files), found without the network.

    ``datasets`` itself asks the hub first and falls back to its cache only after the connection fails.
    """
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(dataset_id, repo_type="dataset", local_files_only=True))
    except (OSError, ValueError):  # LocalEntryNotFoundError is an OSError; a malformed id a ValueError
        return None
