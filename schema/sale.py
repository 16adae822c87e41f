"""The ``sale`` schema: sale orders and their items, payments, history, checks, kitchen tickets.

Orders, their items and payments are isolated per merchant for the `tenant` role by row-level
security: a request that runs as ``app_tenant`` with ``app.merchant_id`` set sees and writes its
merchant's rows only (``db.transaction(settings={"role": "app_tenant", "app.merchant_id": id})``).
The `order_total` view sums an order's items and captured payments.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from nxdata import (
    Check,
    Column,
    CommonColumns,
    ForeignKey,
    Grant,
    Index,
    Money,
    Policy,
    Role,
    Schema,
    compose,
    id_columns,
    live_unique,
    timestamp_columns,
)

from .allocation import EventSeat
from .inventory import StockLocation
from .pricing import Fare, PriceEvaluation
from .public import Device, Merchant, Product, ProductVariant, SaleChannel, User

sale = Schema("sale")

tenant = Role("app_tenant")
"""The role a merchant's requests run as (NOLOGIN: the application's login role switches to it)."""

MERCHANT_OF_SESSION = "merchant_id = current_setting('app.merchant_id', true)"
"""Rows of the merchant the transaction set (no setting: no rows)."""

OF_VISIBLE_ORDER = 'sale_order_id IN (SELECT id FROM sale."SaleOrder")'
"""Rows of an order the session may see: the order's own policy decides."""

Quantity = Annotated[Decimal, Column(sql_type="numeric(19, 4)")]
"""A sold quantity (fractional for goods sold by weight)."""


class OrderStatus(enum.StrEnum):
    """Lifecycle of a sale order."""

    draft = "draft"
    placed = "placed"
    paid = "paid"
    fulfilled = "fulfilled"
    cancelled = "cancelled"
    refunded = "refunded"


class PaymentMethod(enum.StrEnum):
    """How an order was paid."""

    cash = "cash"
    card = "card"
    wallet = "wallet"
    bank_transfer = "bank_transfer"
    voucher = "voucher"


class PaymentStatus(enum.StrEnum):
    """Lifecycle of one payment."""

    pending = "pending"
    authorized = "authorized"
    captured = "captured"
    failed = "failed"
    refunded = "refunded"


class TicketStatus(enum.StrEnum):
    """Lifecycle of a kitchen ticket or item."""

    queued = "queued"
    preparing = "preparing"
    ready = "ready"
    served = "served"
    voided = "voided"


class CheckStatus(enum.StrEnum):
    """Lifecycle of a restaurant check."""

    open = "open"
    closed = "closed"
    voided = "voided"


