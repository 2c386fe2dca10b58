"""One module per CLI command; each exposes ``register(app)`` and imports heavy libraries lazily."""

from qcompress.commands import eval_cmd, export_cmd, fit_cmd, generate_cmd, inspect_cmd, prepare_cmd, verify_cmd

COMMAND_MODULES = [prepare_cmd, fit_cmd, eval_cmd, export_cmd, verify_cmd, generate_cmd, inspect_cmd]
