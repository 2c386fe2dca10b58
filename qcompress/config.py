"""Typed, validated configuration shared by every stage.

All config classes derive from :class:`StrictModel`: unknown keys are errors (a typo in a YAML
file must not be silently ignored) and :func:`validated` turns pydantic's multi-line report into
one line that names the field and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from qcompress.errors import InputError

M = TypeVar("M", bound="StrictModel")

# Seeds feed numpy and torch generators, which take unsigned 32-bit seeds everywhere.
MAX_SEED = 2**32 - 1


class StrictModel(BaseModel):
    """Base for every qcompress config: extra keys forbidden, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


#: how to fix a validation error: a fixed hint, or one built from the failing fields (each a :class:`Failure`),
#: which lets a caller name the flag or the file each field came from
Fix = str | Callable[[list["Failure"]], str | None] | None


@dataclass(frozen=True)
class Failure:
    """One failing field of a validation error: its dotted path ("" for the whole model) and pydantic's error type."""

    field: str
    kind: str

    def prefixes(self) -> list[str]:
        """The path and its parents, longest first: a union's branch tags (``targets.list[str]``) sit under the field."""
        parts = self.field.split(".")
        return [".".join(parts[:end]) for end in range(len(parts), 0, -1)] if self.field else []


def one_line(error: ValidationError, what: str, fix: Fix = None) -> str:
    """Summarise a pydantic error as 'invalid what: field: message (got value); field: ...: how to fix'."""
    parts, failures = [], []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        field = ".".join(str(p) for p in item["loc"])
        value = item.get("input")
        shown = isinstance(value, bool | int | float | str) and not (isinstance(value, str) and repr(value) in message)
        got = f" (got {value!r})" if field and shown else ""  # a message that already quotes the value is not repeated
        parts.append(f"{field}: {message}{got}" if field else message)
        failures.append(Failure(field, item["type"]))
    advice = fix(failures) if callable(fix) else fix
    return f"invalid {what}: " + "; ".join(parts) + (f": {advice}" if advice else "")


def validated(cls: type[M], data: dict[str, Any], what: str | None = None, fix: Fix = None) -> M:
    """Build ``cls`` from ``data`` or raise a one-line :class:`InputError` ending in ``fix``."""
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise InputError(one_line(error, what or cls.__name__, fix)) from None


def flag_fix(flags: Callable[[str], str | None], file: Path | None = None, in_file: Callable[[str], bool] = lambda _: False) -> Callable[[list[Failure]], str | None]:
    """A :data:`Fix` naming, per failing field, the command-line flag that set it (``flags``: a path to its flag,
    or None) or its key in the YAML ``file`` (``in_file``: whether a path is there); an unknown key is removed."""

    def advice(failure: Failure) -> str | None:
        for path in failure.prefixes():
            if flag := flags(path):
                return f"change {flag}"
            if file is not None and in_file(path):
                return f"remove {path} from {file}" if failure.kind == "extra_forbidden" else f"change {path} in {file}"
        return None

    def fix(failures: list[Failure]) -> str | None:
        named = [text for text in dict.fromkeys(advice(failure) for failure in failures) if text]
        return "; ".join(named) if named else None

    return fix
