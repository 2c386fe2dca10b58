"""``qcompress inspect``: placeholder registration, filled in by the quantum-core work."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect() -> None:
        """Show a generator's circuit, parameter counts and timing."""
        raise typer.Exit(0)
