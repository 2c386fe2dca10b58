"""Hold Ctrl-C / SIGTERM back while a step must finish as a whole, then honour it.

Two kinds of step need it. A fit's checkpoint (or its final files) must land on disk *and* be recorded
by the fit before an interruption is handled: in between, the failure path would take a run with a
complete checkpoint for one without and remove it. And a native call: a KeyboardInterrupt raised by Python's signal handler lands in whatever Python frame runs next.
Inside ``torch.onnx.export`` that can be a callback made from C++ (dynamo's frame evaluation,
fake-tensor dispatch), and an exception unwinding through such a frame can end the process with
SIGABRT instead of the clean "nothing was written" path (seen once in CI: exit -6 instead of 130).
So during such calls the first signal is only recorded and re-raised as KeyboardInterrupt at the
next safe point, right after the call returns; a second signal interrupts at once, for a user who
would rather not wait. Staging directories make both paths safe for files already on disk.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_deferred(what: str) -> Iterator[None]:
    """Run the body with SIGINT/SIGTERM deferred to its end (see the module docstring).

    Outside the main thread signal handlers cannot be set, and none fire there, so the body
    simply runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        print(f"interrupt received: stopping once {what} is done (again to stop at once)", file=sys.stderr, flush=True)

    previous: dict[int, object] = {}
    try:
        for number in SIGNALS:  # one at a time, so a signal between two of them still finds its handler restored
            handler = signal.getsignal(number)
            if handler is not signal.SIG_IGN:  # a process told to ignore a signal goes on ignoring it
                previous[number] = signal.signal(number, record)
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        raise KeyboardInterrupt