class Customer(msgspec.Struct, kw_only=True):
    """The buyer as captured on the order (stored as jsonb)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    tax_code: str | None = None


class Modifier(msgspec.Struct, kw_only=True):
    """A modifier of an order line (extra cheese, no ice), stored as a jsonb list."""

    code: str
    name: str
    price: Decimal = Decimal("0")


@sale.table(
    "DiningTable",
    indexes=[live_unique("merchant_id", "code")],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
    checks=[Check("seats > 0", name="CK_DiningTable_seats")],
)
class DiningTable(CommonColumns):
    """A table of a restaurant floor that checks are opened on."""

    merchant_id: str
    code: str
    area: str | None = None
    seats: int = 4
    is_active: bool = True


@sale.table(
    "SaleOrder",
    indexes=[
        live_unique("merchant_id", "number"),
        Index("status"),
        Index("merchant_id", "created_at"),
        Index("customer_id"),
        Index("sale_channel_id"),
        Index("placed_at", name="IDX_SaleOrder_unpaid_placed_at", where="status = 'placed'"),
    ],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="restrict"),
        ForeignKey("sale_channel_id", SaleChannel, on_delete="set null"),
        ForeignKey("device_id", Device, on_delete="set null"),
        ForeignKey("customer_id", User, on_delete="set null"),
        ForeignKey("cashier_id", User, on_delete="set null"),
        ForeignKey("price_evaluation_id", PriceEvaluation, on_delete="set null"),
        ForeignKey("fulfillment_location_id", StockLocation, on_delete="set null"),
    ],
    checks=[
        Check(
            "subtotal >= 0 AND tax_total >= 0 AND discount_total >= 0", name="CK_SaleOrder_amounts"
        ),
        Check("total >= 0", name="CK_SaleOrder_total"),
    ],
    row_level_security=True,
    policies=[Policy("merchant_isolation", to=tenant, using=MERCHANT_OF_SESSION)],
    grants=[Grant("select, insert, update", to=tenant)],
)
class SaleOrder(CommonColumns):
    """An order: what was sold, to whom, through which channel, for how much."""

    merchant_id: str
    number: str
    sale_channel_id: str | None = None
    device_id: str | None = None
    customer_id: str | None = None
    cashier_id: str | None = None
    price_evaluation_id: str | None = None
    fulfillment_location_id: str | None = None
    status: OrderStatus = OrderStatus.draft
    currency: str = "USD"
    subtotal: Money = Decimal("0")
    discount_total: Money = Decimal("0")
    tax_total: Money = Decimal("0")
    total: Money = Decimal("0")
    customer: Customer | None = None
    note: str | None = None
    placed_at: datetime | None = None
    paid_at: datetime | None = None


@sale.table(
    "SaleOrderItem",
    indexes=[
        Index("sale_order_id"),
        Index("product_id"),
        live_unique("event_seat_id"),
    ],
    foreign_keys=[
        ForeignKey("sale_order_id", SaleOrder, on_delete="cascade"),
        ForeignKey("product_id", Product, on_delete="restrict"),
        ForeignKey("variant_id", ProductVariant, on_delete="restrict"),
        ForeignKey("fare_id", Fare, on_delete="set null"),
        ForeignKey("event_seat_id", EventSeat, on_delete="set null"),
    ],
    checks=[
        Check("quantity > 0", name="CK_SaleOrderItem_quantity"),
        Check("unit_price >= 0", name="CK_SaleOrderItem_unit_price"),
    ],
    row_level_security=True,
    policies=[Policy("merchant_isolation", to=tenant, using=OF_VISIBLE_ORDER)],
    grants=[Grant("select, insert, update", to=tenant)],
)
class SaleOrderItem(CommonColumns):
    """One line of an order: a product (variant) at a unit price, possibly a seat."""

    sale_order_id: str
    product_id: str
    name: str
    unit_price: Money
    variant_id: str | None = None
    fare_id: str | None = None
    event_seat_id: str | None = None
    quantity: Quantity = Decimal("1")
    discount_amount: Money = Decimal("0")
    tax_amount: Money = Decimal("0")
    line_total: Money = Decimal("0")
    modifiers: list[Modifier] | None = None


@sale.table(
    "SaleOrderPayment",
    indexes=[
        Index("sale_order_id"),
        live_unique("provider", "provider_reference"),
        Index("status"),
    ],
    foreign_keys=[ForeignKey("sale_order_id", SaleOrder, on_delete="cascade")],
    checks=[Check("amount > 0", name="CK_SaleOrderPayment_amount")],
    row_level_security=True,
    policies=[Policy("merchant_isolation", to=tenant, using=OF_VISIBLE_ORDER)],
    grants=[Grant("select", to=tenant)],
)
class SaleOrderPayment(CommonColumns):
    """A payment towards an order (an order may be split across several)."""

    sale_order_id: str
    method: PaymentMethod
    amount: Money
    status: PaymentStatus = PaymentStatus.pending
    currency: str = "USD"
    provider: str | None = None
    provider_reference: str | None = None
    captured_at: datetime | None = None


@sale.table(
    "SaleOrderHistory",
    indexes=[Index("sale_order_id", "created_at")],
    foreign_keys=[
        ForeignKey("sale_order_id", SaleOrder, on_delete="cascade"),
        ForeignKey("changed_by", User, on_delete="set null"),
    ],
)
class SaleOrderHistory(compose(id_columns("bigint"), timestamp_columns(soft_delete=False))):
    """An append-only log of an order's status changes."""

    sale_order_id: str
    to_status: OrderStatus
    from_status: OrderStatus | None = None
    changed_by: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None


@sale.table(
    "SaleCheck",
    indexes=[
        Index("dining_table_id", name="IDX_SaleCheck_open_table", where="status = 'open'"),
        Index("sale_order_id"),
        live_unique("merchant_id", "number"),
    ],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="restrict"),
        ForeignKey("dining_table_id", DiningTable, on_delete="set null"),
        ForeignKey("sale_order_id", SaleOrder, on_delete="set null"),
        ForeignKey("opened_by", User, on_delete="set null"),
    ],
    checks=[Check("guests > 0", name="CK_SaleCheck_guests")],
)
class SaleCheck(CommonColumns):
    """A restaurant check (a tab) opened on a table; settled into a sale order when closed."""

    merchant_id: str
    number: str
    dining_table_id: str | None = None
    sale_order_id: str | None = None
    opened_by: str | None = None
    status: CheckStatus = CheckStatus.open
    guests: int = 1
    closed_at: datetime | None = None


