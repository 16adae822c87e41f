"""Keyset pagination: opaque cursors and pages.

`Repository.find_page` returns a `Page`: its rows, the cursor of the next page (None on the
last one) and, when asked, the total. The next request passes the cursor back as the filter's
``after``::

    page = orders.find_page({"where": {"status": "placed"}, "order": ["created_at DESC"],
                             "limit": 20})
    more = orders.find_page({"where": {"status": "placed"}, "order": ["created_at DESC"],
                             "limit": 20, "after": page.next})

The cursor holds the order and the values of the last row's order keys (the primary key is
added to the order, so keys are unique). It compiles to a row comparison, ``(created_at, id) <
(%s, %s)``, that an index on the order's columns serves: page 2,500 costs what page 1 does,
where ``offset`` reads and throws away every row before it. A cursor is not signed: a client
can forge one, and gets exactly what a filter on those values would give it (its values pass
the same checks as filter values).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import msgspec

from .errors import FilterError

__all__ = ["Page", "decode_cursor", "encode_cursor"]

T = TypeVar("T")

# Characters of a cursor's text: keys, never a payload (a filter's JSON is capped at 64 KiB, and
# a client policy's max_string lets a text key reach 10,000 characters).
_MAX_CURSOR = 65_536


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of rows: ``items``; ``next``, the cursor of the following page (None when
    this is the last); ``total``, the rows the where clause matches (exact or estimated, when
    `find_page` was asked for it)."""

    items: list[T]
    next: str | None = None
    total: int | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(tuple[list[str], list[Any]])


def _order_text(order: Sequence[Any]) -> list[str]:
    """The order as the cursor records it: keys the library added (tuples) as ``"id ASC"``."""
    return [o if isinstance(o, str) else " ".join(o) for o in order]


def encode_cursor(order: Sequence[Any], values: Sequence[Any]) -> str:
    """The cursor after a row whose order keys hold `values`."""
    raw = _encoder.encode([_order_text(order), [_special(value) for value in values]])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: Any, order: Sequence[Any], table: str) -> list[Any]:
    """The values of a cursor made for `order`; `FilterError` (part ``after``) for a
    cursor that is malformed or was made for another order."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR:
        raise FilterError("after takes the cursor of a previous page", table=table, part="after")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, values = _decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise FilterError("after is not a cursor of this API", table=table, part="after") from None
    if made_for != _order_text(order) or len(values) != len(order):
        raise FilterError(
            "the cursor was made for another order: pass the same order as the page it came from",
            table=table,
            part="after",
        )
    return [_unspecial(value) for value in values]


# JSON has no NaN or infinities (msgspec writes null): a float key holding one is written as
# {"float": "nan"} and read back as that float.
def _special(value: Any) -> Any:
    if type(value) is float and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def _unspecial(value: Any) -> Any:
    if type(value) is dict and len(value) == 1 and value.get("float") in ("nan", "inf", "-inf"):
        return float(value["float"])
    return value
