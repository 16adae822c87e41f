"""The ``inventory`` schema: warehouses, stock locations and items, purchasing, stock movements."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from nxdata import (
    Check,
    Column,
    CommonColumns,
    ForeignKey,
    Index,
    Money,
    Schema,
    Unique,
    compose,
    id_columns,
    live_unique,
    timestamp_columns,
)

from .public import Address, Merchant, Product, ProductVariant, User

inventory = Schema("inventory")

Quantity = Annotated[Decimal, Column(sql_type="numeric(19, 4)")]
"""A stock quantity (fractional for goods sold by weight or volume)."""


class LocationKind(enum.StrEnum):
    """What a stock location is."""

    shelf = "shelf"
    bin = "bin"
    storage = "storage"
    display = "display"
    transit = "transit"
    scrap = "scrap"


class MovementKind(enum.StrEnum):
    """Why stock moved."""

    receipt = "receipt"
    sale = "sale"
    transfer = "transfer"
    adjustment = "adjustment"
    return_ = "return"
    scrap = "scrap"


class PurchaseOrderStatus(enum.StrEnum):
    """Lifecycle of a purchase order."""

    draft = "draft"
    ordered = "ordered"
    partially_received = "partially_received"
    received = "received"
    cancelled = "cancelled"


class CountStatus(enum.StrEnum):
    """Lifecycle of a stock count."""

    open = "open"
    counting = "counting"
    reconciled = "reconciled"


@inventory.table(
    "Warehouse",
    indexes=[live_unique("merchant_id", "code")],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
)
class Warehouse(CommonColumns):
    """A site holding stock (a store's back room, a central warehouse)."""

    merchant_id: str
    code: str
    name: str
    address: Address | None = None
    is_active: bool = True


@inventory.table(
    "StockLocation",
    indexes=[live_unique("warehouse_id", "code"), Index("parent_id")],
    foreign_keys=[
        ForeignKey("warehouse_id", Warehouse, on_delete="cascade"),
        ForeignKey("parent_id", "StockLocation", on_delete="set null"),
    ],
)
class StockLocation(CommonColumns):
    """A place in a warehouse (aisle, shelf, bin); locations nest through ``parent_id``."""

    warehouse_id: str
    code: str
    name: str
    parent_id: str | None
    kind: LocationKind = LocationKind.shelf
    is_sellable: bool = True


@inventory.table(
    "Supplier",
    indexes=[live_unique("merchant_id", "code")],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
)
class Supplier(CommonColumns):
    """A vendor the merchant buys stock from."""

    merchant_id: str
    code: str
    name: str
    email: str | None = None
    phone: str | None = None
    address: Address | None = None
    payment_terms_days: int = 30


@inventory.table(
    "StockItem",
    indexes=[
        live_unique("location_id", "variant_id"),
        Index("product_id"),
        Index("variant_id"),
        Index("location_id", name="IDX_StockItem_low_stock", where="on_hand <= reorder_point"),
    ],
    foreign_keys=[
        ForeignKey("location_id", StockLocation, on_delete="cascade"),
        ForeignKey("product_id", Product, on_delete="cascade"),
        ForeignKey("variant_id", ProductVariant, on_delete="cascade"),
    ],
    checks=[
        Check("reserved >= 0", name="CK_StockItem_reserved"),
        Check("reserved <= on_hand", name="CK_StockItem_reserved_on_hand"),
    ],
)
class StockItem(CommonColumns):
    """How much of a variant a location holds, reserved and on hand."""

    location_id: str
    product_id: str
    variant_id: str
    on_hand: Quantity = Decimal("0")
    reserved: Quantity = Decimal("0")
    reorder_point: Quantity = Decimal("0")


@inventory.table(
    "StockLot",
    indexes=[live_unique("stock_item_id", "lot_number"), Index("expires_on")],
    foreign_keys=[ForeignKey("stock_item_id", StockItem, on_delete="cascade")],
    checks=[Check("quantity >= 0", name="CK_StockLot_quantity")],
)
class StockLot(CommonColumns):
    """A batch of a stock item with its own expiry (food, medicine)."""

    stock_item_id: str
    lot_number: str
    quantity: Quantity
    expires_on: date | None = None


@inventory.table(
    "PurchaseOrder",
    indexes=[
        live_unique("merchant_id", "number"),
        Index("supplier_id"),
        Index("status"),
        Index(
            "expected_at",
            name="IDX_PurchaseOrder_open_expected_at",
            where="status IN ('ordered', 'partially_received')",
        ),
    ],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("supplier_id", Supplier, on_delete="restrict"),
        ForeignKey("warehouse_id", Warehouse, on_delete="restrict"),
        ForeignKey("created_by", User, on_delete="set null"),
    ],
    checks=[Check("total >= 0", name="CK_PurchaseOrder_total")],
)
class PurchaseOrder(CommonColumns):
    """An order of stock from a supplier, delivered to a warehouse."""

    merchant_id: str
    supplier_id: str
    warehouse_id: str
    number: str
    created_by: str | None
    status: PurchaseOrderStatus = PurchaseOrderStatus.draft
    currency: str = "USD"
    total: Money = Decimal("0")
    ordered_at: datetime | None = None
    expected_at: datetime | None = None
    note: str | None = None


