"""Typed, validated configuration shared by every stage.

All config classes derive from :class:`StrictModel`: unknown keys are errors (a typo in a YAML
file must not be silently ignored) and :func:`validated` turns pydantic's multi-line report into
one line that names the field and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from qcompress.errors import InputError

M = TypeVar("M", bound="StrictModel")

# Seeds feed numpy and torch generators, which take unsigned 32-bit seeds everywhere.
MAX_SEED = 2**32 - 1


class StrictModel(BaseModel):
    """Base for every qcompress config: extra keys forbidden, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


#: how to fix a validation error: a fixed hint, or one built from the failing fields' dotted paths ("" for
#: an error of the whole model), which lets a caller name the flag or file each field came from
Fix = str | Callable[[list[str]], str | None] | None


def one_line(error: ValidationError, what: str, fix: Fix = None) -> str:
    """Summarise a pydantic error as 'invalid what: field: message (got value); field: ...: how to fix'."""
    parts, fields = [], []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        field = ".".join(str(p) for p in item["loc"])
        value = item.get("input")
        shown = isinstance(value, bool | int | float | str) and not (isinstance(value, str) and repr(value) in message)
        got = f" (got {value!r})" if field and shown else ""  # a message that already quotes the value is not repeated
        parts.append(f"{field}: {message}{got}" if field else message)
        fields.append(field)
    advice = fix(fields) if callable(fix) else fix
    return f"invalid {what}: " + "; ".join(parts) + (f": {advice}" if advice else "")


def validated(cls: type[M], data: dict[str, Any], what: str | None = None, fix: Fix = None) -> M:
    """Build ``cls`` from ``data`` or raise a one-line :class:`InputError` ending in ``fix``."""
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise InputError(one_line(error, what or cls.__name__, fix)) from None


def flag_fix(flags: Callable[[str], str | None]) -> Callable[[list[str]], str | None]:
    """A :data:`Fix` naming the command-line flag of each failing field (``flags`` maps a field to its flag, or None)."""

    def fix(fields: list[str]) -> str | None:
        named = [flag for flag in dict.fromkeys(flags(field) for field in fields if field) if flag]
        return f"change {', '.join(named)}" if named else None

    return fix
