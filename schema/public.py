"""The ``public`` schema: users, roles, permissions, merchants, organizers, catalogue, devices."""

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
    Unique,
    common_columns,
    live_unique,
)

public = Schema("public")

Tags = Annotated[list[str], Column(server_default="'{}'::text[]")]
"""A text array defaulting to empty (gin-indexed where searched)."""


class UserStatus(enum.StrEnum):
    """Lifecycle of a user account."""

    pending = "pending"
    active = "active"
    suspended = "suspended"
    closed = "closed"


class MerchantStatus(enum.StrEnum):
    """Lifecycle of a merchant."""

    onboarding = "onboarding"
    active = "active"
    suspended = "suspended"


class ProductKind(enum.StrEnum):
    """What a product sells: goods, a service, an event ticket or a subscription."""

    goods = "goods"
    service = "service"
    ticket = "ticket"
    subscription = "subscription"


class DeviceKind(enum.StrEnum):
    """Hardware registered to a merchant."""

    pos_terminal = "pos_terminal"
    kiosk = "kiosk"
    printer = "printer"
    scanner = "scanner"
    kitchen_display = "kitchen_display"


class ChannelKind(enum.StrEnum):
    """Where a sale happens."""

    pos = "pos"
    web = "web"
    mobile = "mobile"
    marketplace = "marketplace"
    box_office = "box_office"


class Address(msgspec.Struct, kw_only=True):
    """A postal address (stored as jsonb)."""

    line1: str
    city: str
    country: str
    line2: str | None = None
    postal_code: str | None = None
    region: str | None = None


class ProductMedia(msgspec.Struct, kw_only=True):
    """A picture or video of a product (stored as a jsonb list)."""

    url: str
    kind: str = "image"
    alt: str | None = None


# -- users, roles, permissions ---------------------------------------------------------------------


@public.table(
    "User",
    indexes=[live_unique("username"), Index("status")],
)
class User(CommonColumns):
    """A person who signs in: staff of a merchant or organizer, or a platform operator."""

    username: str
    display_name: str | None
    status: UserStatus = UserStatus.pending
    last_login_at: datetime | None = None
    locale: str = "en"


@public.table("Role", indexes=[live_unique("code")])
class Role(CommonColumns):
    """A named set of permissions (``owner``, ``cashier``, ...)."""

    code: str
    name: str
    description: str | None = None
    is_system: bool = False


@public.table("Permission", uniques=[Unique("code")], indexes=[Index("subject")])
class Permission(CommonColumns):
    """One permission code (``sale.order.create``); seeded by the permissions process."""

    code: str
    name: str
    subject: str
    action: str
    description: str | None = None


@public.table(
    "UserRole",
    indexes=[live_unique("user_id", "role_id"), Index("role_id")],
    foreign_keys=[
        ForeignKey("user_id", User, on_delete="cascade"),
        ForeignKey("role_id", Role, on_delete="cascade"),
    ],
)
class UserRole(CommonColumns):
    """A role granted to a user."""

    user_id: str
    role_id: str


@public.table(
    "RolePermission",
    indexes=[live_unique("role_id", "permission_id"), Index("permission_id")],
    foreign_keys=[
        ForeignKey("role_id", Role, on_delete="cascade"),
        ForeignKey("permission_id", Permission, on_delete="cascade"),
    ],
)
class RolePermission(CommonColumns):
    """A permission included in a role."""

    role_id: str
    permission_id: str


@public.table(
    "UserPermission",
    indexes=[live_unique("user_id", "permission_id"), Index("permission_id")],
    foreign_keys=[
        ForeignKey("user_id", User, on_delete="cascade"),
        ForeignKey("permission_id", Permission, on_delete="cascade"),
    ],
)
class UserPermission(CommonColumns):
    """A permission granted (or denied) to a user directly, overriding the roles."""

    user_id: str
    permission_id: str
    is_granted: bool = True


# -- merchants and organizers ----------------------------------------------------------------------


@public.table(
    "Merchant",
    indexes=[live_unique("code"), Index("status"), Index("owner_id")],
    foreign_keys=[ForeignKey("owner_id", User, on_delete="set null")],
)
class Merchant(CommonColumns):
    """A business selling on the platform (a shop, a restaurant, a venue)."""

    code: str
    name: str
    owner_id: str | None
    legal_name: str | None = None
    tax_code: str | None = None
    currency: str = "USD"
    timezone: str = "UTC"
    status: MerchantStatus = MerchantStatus.onboarding
    address: Address | None = None


