"""The ``qcompress`` command line: one Typer app, one module per command under ``commands/``.

Command modules import only Typer at import time and load torch/quimb/cirq inside the command
body, so ``qcompress --help`` is instant and ``qcompress generate`` never imports torch.
"""

from __future__ import annotations

import sys

import typer

from qcompress import __version__
from qcompress.commands import COMMAND_MODULES
from qcompress.errors import QcompressError

app = typer.Typer(
    name="qcompress",
    help=(
        "Train fine-tuning adapters through small quantum circuits (QPA, QTHA), then collapse them "
        "into plain dense weights and deploy with ONNX Runtime.\n\n"
        "Typical flow: qcompress fit -> qcompress eval -> qcompress export -> qcompress generate."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qcompress {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


for _module in COMMAND_MODULES:
    _module.register(app)


def main() -> None:
    """Console entry point: run the app, turning user errors into one line and an exit code."""
    try:
        app(standalone_mode=False)
    except QcompressError as error:
        if _state["debug"]:
            raise
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(error.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except typer.TyperException as error:  # usage errors (bad option values): one line too, not click's three
        format_message = getattr(error, "format_message", None)
        if format_message is None:
            raise
        context = getattr(error, "ctx", None)
        where = f" (see {context.command_path} --help)" if context is not None else ""
        typer.secho(f"error: {format_message()}{where}", err=True, fg=typer.colors.RED)
        sys.exit(getattr(error, "exit_code", 2))


if __name__ == "__main__":
    main()
