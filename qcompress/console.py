"""Lines for the user that are neither results (stdout) nor errors: notes on stderr."""

from __future__ import annotations

import sys


def note(message: str) -> None:
    """One ``note: ...`` line on stderr, for a default that was adapted or a check that was waived."""
    print(f"note: {message}", file=sys.stderr, flush=True)
