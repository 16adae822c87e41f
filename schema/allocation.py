"""The ``allocation`` schema: venues, their seating layouts and seats allocated per event."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec

from nxdata import (
    Check,
    Column,
    CommonColumns,
    ForeignKey,
    Index,
    Schema,
    live_unique,
)

from .public import Address, Merchant, Organizer, Product

allocation = Schema("allocation")


class SeatStatus(enum.StrEnum):
    """Where a seat of an event stands."""

    available = "available"
    held = "held"
    sold = "sold"
    blocked = "blocked"


class Section(msgspec.Struct, kw_only=True):
    """A section of a layout drawing (stored as jsonb)."""

    code: str
    name: str
    rows: int
    seats_per_row: int
    color: str | None = None


@allocation.table(
    "Venue",
    indexes=[live_unique("merchant_id", "code"), Index("organizer_id")],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("organizer_id", Organizer, on_delete="set null"),
    ],
    checks=[Check("capacity >= 0", name="CK_Venue_capacity")],
)
class Venue(CommonColumns):
    """A place where events happen (a hall, a stadium, a theatre)."""

    merchant_id: str
    organizer_id: str | None
    code: str
    name: str
    capacity: int = 0
    address: Address | None = None


@allocation.table(
    "VenueLayout",
    indexes=[
        live_unique("venue_id", "name"),
        Index(
            "venue_id",
            name="UQ_VenueLayout_default_venue_id",
            unique=True,
            where="is_default AND deleted_at IS NULL",
        ),
    ],
    foreign_keys=[ForeignKey("venue_id", Venue, on_delete="cascade")],
)
class VenueLayout(CommonColumns):
    """A seating arrangement of a venue (a venue may have several: concert, theatre...)."""

    venue_id: str
    name: str
    sections: Annotated[list[Section], Column(server_default="'[]'::jsonb")] = msgspec.field(
        default_factory=list
    )
    is_default: bool = False


@allocation.table(
    "LayoutSeat",
    indexes=[live_unique("layout_id", "section", "row_label", "seat_number")],
    foreign_keys=[ForeignKey("layout_id", VenueLayout, on_delete="cascade")],
)
class LayoutSeat(CommonColumns):
    """One physical seat of a layout."""

    layout_id: str
    section: str
    row_label: str
    seat_number: int
    x: float | None = None
    y: float | None = None
    is_accessible: bool = False


@allocation.table(
    "EventSeat",
    indexes=[
        live_unique("event_id", "seat_id"),
        Index("event_id", "status"),
        Index("held_until", where="status = 'held'"),
    ],
    foreign_keys=[
        ForeignKey("event_id", Product, on_delete="cascade"),
        ForeignKey("seat_id", LayoutSeat, on_delete="cascade"),
    ],
)
class EventSeat(CommonColumns):
    """A seat of an event (a ``ticket`` product): available, held for a cart, or sold."""

    event_id: str
    seat_id: str
    status: SeatStatus = SeatStatus.available
    held_until: datetime | None = None
    hold_token: str | None = None