@sale.table(
    "SaleCheckItem",
    indexes=[Index("check_id"), Index("sale_order_item_id")],
    foreign_keys=[
        ForeignKey("check_id", SaleCheck, on_delete="cascade"),
        ForeignKey("product_id", Product, on_delete="restrict"),
        ForeignKey("variant_id", ProductVariant, on_delete="restrict"),
        ForeignKey("sale_order_item_id", SaleOrderItem, on_delete="set null"),
    ],
    checks=[Check("quantity > 0", name="CK_SaleCheckItem_quantity")],
)
class SaleCheckItem(CommonColumns):
    """A line put on a check (later copied to the order)."""

    check_id: str
    product_id: str
    unit_price: Money
    variant_id: str | None = None
    sale_order_item_id: str | None = None
    quantity: Quantity = Decimal("1")
    seat_number: int | None = None
    modifiers: list[Modifier] | None = None


@sale.table(
    "KitchenTicket",
    indexes=[
        Index("merchant_id", "status"),
        Index(
            "station",
            "created_at",
            name="IDX_KitchenTicket_live_station",
            where="status IN ('queued', 'preparing')",
        ),
        Index("check_id"),
    ],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("check_id", SaleCheck, on_delete="cascade"),
        ForeignKey("sale_order_id", SaleOrder, on_delete="cascade"),
        ForeignKey("device_id", Device, on_delete="set null"),
    ],
)
class KitchenTicket(CommonColumns):
    """A ticket sent to a kitchen station (from a check or an order)."""

    merchant_id: str
    number: int
    check_id: str | None = None
    sale_order_id: str | None = None
    device_id: str | None = None
    station: str = "kitchen"
    status: TicketStatus = TicketStatus.queued
    fired_at: datetime | None = None
    ready_at: datetime | None = None


@sale.table(
    "KitchenTicketItem",
    indexes=[Index("ticket_id")],
    foreign_keys=[
        ForeignKey("ticket_id", KitchenTicket, on_delete="cascade"),
        ForeignKey("check_item_id", SaleCheckItem, on_delete="set null"),
        ForeignKey("order_item_id", SaleOrderItem, on_delete="set null"),
    ],
    checks=[Check("quantity > 0", name="CK_KitchenTicketItem_quantity")],
)
class KitchenTicketItem(CommonColumns):
    """One dish on a kitchen ticket."""

    ticket_id: str
    name: str
    check_item_id: str | None = None
    order_item_id: str | None = None
    quantity: int = 1
    status: TicketStatus = TicketStatus.queued
    note: str | None = None
    modifiers: list[Modifier] | None = None


order_total = sale.view(
    "OrderTotal",
    """
SELECT o.id AS sale_order_id, o.merchant_id, o.number, o.status, o.total,
       coalesce(i.items, 0) AS items,
       coalesce(i.lines_total, 0)::numeric(19, 4) AS lines_total,
       coalesce(p.paid, 0)::numeric(19, 4) AS paid,
       (o.total - coalesce(p.paid, 0))::numeric(19, 4) AS due
  FROM sale."SaleOrder" o
  LEFT JOIN (SELECT sale_order_id, count(*) AS items, sum(line_total) AS lines_total
               FROM sale."SaleOrderItem" WHERE deleted_at IS NULL GROUP BY sale_order_id) i
         ON i.sale_order_id = o.id
  LEFT JOIN (SELECT sale_order_id, sum(amount) AS paid
               FROM sale."SaleOrderPayment" WHERE deleted_at IS NULL AND status = 'captured'
              GROUP BY sale_order_id) p
         ON p.sale_order_id = o.id
 WHERE o.deleted_at IS NULL
""",
    comment="Each live order with its item count, line total, captured payments and amount due.",
    # The caller's privileges and row-level security apply: a tenant sees its own orders only.
    security_invoker=True,
)

sale.grant("usage", to=tenant)
sale.grant("select", on=order_total, to=tenant)
