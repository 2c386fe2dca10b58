"""One exception family for mistakes a user can fix, each with its own exit code.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``; tracebacks are
shown only with ``--debug``. Anything that is not a ``QcompressError`` is a bug (exit 1).
"""

from __future__ import annotations


class QcompressError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 2


class InputError(QcompressError):
    """Bad input: a missing file, an unknown name, an out-of-range option, a corrupt run."""

    exit_code = 2


class CheckFailed(QcompressError):
    """A numerical check failed (export parity, non-finite loss): the input was fine, the result is not."""

    exit_code = 3


class CapabilityError(QcompressError):
    """The chosen component cannot do what was asked (e.g. train through a non-differentiable backend)."""

    exit_code = 4


class Interrupted(QcompressError):
    """The user stopped the command (Ctrl-C, SIGTERM): the message says what was kept and how to go on."""

    exit_code = 130