@inventory.table(
    "PurchaseOrderItem",
    indexes=[Index("purchase_order_id"), Index("variant_id")],
    foreign_keys=[
        ForeignKey("purchase_order_id", PurchaseOrder, on_delete="cascade"),
        ForeignKey("variant_id", ProductVariant, on_delete="restrict"),
    ],
    checks=[
        Check("quantity > 0", name="CK_PurchaseOrderItem_quantity"),
        Check("received_quantity >= 0", name="CK_PurchaseOrderItem_received_quantity"),
        Check("unit_cost >= 0", name="CK_PurchaseOrderItem_unit_cost"),
    ],
)
class PurchaseOrderItem(CommonColumns):
    """One line of a purchase order."""

    purchase_order_id: str
    variant_id: str
    quantity: Quantity
    unit_cost: Money
    received_quantity: Quantity = Decimal("0")


@inventory.table(
    "GoodsReceipt",
    indexes=[live_unique("purchase_order_id", "number")],
    foreign_keys=[
        ForeignKey("purchase_order_id", PurchaseOrder, on_delete="cascade"),
        ForeignKey("received_by", User, on_delete="set null"),
    ],
)
class GoodsReceipt(CommonColumns):
    """A delivery received against a purchase order."""

    purchase_order_id: str
    number: str
    received_by: str | None
    received_at: Annotated[datetime, Column(server_default="now()")]
    note: str | None = None


@inventory.table(
    "GoodsReceiptItem",
    indexes=[Index("goods_receipt_id"), Index("purchase_order_item_id")],
    foreign_keys=[
        ForeignKey("goods_receipt_id", GoodsReceipt, on_delete="cascade"),
        ForeignKey("purchase_order_item_id", PurchaseOrderItem, on_delete="cascade"),
        ForeignKey("location_id", StockLocation, on_delete="restrict"),
    ],
    checks=[Check("quantity > 0", name="CK_GoodsReceiptItem_quantity")],
)
class GoodsReceiptItem(CommonColumns):
    """A received quantity of one purchase order line, put away at a location."""

    goods_receipt_id: str
    purchase_order_item_id: str
    location_id: str
    quantity: Quantity
    lot_number: str | None = None


@inventory.table(
    "StockMovement",
    indexes=[
        Index("stock_item_id", "created_at"),
        Index("kind"),
        Index("reference_type", "reference_id", where="reference_id IS NOT NULL"),
    ],
    foreign_keys=[
        ForeignKey("stock_item_id", StockItem, on_delete="cascade"),
        ForeignKey("to_location_id", StockLocation, on_delete="set null"),
        ForeignKey("performed_by", User, on_delete="set null"),
    ],
    checks=[Check("quantity <> 0", name="CK_StockMovement_quantity")],
)
class StockMovement(compose(id_columns("uuid7"), timestamp_columns(soft_delete=False))):
    """An append-only record of stock going in or out (signed quantity), with what caused it."""

    stock_item_id: str
    kind: MovementKind
    quantity: Quantity
    to_location_id: str | None = None
    performed_by: str | None = None
    reference_type: str | None = None
    reference_id: str | None = None
    note: str | None = None


@inventory.table(
    "StockCount",
    indexes=[Index("warehouse_id", "status")],
    foreign_keys=[
        ForeignKey("warehouse_id", Warehouse, on_delete="cascade"),
        ForeignKey("counted_by", User, on_delete="set null"),
    ],
)
class StockCount(CommonColumns):
    """A physical inventory count of a warehouse and its per-item results (jsonb)."""

    warehouse_id: str
    counted_by: str | None
    status: CountStatus = CountStatus.open
    started_at: datetime | None = None
    finished_at: datetime | None = None
    results: dict[str, Any] | None = None


@inventory.table(
    "StockReservation",
    uniques=[Unique("reference_type", "reference_id", "stock_item_id")],
    indexes=[Index("stock_item_id"), Index("expires_at")],
    foreign_keys=[ForeignKey("stock_item_id", StockItem, on_delete="cascade")],
    checks=[Check("quantity > 0", name="CK_StockReservation_quantity")],
)
class StockReservation(CommonColumns):
    """Stock held for an open order or cart until it is sold or the hold expires."""

    stock_item_id: str
    quantity: Quantity
    reference_type: str
    reference_id: str
    expires_at: datetime | None = None
