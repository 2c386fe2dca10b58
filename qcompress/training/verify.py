"""``qcompress verify RUN``: every file a later command reads back from a run, checked now.

The same checks eval, export and ``--resume`` make when they load a run, run together, so a CI job
or a user about to copy a run can tell it is whole without training or exporting anything.
Reports for people (``metrics.jsonl``, ``summary.json``, ``curves.png``, ``circuit.txt``) are not
read back by any command and are not checked.
"""

from __future__ import annotations

from pathlib import Path

from qcompress.config import validated
from qcompress.methods import get_method
from qcompress.training.checkpoint import CHECKPOINT, STATE_JSON, STATE_TENSORS, TRAINABLE, load_checkpoint
from qcompress.training.config import FitConfig
from qcompress.training.run_dir import HEADER, load_tensors, read_header


def verify_run(run_dir: Path) -> list[str]:
    """The run's files that were checked (relative paths); a one-line InputError for the first bad one."""
    header = read_header(run_dir)
    config = validated(FitConfig, header["config"], f"config in {run_dir / HEADER}")
    state_file = get_method(config.method).state_file
    load_tensors(run_dir / state_file)
    checked = [HEADER, state_file]
    if load_checkpoint(run_dir, header["config_sha256"]) is not None:
        checked += [f"{CHECKPOINT}/{name}" for name in (TRAINABLE, STATE_TENSORS, STATE_JSON)]
    return checked
