"""pydantic's validation errors as the API's: one detail per argument, one summary line."""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BeforeValidator, ValidationError

from webapp.infra.errors import ValidationFailed


def where(loc: tuple) -> str:
    """`("jobs", 2, "a")` → `jobs[2].a`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# What a field with a documented pattern looks like, in words: said instead of the regular
# expression when a value does not match it (the pattern itself is in the OpenAPI document).
FORMS: dict[str, str] = {}


def _message(err: dict) -> str:
    field = err["loc"][-1] if err["loc"] else None
    if err["type"] == "string_pattern_mismatch" and field in FORMS:
        return f"should be {FORMS[field]}"
    return err["msg"]


def details_of(exc: ValidationError, default: str = "body") -> list[dict]:
    """One `{argument, message, type}` per error."""
    return [
        {"argument": where(err["loc"]) or default, "message": _message(err), "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def summary(details: list[dict]) -> str:
    return "; ".join(f"{detail['argument']}: {detail['message']}" for detail in details)


def failed(exc: ValidationError, prefix: str, default: str = "body") -> ValidationFailed:
    """A 422 naming each bad argument."""
    details = details_of(exc, default)
    return ValidationFailed(f"{prefix}{summary(details)}", details=details)


def _whole_number(value: Any) -> Any:
    """1.0 is the integer 1: JSON has one kind of number, and JSON Schema counts 1.0 as an integer
    (JavaScript clients cannot even tell them apart). Anything else is left for strict checks."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Put last in an Annotated int (after any bounds, which then stay `minimum`/`maximum` in its JSON
# Schema): the int also takes a whole-number float, and nothing else a strict int refuses.
WHOLE_NUMBER = BeforeValidator(_whole_number)
Integer = Annotated[int, WHOLE_NUMBER]


def json_integers(hint: Any) -> Any:
    """`hint` with every `int` in it read as `Integer` (plain, Annotated, optional, in lists and dicts)."""
    if hint is int:
        return Integer
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        if args[0] is int:
            return Annotated[(int, *args[1:], WHOLE_NUMBER)]
        return Annotated[(json_integers(args[0]), *args[1:])]
    if origin in (Union, UnionType):
        return Union[tuple(json_integers(arg) for arg in args)]  # noqa: UP007 - rebuilt from parts
    if origin in (list, set, frozenset, tuple, dict) and args:
        return origin[tuple(json_integers(arg) for arg in args)]
    return hint
