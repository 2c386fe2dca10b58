"""qcompress.registry: built-ins arrive through the same entry points as plugins; run-time registrations for tests."""

from __future__ import annotations

import pytest

from qcompress import registry
from qcompress.errors import InputError


def test_built_ins_are_entry_points_like_any_plugin():
    assert {"lora", "qpa-lora", "qtha", "prefix", "vera"} <= set(registry.names("method"))  # vera: the plugin
    assert {"quimb", "classical", "cirq"} <= set(registry.names("backend"))
    assert {"qpa", "qtha"} <= set(registry.names("ansatz"))
    assert {"safetensors", "onnx", "peft"} <= set(registry.names("exporter"))
    assert registry.get("method", "lora").name == "lora"


def test_an_unknown_name_lists_the_choices_and_an_unknown_kind_is_refused():
    with pytest.raises(InputError, match=r"unknown method 'lorra'; choose one of: .*lora.*qpa-lora"):
        registry.get("method", "lorra")
    with pytest.raises(InputError, match="unknown registry kind 'methods'"):
        registry.get("methods", "lora")
    with pytest.raises(InputError, match="unknown registry kind"):
        registry.names("generator")


def test_a_run_time_registration_is_found_first_and_can_be_removed():
    marker = object()
    registry.register("backend", "test-only-backend", marker)
    try:
        assert registry.get("backend", "test-only-backend") is marker
        assert "test-only-backend" in registry.names("backend")
    finally:
        registry.unregister("backend", "test-only-backend")
    assert "test-only-backend" not in registry.names("backend")
