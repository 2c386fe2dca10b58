"""``qsim`` backend: QPA circuits measured by qsimcirq's ``QSimSimulator`` instead of Cirq's simulators.

Shows the shape of any hardware or third-party sampler plugin: subclass
:class:`qcompress.backends.sampled.SamplerBackend`, return a ``cirq.Sampler`` from ``sampler``,
and declare the class under the ``qcompress.backends`` entry-point group. Shot counting, seeding,
the noise model and the collapse into dense weights all stay in qcompress.
"""

from __future__ import annotations

from typing import ClassVar

import cirq
import qsimcirq

from qcompress.backends.sampled import SamplerBackend


class QsimBackend(SamplerBackend):
    """Shots from qsim; with ``--noise`` qsim samples noisy circuits by quantum trajectories."""

    name: ClassVar[str] = "qsim"

    def sampler(self, seed: int, noise: cirq.NoiseModel | None) -> cirq.Sampler:
        # one thread: qcompress runs share CPUs, and the circuits it measures are small
        return qsimcirq.QSimSimulator(qsim_options=qsimcirq.QSimOptions(cpu_threads=1), seed=seed, noise=noise)
