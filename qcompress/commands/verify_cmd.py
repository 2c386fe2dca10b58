"""``qcompress verify``: check that a run or an artifact is whole before it is copied, shipped or used."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        target: Path = typer.Argument(..., help="A run directory (made by fit) or an artifact directory (made by export)."),
        as_json: bool = typer.Option(False, "--json", help="Print the checked files as JSON."),
    ) -> None:
        """Check every file a later command reads: an artifact's against manifest.json, a run's header, state and checkpoint."""
        from qcompress.errors import InputError
        from qcompress.targets import target_kind

        kind = target_kind(str(target))
        if kind == "artifact":
            from qcompress.integrity import verify_listed_files

            checked = verify_listed_files(target, "re-export the artifact")
        elif kind == "run":
            from qcompress.training.verify import verify_run

            checked = verify_run(target)
        else:
            raise InputError(f"{target} is neither a run (no qcompress.json) nor an artifact (no manifest.json): give the --out of fit or export")
        if as_json:
            typer.echo(json.dumps({"target": str(target), "kind": kind, "files": checked}, indent=2))
        else:
            typer.echo(f"{target} ({kind}): {len(checked)} files verified")
