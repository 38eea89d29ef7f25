"""Strict request bodies: one parser for the edge's station API, its staff JSON endpoints and the kiosk.

A body is refused before it is parsed when it is too large or nested too deeply (Python's ``json``
recurses, so a deep body would end in a ``RecursionError``), then decoded as strict UTF-8 JSON (no
``NaN``/``Infinity``), then validated by a pydantic model in strict mode: no ``bool("x")``, no
``int("1_000")``, bounded strings without NUL or lone surrogates, integers within a 64-bit column.
Every refusal is a :class:`BodyError` with a message and a code the caller turns into a 4xx.
"""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

MAX_DEPTH = 16
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


class BodyError(ValueError):
    """A request body the program refuses; ``status`` is 400, or 413 for one that is too large."""

    def __init__(self, message: str, code: str = "bad_body", status: int = 400):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class Body(BaseModel):
    """Base of every request body: strict types, unknown keys refused, immutable.

    ``field_errors`` gives a field's own refusal, ``{"reason": ("bad_reason", "reason must be ...")}``,
    where the API has one; any other bad field is ``bad_field``, a missing one ``missing_field``.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    field_errors: ClassVar[dict[str, tuple[str, str]]] = {}


def _clean(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode (no lone surrogates)") from exc
    return value


def Text(max_length: int, min_length: int = 0) -> Any:  # noqa: N802 (a type factory, used like a type)
    """A string of at most ``max_length`` characters, with no NUL and no lone surrogate."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_clean)]


def check_tree(value: Any) -> Any:
    """A parsed JSON value whose keys and strings are all clean text (see ``Text``), and whose
    integers fit a 64-bit column; returned unchanged. Depth is bounded by ``parse_json``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _clean(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool) and not INT64_MIN <= item <= INT64_MAX:
            raise ValueError("holds an integer beyond 64 bits")
    return value


Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]


def _depth(raw: bytes) -> int:
    """How deeply ``raw`` nests arrays and objects (strings skipped), without recursing."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRING.sub(b'""', raw)):
        if bracket in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number", code="bad_json")


def parse_json(raw: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``raw``; an empty body is ``{}``."""
    if len(raw) > max_bytes:
        raise BodyError(f"the body may have at most {max_bytes} bytes", code="too_large", status=413)
    if not raw.strip():
        return {}
    if _depth(raw) > max_depth:
        raise BodyError(f"the body nests deeper than {max_depth} levels", code="too_deep")
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, BodyError):
            raise
        raise BodyError("the body is not valid JSON", code="bad_json") from exc


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], value: Any) -> M:
    """``value`` (a parsed JSON value) as ``model``, or a BodyError naming the first bad field."""
    if not isinstance(value, dict):
        raise BodyError("the body must be a JSON object", code="bad_json")
    try:
        return model.model_validate(value, strict=True)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if error["type"] == "missing":
            raise BodyError(describe(exc), code="missing_field") from None
        field = str(error["loc"][0]) if error["loc"] else ""
        own: dict[str, tuple[str, str]] = getattr(model, "field_errors", {})
        code, message = own.get(field, ("bad_field", describe(exc)))
        raise BodyError(message, code=code) from None


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error, with where it is: ``matched: must be a boolean``."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "missing":
        return f"missing field: {where}"
    if error["type"] == "extra_forbidden":
        return f"unknown field: {where}"
    return f"{where}: {error['msg']}"


def parse_body(model: type[M], raw: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> M:
    return parse_model(model, parse_json(raw, max_bytes=max_bytes, max_depth=max_depth))
