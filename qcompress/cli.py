"""The ``qcompress`` command line: one Typer app, one module per command under ``commands/``.

Command modules import only Typer at import time and load torch/quimb/cirq inside the command
body, so ``qcompress --help`` is instant and ``qcompress generate`` never imports torch.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings

import typer

from qcompress import __version__
from qcompress.commands import COMMAND_MODULES
from qcompress.atomic import user_path
from qcompress.errors import Interrupted, QcompressError

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


# Warnings from our dependencies about each other, which a qcompress user can do nothing about.
FOREIGN_WARNINGS = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),  # PEFT calling a transformers 5 alias
    (Warning, r".*LeafSpec"),  # onnxscript / torch.export using a deprecated pytree spec
    (FutureWarning, r"`past_key_values` is deprecated"),  # PEFT's prefix tuning calling a transformers 5 alias
)


# A filesystem error is the environment's, not a bug of ours: reported like bad input.
FILESYSTEM_EXIT = 2

# Loggers that report on optional parts of our dependencies we do not use.
FOREIGN_LOGGERS = ("torch.onnx._internal.exporter._registration",)  # "torchvision is not installed. Skipping ..."
# Log lines of one message only: transformers names no loss for GPT-2-style classes and says so on every fit.
FOREIGN_LOG_MESSAGES = (("transformers.modeling_utils", "was set in the config but it is unrecognized"),)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _quiet_foreign_warnings() -> None:
    for category, message in FOREIGN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in FOREIGN_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name, text in FOREIGN_LOG_MESSAGES:
        logging.getLogger(name).addFilter(_DropMessage(text))


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a CI job cancelled, ``kill``) takes the same clean path as Ctrl-C: staging directories
    are removed and the message says what was kept, instead of the process vanishing mid-write."""

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def _fail(message: str, exit_code: int) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    sys.exit(exit_code)


def main() -> None:
    """Console entry point: run the app, turning user errors into one line and an exit code."""
    # huggingface_hub otherwise fetches a list from the hub once a day even for cached models;
    # set before any command imports it (it reads the variable at import).
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    _quiet_foreign_warnings()
    _interrupt_on_sigterm()
    try:
        returned = app(standalone_mode=False)
    except QcompressError as error:
        if _state["debug"]:
            raise
        _fail(str(error), error.exit_code)
    except OSError as error:  # the filesystem refused: permissions, a read-only mount, a full disk
        if _state["debug"]:
            raise
        _fail(_filesystem_message(error), FILESYSTEM_EXIT)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        _fail("interrupted: nothing was changed", Interrupted.exit_code)
    except typer.TyperException as error:  # usage errors (bad option values): one line too, not click's three
        format_message = getattr(error, "format_message", None)
        if format_message is None:
            raise
        context = getattr(error, "ctx", None)
        what = format_message() or f"no command given: choose one of {', '.join(sorted(app_commands()))}"
        where = f" (see {context.command_path} --help)" if context is not None else ""
        _fail(f"{what}{where}", getattr(error, "exit_code", 2))
    # Typer turns a Ctrl-C that no command handled into a returned 130 in non-standalone mode.
    if returned == Interrupted.exit_code:
        _fail("interrupted: nothing was changed", Interrupted.exit_code)
    if isinstance(returned, int) and returned:
        sys.exit(returned)


def _filesystem_message(error: OSError) -> str:
    where = " -> ".join(user_path(name) for name in (error.filename, error.filename2) if name)
    reason = error.strerror or type(error).__name__
    return f"cannot use {where or 'a file'} ({reason}): check the path, its permissions and the free space"


def app_commands() -> list[str]:
    return [command.name or command.callback.__name__ for command in app.registered_commands]


if __name__ == "__main__":
    main()
