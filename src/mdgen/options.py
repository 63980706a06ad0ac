"""Command-line values checked against the types of the dataclass fields they fill.

Hydra hands over whatever the user typed, parsed as YAML: `seed=abc` is the string "abc",
`sequences=MKWE` a string rather than a list. Each entry point checks its values here, field by field
from the dataclass annotations, so a wrong value is named where it was given (`base_seed='abc':
expected an integer`) instead of failing deep inside with a message about something else. Generic
over the fields: a field added to a dataclass is checked without a change here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from mdgen.errors import UserError

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


class OptionError(UserError):
    """A command-line option has a value of the wrong type; the message names the option."""


def checked_value(option: str, value: Any, hint: Any) -> Any:
    """`value` converted to the annotation `hint`, or `OptionError` naming the option and the value.

    int refuses strings, floats and booleans; float takes an int; bool takes only true/false; str takes
    a number (`name=1234`, `precision=32`); `tuple[X, ...]` takes a list, or one value as a one-element
    tuple (`sequences=MKWE`); `X | None` takes null. Other annotations pass the value through unchanged
    (the field's own checks judge it).
    """
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        errors = []
        for argument in (a for a in arguments if a is not type(None)):
            try:
                return checked_value(option, value, argument)
            except OptionError as error:
                errors.append(error)
        raise errors[0]
    if origin is tuple:
        items = list(value) if isinstance(value, list | tuple) else [value]
        element = arguments[0] if arguments else Any
        return tuple(checked_value(option, item, element) for item in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    shown = repr(value) if isinstance(value, str) else value
    raise OptionError(f"{option}={shown}: expected {_TYPE_WORDS[hint]}")


def checked_fields(cls: type, values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`values` for the fields of dataclass `cls`, each checked (`prefix` + name in messages).

    Keys that are not fields of `cls` pass through (its constructor refuses them).
    """
    hints = typing.get_type_hints(cls)
    return {
        key: checked_value(f"{prefix}{key}", value, hints[key]) if key in hints else value
        for key, value in values.items()
    }
