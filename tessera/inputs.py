"""The strict input layer: what every body, form, header and JOSE part is checked against
before anything in it is compared, looked up or stored (checklist rows 34, 38-40).

- ``loads_json``: JSON that is UTF-8, has no ``NaN``/``Infinity`` constants (a non-finite
  number can never be compared, so it never gets in), no number that overflows a double
  (``1e309``), no lone surrogate (``"\\ud800"``), no NUL in any string or key, and no
  nesting deeper than ``MAX_DEPTH``. orjson refuses the first four (and nesting past 1024
  levels) without recursing in Python; the depth bound and the NUL check are one
  iterative walk, so no input can raise ``RecursionError``.
- ``identifier``: a client id, login, username, key or merchant reference from the wire:
  a non-empty string of bounded length, without NUL or any other control character, and
  encodable as UTF-8 (no lone surrogate). Checked before it reaches any database
  (PostgreSQL refuses NUL in text, which must never surface as a database error).
- ``json_int``: a JSON number where an integer is due: a true ``int`` (not ``bool``, not a
  float such as ``1.0``) strictly inside ±2^53, the range every JSON implementation reads exactly.

Refusals raise ``ValueError`` subclasses (``StrictInputError``) carrying a short, safe
description that never echoes the input; the web layer turns them into the profile's
``invalid_request``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

#: Deepest nesting of arrays/objects accepted in any JSON body or JOSE part.
MAX_DEPTH = 32
#: Longest identifier accepted (client ids are 32 characters; e-mail addresses at most 254).
MAX_IDENTIFIER = 256
#: Integer-valued JSON numbers must stay below this magnitude (RFC 7493 §2.2, I-JSON).
MAX_SAFE_INT = 2**53

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class StrictInputError(ValueError):
    """An input refused by the strict layer; ``str(e)`` is safe to show to the caller."""


def loads_json(data: bytes | str) -> Any:
    """Parse JSON strictly (see the module docstring); ``StrictInputError`` if refused."""
    try:
        value = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        raise StrictInputError("the body is not valid JSON") from None
    check_json_value(value)
    return value


def check_json_value(value: Any) -> None:
    """Depth bound and no NUL in any string, iteratively (no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise StrictInputError("a JSON string holds a NUL character")
        elif isinstance(node, dict):
            if depth >= MAX_DEPTH:
                raise StrictInputError(f"JSON nested deeper than {MAX_DEPTH} levels")
            for k, v in node.items():
                if "\x00" in k:
                    raise StrictInputError("a JSON member name holds a NUL character")
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            if depth >= MAX_DEPTH:
                raise StrictInputError(f"JSON nested deeper than {MAX_DEPTH} levels")
            stack.extend((v, depth + 1) for v in node)


def is_identifier(value: Any, *, max_length: int = MAX_IDENTIFIER) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length and _CONTROL.search(value) is None


def identifier(value: Any, name: str, *, max_length: int = MAX_IDENTIFIER) -> str:
    """``value`` if it is a safe identifier, else ``StrictInputError`` naming ``name`` only."""
    if not isinstance(value, str) or not value:
        raise StrictInputError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise StrictInputError(f"{name} is longer than {max_length} characters")
    if _CONTROL.search(value) is not None:
        raise StrictInputError(f"{name} holds a control character or invalid Unicode")
    return value


def json_int(value: Any, name: str) -> int:
    """A JSON integer: an ``int`` that is not a ``bool``, within ±2^53 (floats, ``NaN``,
    ``Infinity`` and integers past 2^53 are refused: never compared)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise StrictInputError(f"{name} must be an integer")
    if not -MAX_SAFE_INT < value < MAX_SAFE_INT:
        raise StrictInputError(f"{name} is out of range")
    return value


def has_nul(text: str) -> bool:
    return "\x00" in text
