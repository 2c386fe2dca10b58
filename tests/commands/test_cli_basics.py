"""The CLI's global behaviour: version, help, and the one registry."""

import re

import pytest

from qcompress import __version__, registry
from qcompress.errors import InputError


def test_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_lists_every_command_with_its_summary(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    listed = set(re.findall(r"^│ (\w+) {2,}\S", result.stdout, flags=re.MULTILINE))
    assert listed == {"eval", "export", "fit", "generate", "inspect", "prepare", "verify"}, result.stdout


def test_registry_lists_builtins_through_entry_points():
    assert "quimb" in registry.names("backend")
    assert "qpa" in registry.names("ansatz")


def test_registry_unknown_name_is_one_line_error():
    with pytest.raises(InputError, match="unknown backend 'nope'; choose one of"):
        registry.get("backend", "nope")


@pytest.mark.parametrize("args", [["fit", "--out", "x", "--rank", "abc"], ["fit", "--bogus"], ["no-such-command"]])
def test_usage_errors_are_one_line_with_exit_code_2(run_cli, args):
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
