"""One module per CLI command; each exposes ``register(app)`` and imports heavy libraries lazily."""

from qcompress.commands import inspect_cmd

COMMAND_MODULES = [inspect_cmd]
