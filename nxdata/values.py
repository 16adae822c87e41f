"""Strict checks on values from outside: what PostgreSQL would refuse (or silently change), said
before anything is sent, and hostile text kept short in messages.

msgspec checks types; these checks cover what msgspec's types cannot express: text PostgreSQL
cannot store (NUL, lone surrogates), numbers a ``numeric(p, s)`` column would overflow or round,
NaN and Infinity. Every check returns the problem as a sentence (or None), so callers raise the
error of their layer (`ValidationError` for bodies, `FilterError` for filters) naming the part.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "NumericBounds",
    "clip",
    "decimal_problem",
    "json_text_problem",
    "numeric_bounds",
    "shown",
    "text_problem",
]

_CLIP = 120
"""Characters of client text kept in a message; the rest is counted, not copied."""


def clip(text: str, limit: int = _CLIP) -> str:
    """`text` cut to `limit` characters, saying how many were left out.

    >>> clip("x" * 500, 10)
    'xxxxxxxxxx… (490 more characters)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def shown(value: Any, limit: int = _CLIP) -> str:
    """A short, safe ``repr`` of a client value for an error message.

    Never fails: an integer too long for ``repr`` (Python refuses 4,300+ digits) is described by
    its size, and long text is clipped.
    """
    if type(value) is int and value.bit_length() > 256:
        return f"<an integer of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception:  # a hostile object's __repr__, a huge int inside a container...
        return f"<a {type(value).__name__}>"
    return clip(text, limit)


def text_problem(text: str) -> str | None:
    """Why PostgreSQL cannot store `text` (None when it can): a NUL character, or a lone
    surrogate (not encodable as UTF-8)."""
    if "\x00" in text:
        return "text cannot contain the NUL character (\\u0000)"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            return f"text is not valid Unicode (lone surrogate at position {exc.start})"
    return None


# "\u0000" in JSON text, not preceded by an escaping backslash (an odd run of backslashes).
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def json_text_problem(text: str) -> str | None:
    """Why PostgreSQL's jsonb would refuse this JSON text (None when it would not): jsonb cannot
    hold the NUL character, escaped or not."""
    if "\\u0000" in text and _JSON_NUL.search(text):
        return "jsonb cannot contain the NUL character (\\u0000) in a string"
    return None


NumericBounds = tuple[Decimal, int] | None
"""(exclusive upper bound of the absolute value, scale) of a ``numeric(p, s)`` column."""

_NUMERIC = re.compile(r"\s*(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?\)\s*", re.I)


def numeric_bounds(sql_type: str) -> NumericBounds:
    """The limits of a ``numeric(p, s)`` type; None for unconstrained ``numeric``.

    >>> numeric_bounds("numeric(19, 4)")
    (Decimal('1E+15'), 4)
    """
    match = _NUMERIC.fullmatch(sql_type)
    if match is None:
        return None
    precision, scale = int(match.group(1)), int(match.group(2) or 0)
    return Decimal(1).scaleb(precision - scale), scale


def decimal_problem(value: Decimal, bounds: NumericBounds) -> str | None:
    """Why `value` does not fit a numeric column (None when it does): NaN or Infinity (never
    accepted: ``NaN`` passes every ``CHECK (x >= 0)`` and poisons ``sum()``), more digits than
    ``numeric(p, s)`` holds, or more decimal places than its scale (PostgreSQL would round)."""
    if not value.is_finite():
        return f"{value} is not a finite number"
    if bounds is None:
        return None
    limit, scale = bounds
    if abs(value) >= limit:
        return f"{shown(value)} is out of range for this column (|value| < {limit:f})"
    _, digits, exponent = value.as_tuple()
    excess = -int(exponent) - scale  # fractional digits beyond the scale
    if excess > 0 and any(digits[-excess:]):
        return f"{shown(value)} has more than {scale} decimal places"
    return None


def decimals_fit(values: list[Decimal], bounds: NumericBounds) -> bool:
    """Whether every value fits (see `decimal_problem`), checked a column at a time in C
    (``map`` over Decimal's own methods): the common all-good case costs a fraction of a call
    per value. False means some value does not: `decimal_problem` says which and why."""
    if not all(map(Decimal.is_finite, values)):
        return False
    if bounds is None or not values:
        return True
    limit, scale = bounds
    if max(map(abs, values)) >= limit:
        return False
    step = _STEPS.get(scale) or _STEPS.setdefault(scale, Decimal(1).scaleb(-scale))
    # quantize rounds to the scale: a value with more decimal places comes back different
    try:
        return list(map(Decimal.quantize, values, [step] * len(values))) == values
    except InvalidOperation:  # more digits than the context's precision: ask value by value
        return False


_STEPS: dict[int, Decimal] = {}
