"""Contraction trees found once per circuit structure and kept: in memory, and on disk for large ones.

Path search is the expensive, structure-only part of tensor-network simulation (seconds at N = 16,
minutes beyond), while a found tree can contract any arrays of the same shapes. So trees are keyed
by cotengra's hash of (inputs, output, sizes), never searched per call, and the slow searches are
seeded so the same structure always gets the same path (hence bit-identical results).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cotengra
import numpy as np

BATCH_INDEX = "batch"


class TreeCache:
    """Contraction trees keyed by cotengra's hash of (inputs, output, sizes); ``searches`` counts real searches.

    Networks with at most ``greedy_qubits`` open qubit legs use cotengra's greedy search (milliseconds;
    measured as fast to contract as a hyper-searched tree at N = 8 and 10). Larger ones get a seeded
    randomised-greedy hyper search: seconds, but 2x faster contraction at N = 12 and none of the
    2^22-sized intermediates plain greedy picks at N = 16. Its path is stored as JSON in
    ``directory`` so each structure is searched once per machine, not once per process.
    """

    def __init__(self, directory: Path | None = None, greedy_qubits: int = 10, hyper_repeats: int = 8) -> None:
        self.directory = directory
        self.greedy_qubits = greedy_qubits
        self.hyper_repeats = hyper_repeats
        self.searches = 0
        self._trees: dict[str, cotengra.ContractionTree] = {}

    def get(self, inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int]) -> cotengra.ContractionTree:
        key = cotengra.hash_contraction(inputs, output, sizes)
        if key not in self._trees:
            self._trees[key] = self._load(key, inputs, output, sizes) or self._search(key, inputs, output, sizes)
        return self._trees[key]

    def _load(self, key: str, inputs, output, sizes) -> cotengra.ContractionTree | None:
        stored = self.directory / f"{key}.json" if self.directory else None
        if stored is None or not stored.exists():
            return None
        try:
            path = [tuple(pair) for pair in json.loads(stored.read_text())]
            return cotengra.array_contract_tree(inputs, output, sizes, optimize=path)
        except (ValueError, TypeError, IndexError, KeyError):
            return None  # an unreadable or foreign file is only a lost cache entry: search again

    def _search(self, key: str, inputs, output, sizes) -> cotengra.ContractionTree:
        self.searches += 1
        if sum(1 for ind in output if ind != BATCH_INDEX) <= self.greedy_qubits:
            return cotengra.array_contract_tree(inputs, output, sizes, optimize="greedy")
        optimizer = cotengra.HyperOptimizer(
            methods=["greedy"], max_repeats=self.hyper_repeats, minimize="combo", parallel=False, optlib="random", seed=0
        )
        with fixed_global_rng():  # cotengra's greedy jitter draws from the global RNGs
            tree = cotengra.array_contract_tree(inputs, output, sizes, optimize=optimizer)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f".{key}.{os.getpid()}.tmp"
            temporary.write_text(json.dumps([list(pair) for pair in tree.get_path()]))
            temporary.replace(self.directory / f"{key}.json")
        return tree


@contextmanager
def fixed_global_rng(seed: int = 0) -> Iterator[None]:
    """Seed Python's and NumPy's global RNGs for a block, then restore them: same structure, same path."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def default_tree_directory() -> Path:
    """Where searched contraction paths are kept: $QCOMPRESS_CACHE or ~/.cache/qcompress, under contraction-paths/."""
    root = os.environ.get("QCOMPRESS_CACHE") or Path.home() / ".cache" / "qcompress"
    return Path(root) / "contraction-paths"


TREE_CACHE = TreeCache(default_tree_directory())
