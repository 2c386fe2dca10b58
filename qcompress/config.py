"""Typed, validated configuration shared by every stage.

All config classes derive from :class:`StrictModel`: unknown keys are errors (a typo in a YAML
file must not be silently ignored) and :func:`validated` turns pydantic's multi-line report into
one line that names the field and the fix.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from qcompress.errors import InputError

M = TypeVar("M", bound="StrictModel")

# Seeds feed numpy and torch generators, which take unsigned 32-bit seeds everywhere.
MAX_SEED = 2**32 - 1


class StrictModel(BaseModel):
    """Base for every qcompress config: extra keys forbidden, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def one_line(error: ValidationError, what: str) -> str:
    """Summarise a pydantic error as 'what: field: message; field: message'."""
    parts = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        field = ".".join(str(p) for p in item["loc"])
        parts.append(f"{field}: {message}" if field else message)
    return f"invalid {what}: " + "; ".join(parts)


def validated(cls: type[M], data: dict[str, Any], what: str | None = None) -> M:
    """Build ``cls`` from ``data`` or raise a one-line :class:`InputError`."""
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise InputError(one_line(error, what or cls.__name__)) from None