@public.table(
    "MerchantUser",
    indexes=[live_unique("merchant_id", "user_id"), Index("user_id")],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("user_id", User, on_delete="cascade"),
        ForeignKey("role_id", Role, on_delete="set null"),
    ],
)
class MerchantUser(CommonColumns):
    """A user working for a merchant, with the role they hold there."""

    merchant_id: str
    user_id: str
    role_id: str | None
    is_active: bool = True


@public.table(
    "Organizer",
    indexes=[live_unique("merchant_id", "slug"), Index("merchant_id")],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
)
class Organizer(CommonColumns):
    """An event organizer selling tickets through a merchant."""

    merchant_id: str
    name: str
    slug: str
    contact_email: str | None = None
    contact_phone: str | None = None
    website: str | None = None


# -- catalogue -------------------------------------------------------------------------------------


@public.table(
    "Category",
    indexes=[live_unique("merchant_id", "code"), Index("parent_id")],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("parent_id", "Category", on_delete="set null"),
    ],
)
class Category(CommonColumns):
    """A product category; categories nest through ``parent_id``."""

    merchant_id: str
    code: str
    name: str
    parent_id: str | None
    position: int = 0


@public.table(
    "Product",
    indexes=[
        live_unique("merchant_id", "sku"),
        Index("category_id"),
        Index("organizer_id"),
        Index("kind"),
        Index("tags", method="gin"),
        Index("merchant_id", "kind", name="IDX_Product_active_merchant_kind", where="is_active"),
    ],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("category_id", Category, on_delete="set null"),
        ForeignKey("organizer_id", Organizer, on_delete="set null"),
    ],
    checks=[Check("base_price >= 0", name="CK_Product_base_price")],
)
class Product(CommonColumns):
    """Something a merchant sells; a ``ticket`` product is an event with seats."""

    merchant_id: str
    sku: str
    name: str
    category_id: str | None
    organizer_id: str | None
    kind: ProductKind = ProductKind.goods
    description: str | None = None
    base_price: Money = Decimal("0")
    is_active: bool = True
    tags: Tags = msgspec.field(default_factory=list)
    media: list[ProductMedia] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@public.table(
    "ProductVariant",
    indexes=[live_unique("product_id", "sku"), Index("barcode", where="barcode IS NOT NULL")],
    foreign_keys=[ForeignKey("product_id", Product, on_delete="cascade")],
)
class ProductVariant(CommonColumns):
    """A sellable variant of a product (size, colour, seating tier...)."""

    product_id: str
    sku: str
    name: str
    barcode: str | None
    price_delta: Money = Decimal("0")
    options: dict[str, str] | None = None
    is_active: bool = True
    position: int = 0


# -- devices, channels, configuration --------------------------------------------------------------


@public.table(
    "Device",
    indexes=[
        live_unique("serial_number"),
        Index("merchant_id"),
        Index("last_seen_at", where="deleted_at IS NULL"),
    ],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
)
class Device(CommonColumns):
    """A terminal, kiosk or printer registered to a merchant."""

    merchant_id: str
    serial_number: str
    name: str
    kind: DeviceKind = DeviceKind.pos_terminal
    firmware_version: str | None = None
    last_seen_at: datetime | None = None
    settings: dict[str, Any] | None = None


@public.table(
    "SaleChannel",
    indexes=[live_unique("merchant_id", "code"), Index("kind")],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
)
class SaleChannel(CommonColumns):
    """A channel a merchant sells through (a shop's POS, its web store, a box office)."""

    merchant_id: str
    code: str
    name: str
    kind: ChannelKind = ChannelKind.pos
    is_active: bool = True


class ConfigurationScope(enum.StrEnum):
    """Who a configuration entry applies to."""

    platform = "platform"
    merchant = "merchant"
    device = "device"
    user = "user"


@public.table(
    "Configuration",
    indexes=[
        Index(
            "scope",
            "scope_id",
            "code",
            unique=True,
            name="UQ_Configuration_scope_scope_id_code",
            where="deleted_at IS NULL",
        ),
        Index("value", method="gin", name="IDX_Configuration_value"),
    ],
)
class Configuration(common_columns(id="uuid7")):
    """A configuration entry (``scope`` + ``scope_id`` + ``code`` → a jsonb value)."""

    code: str
    value: Annotated[dict[str, Any], Column(server_default="'{}'::jsonb")]
    scope: ConfigurationScope = ConfigurationScope.platform
    scope_id: str | None = None
    description: str | None = None
