"""The ``payment`` schema: webhook configurations of payment providers."""

from __future__ import annotations

import enum
from datetime import datetime

from nxdata import CommonColumns, ForeignKey, Index, Schema, live_unique

from .public import Merchant

payment = Schema("payment")


class PaymentProvider(enum.StrEnum):
    """A payment service provider that calls us back."""

    stripe = "stripe"
    adyen = "adyen"
    paypal = "paypal"
    momo = "momo"
    vnpay = "vnpay"


@payment.table(
    "WebhookConfiguration",
    indexes=[
        live_unique("merchant_id", "provider", "endpoint_url"),
        Index("events", method="gin"),
        Index("provider", name="IDX_WebhookConfiguration_enabled_provider", where="is_enabled"),
    ],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
)
class WebhookConfiguration(CommonColumns):
    """Where a provider posts payment events for a merchant, and the secret to verify them."""

    merchant_id: str
    provider: PaymentProvider
    endpoint_url: str
    signing_secret: str
    events: list[str] | None = None
    is_enabled: bool = True
    last_delivery_at: datetime | None = None
    failure_count: int = 0
