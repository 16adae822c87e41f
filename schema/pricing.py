"""The ``pricing`` schema: taxes, fares and their rules, costs, discounts and price evaluations."""

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
    Index,
    Money,
    Schema,
    live_unique,
)

from .public import Merchant, Product, ProductVariant, SaleChannel

pricing = Schema("pricing")

Rate = Annotated[Decimal, Column(sql_type="numeric(9, 6)")]
"""A rate as a fraction (0.0825 = 8.25 %)."""
Quantity = Annotated[Decimal, Column(sql_type="numeric(19, 4)")]
"""A quantity that may be fractional (kilograms, hours)."""


class FareStatus(enum.StrEnum):
    """Whether a fare may be used to price a sale."""

    draft = "draft"
    active = "active"
    archived = "archived"


class FareRuleKind(enum.StrEnum):
    """What a fare rule looks at."""

    time_window = "time_window"
    quantity = "quantity"
    customer_group = "customer_group"
    channel = "channel"


class AdjustmentKind(enum.StrEnum):
    """How a rule or discount changes a price."""

    percent = "percent"
    fixed = "fixed"
    override = "override"


class RuleCondition(msgspec.Struct, kw_only=True):
    """The condition of a fare rule (stored as jsonb)."""

    weekdays: list[int] | None = None
    from_time: str | None = None
    to_time: str | None = None
    min_quantity: int | None = None
    customer_groups: list[str] | None = None
    channel_codes: list[str] | None = None


@pricing.table(
    "TaxCategory",
    indexes=[live_unique("merchant_id", "code")],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
)
class TaxCategory(CommonColumns):
    """A family of taxes (VAT, service charge, city tax)."""

    merchant_id: str
    code: str
    name: str


@pricing.table(
    "Tax",
    indexes=[live_unique("merchant_id", "code"), Index("tax_category_id")],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("tax_category_id", TaxCategory, on_delete="restrict"),
    ],
    checks=[
        Check("rate >= 0 AND rate <= 1", name="CK_Tax_rate"),
        Check("valid_to IS NULL OR valid_to > valid_from", name="CK_Tax_validity"),
    ],
)
class Tax(CommonColumns):
    """A tax rate applied to fares, valid over a period."""

    merchant_id: str
    tax_category_id: str
    code: str
    name: str
    rate: Rate
    valid_from: Annotated[datetime, Column(server_default="now()")]
    valid_to: datetime | None = None
    is_inclusive: bool = False


@pricing.table(
    "Fare",
    indexes=[
        live_unique("merchant_id", "code"),
        Index("product_id"),
        Index("variant_id"),
        Index("sale_channel_id"),
        Index("status"),
        Index(
            "product_id", "valid_from", name="IDX_Fare_active_product", where="status = 'active'"
        ),
    ],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("product_id", Product, on_delete="cascade"),
        ForeignKey("variant_id", ProductVariant, on_delete="cascade"),
        ForeignKey("sale_channel_id", SaleChannel, on_delete="set null"),
    ],
    checks=[Check("amount >= 0", name="CK_Fare_amount")],
)
class Fare(CommonColumns):
    """The base price of a product (or variant) on a channel over a period."""

    merchant_id: str
    product_id: str
    variant_id: str | None
    sale_channel_id: str | None
    code: str
    name: str
    amount: Money
    currency: str = "USD"
    status: FareStatus = FareStatus.draft
    valid_from: datetime | None = None
    valid_to: datetime | None = None


@pricing.table(
    "FareRule",
    indexes=[Index("fare_id", "priority"), Index("kind")],
    foreign_keys=[ForeignKey("fare_id", Fare, on_delete="cascade")],
)
class FareRule(CommonColumns):
    """A conditional adjustment of a fare (happy hour, group rate, web-only price)."""

    fare_id: str
    name: str
    kind: FareRuleKind
    adjustment: AdjustmentKind
    value: Money
    condition: RuleCondition
    priority: int = 100
    is_active: bool = True


