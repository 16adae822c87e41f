"""The ``licensing`` schema: policies and their features, licenses, activations, license events."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from nxdata import (
    Check,
    CommonColumns,
    ForeignKey,
    Index,
    Schema,
    Unique,
    common_columns,
    compose,
    id_columns,
    live_unique,
    timestamp_columns,
    value_columns,
)

from .public import Merchant, Product, User
from .sale import SaleOrder

licensing = Schema("licensing")


class LicenseStatus(enum.StrEnum):
    """Lifecycle of a license."""

    active = "active"
    suspended = "suspended"
    expired = "expired"
    revoked = "revoked"


class FeatureType(enum.StrEnum):
    """Which value column of a policy feature holds its value."""

    BOOLEAN = "BOOLEAN"
    NUMBER = "NUMBER"
    TEXT = "TEXT"
    JSON = "JSON"
    BINARY = "BINARY"


class LicenseEventKind(enum.StrEnum):
    """What happened to a license."""

    issued = "issued"
    activated = "activated"
    deactivated = "deactivated"
    validated = "validated"
    renewed = "renewed"
    suspended = "suspended"
    revoked = "revoked"


class Entitlements(msgspec.Struct, kw_only=True):
    """Limits a policy grants (stored as jsonb)."""

    max_devices: int | None = None
    max_users: int | None = None
    offline_days: int = 7
    channels: list[str] = []


@licensing.table(
    "Policy",
    indexes=[live_unique("code"), Index("product_id")],
    foreign_keys=[ForeignKey("product_id", Product, on_delete="set null")],
    checks=[
        Check("max_activations > 0", name="CK_Policy_max_activations"),
        Check("duration_days IS NULL OR duration_days > 0", name="CK_Policy_duration_days"),
    ],
)
class Policy(CommonColumns):
    """A licensing plan: how long licenses last, how many activations, which features."""

    code: str
    name: str
    product_id: str | None = None
    duration_days: int | None = None
    max_activations: int = 1
    is_floating: bool = False
    entitlements: Entitlements | None = None


@licensing.table(
    "PolicyFeature",
    indexes=[live_unique("policy_id", "code")],
    foreign_keys=[ForeignKey("policy_id", Policy, on_delete="cascade")],
    checks=[
        Check(
            "data_type IN ('BOOLEAN', 'NUMBER', 'TEXT', 'JSON', 'BINARY')",
            name="CK_PolicyFeature_data_type",
        ),
        Check(
            "(data_type = 'BOOLEAN' AND bo_value IS NOT NULL)"
            " OR (data_type = 'NUMBER' AND n_value IS NOT NULL)"
            " OR (data_type = 'TEXT' AND t_value IS NOT NULL)"
            " OR (data_type = 'JSON' AND j_value IS NOT NULL)"
            " OR (data_type = 'BINARY' AND b_value IS NOT NULL)",
            name="CK_PolicyFeature_value",
        ),
    ],
)
class PolicyFeature(compose(common_columns(), value_columns(), name="PolicyFeatureColumns")):
    """A feature flag or limit of a policy; ``data_type`` says which value column holds it."""

    policy_id: str
    code: str
    description: str | None = None


@licensing.table(
    "License",
    uniques=[Unique("license_key")],
    indexes=[
        Index("status"),
        Index("policy_id"),
        Index("merchant_id"),
        Index("expires_at", name="IDX_License_active_expires_at", where="status = 'active'"),
    ],
    foreign_keys=[
        ForeignKey("policy_id", Policy, on_delete="restrict"),
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("user_id", User, on_delete="set null"),
        ForeignKey("sale_order_id", SaleOrder, on_delete="set null"),
    ],
)
class License(CommonColumns):
    """A license issued to a merchant (optionally a user) under a policy."""

    policy_id: str
    merchant_id: str
    license_key: str
    user_id: str | None = None
    sale_order_id: str | None = None
    status: LicenseStatus = LicenseStatus.active
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    activation_count: int = 0
    notes: str | None = None


@licensing.table(
    "Activation",
    indexes=[
        live_unique("license_id", "fingerprint"),
        Index("last_seen_at"),
    ],
    foreign_keys=[ForeignKey("license_id", License, on_delete="cascade")],
)
class Activation(CommonColumns):
    """A machine (identified by a fingerprint) a license is activated on."""

    license_id: str
    fingerprint: str
    hostname: str | None = None
    platform: str | None = None
    ip_address: str | None = None
    last_seen_at: datetime | None = None
    deactivated_at: datetime | None = None


@licensing.table(
    "LicenseEvent",
    indexes=[Index("license_id", "created_at"), Index("kind")],
    foreign_keys=[
        ForeignKey("license_id", License, on_delete="cascade"),
        ForeignKey("activation_id", Activation, on_delete="set null"),
    ],
)
class LicenseEvent(compose(id_columns("bigint"), timestamp_columns(soft_delete=False))):
    """An append-only, hard-deleted record of what happened to a license."""

    license_id: str
    kind: LicenseEventKind
    activation_id: str | None = None
    actor: str | None = None
    payload: dict[str, Any] | None = None