@pricing.table(
    "FareTax",
    indexes=[live_unique("fare_id", "tax_id"), Index("tax_id")],
    foreign_keys=[
        ForeignKey("fare_id", Fare, on_delete="cascade"),
        ForeignKey("tax_id", Tax, on_delete="restrict"),
    ],
)
class FareTax(CommonColumns):
    """A tax that applies to a fare."""

    fare_id: str
    tax_id: str
    position: int = 0


@pricing.table(
    "Cost",
    indexes=[Index("product_id", "valid_from"), Index("variant_id")],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("product_id", Product, on_delete="cascade"),
        ForeignKey("variant_id", ProductVariant, on_delete="cascade"),
    ],
    checks=[Check("amount >= 0", name="CK_Cost_amount")],
)
class Cost(CommonColumns):
    """What a product costs the merchant (for margins), valid from a date."""

    merchant_id: str
    product_id: str
    variant_id: str | None
    amount: Money
    valid_from: Annotated[datetime, Column(server_default="now()")]
    currency: str = "USD"


@pricing.table(
    "CostComponent",
    indexes=[Index("cost_id")],
    foreign_keys=[ForeignKey("cost_id", Cost, on_delete="cascade")],
    checks=[Check("amount >= 0", name="CK_CostComponent_amount")],
)
class CostComponent(CommonColumns):
    """One part of a cost (material, labour, royalty)."""

    cost_id: str
    name: str
    amount: Money


@pricing.table(
    "Discount",
    indexes=[
        live_unique("merchant_id", "code"),
        Index("ends_at", where="is_active"),
    ],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
    checks=[
        Check("value >= 0", name="CK_Discount_value"),
        Check("max_uses IS NULL OR used_count <= max_uses", name="CK_Discount_uses"),
    ],
)
class Discount(CommonColumns):
    """A promotion code or automatic discount."""

    merchant_id: str
    code: str
    name: str
    adjustment: AdjustmentKind
    value: Money
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    max_uses: int | None = None
    used_count: int = 0
    is_active: bool = True


@pricing.table(
    "PriceEvaluation",
    indexes=[Index("merchant_id", "created_at"), Index("request_key")],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("sale_channel_id", SaleChannel, on_delete="set null"),
        ForeignKey("discount_id", Discount, on_delete="set null"),
    ],
    checks=[Check("total >= 0", name="CK_PriceEvaluation_total")],
)
class PriceEvaluation(CommonColumns):
    """The result of pricing a basket: totals and the input it was computed from."""

    merchant_id: str
    sale_channel_id: str | None
    discount_id: str | None
    request_key: str
    subtotal: Money
    discount_total: Money
    tax_total: Money
    total: Money
    currency: str = "USD"
    request: dict[str, Any] | None = None


@pricing.table(
    "PriceEvaluationItem",
    indexes=[Index("price_evaluation_id"), Index("fare_id")],
    foreign_keys=[
        ForeignKey("price_evaluation_id", PriceEvaluation, on_delete="cascade"),
        ForeignKey("product_id", Product, on_delete="cascade"),
        ForeignKey("variant_id", ProductVariant, on_delete="set null"),
        ForeignKey("fare_id", Fare, on_delete="set null"),
    ],
    checks=[Check("quantity > 0", name="CK_PriceEvaluationItem_quantity")],
)
class PriceEvaluationItem(CommonColumns):
    """One priced line of an evaluation: which fare, rules and taxes made its price."""

    price_evaluation_id: str
    product_id: str
    variant_id: str | None
    fare_id: str | None
    quantity: Quantity
    unit_price: Money
    discount_amount: Money
    tax_amount: Money
    line_total: Money
    applied_rules: list[str] | None = None


@pricing.table(
    "PriceEvaluationTax",
    indexes=[Index("item_id"), Index("tax_id")],
    foreign_keys=[
        ForeignKey("item_id", PriceEvaluationItem, on_delete="cascade"),
        ForeignKey("tax_id", Tax, on_delete="restrict"),
    ],
)
class PriceEvaluationTax(CommonColumns):
    """A tax charged on one evaluated line."""

    item_id: str
    tax_id: str
    rate: Rate
    taxable_amount: Money
    amount: Money
