"""The ``outreach`` schema: inquiries from prospects and newsletter subscribers."""

from __future__ import annotations

import enum
from datetime import datetime

from nxdata import Check, CommonColumns, ForeignKey, Index, Schema, live_unique

from .public import Merchant, User

outreach = Schema("outreach")


class InquiryStatus(enum.StrEnum):
    """Lifecycle of an inquiry."""

    new = "new"
    contacted = "contacted"
    qualified = "qualified"
    closed = "closed"
    spam = "spam"


@outreach.table(
    "Inquiry",
    indexes=[
        Index("status", "created_at"),
        Index("email"),
        Index("assignee_id", where="status IN ('new', 'contacted')"),
    ],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="set null"),
        ForeignKey("assignee_id", User, on_delete="set null"),
    ],
    # Addresses are stored lower-cased (citext is not available on every server, e.g. the
    # embedded one), so plain equality and unique indexes are case-insensitive.
    checks=[Check("email = lower(email)", name="CK_Inquiry_email_lower")],
)
class Inquiry(CommonColumns):
    """A contact or demo request sent from the website."""

    name: str
    email: str
    message: str
    merchant_id: str | None = None
    assignee_id: str | None = None
    company: str | None = None
    phone: str | None = None
    source: str = "website"
    status: InquiryStatus = InquiryStatus.new
    responded_at: datetime | None = None


@outreach.table(
    "NewsletterSubscriber",
    indexes=[
        live_unique("email", "list_code"),
        Index("merchant_id"),
        Index("topics", method="gin"),
    ],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="cascade")],
    checks=[Check("email = lower(email)", name="CK_NewsletterSubscriber_email_lower")],
)
class NewsletterSubscriber(CommonColumns):
    """An e-mail address subscribed to a newsletter list (double opt-in)."""

    email: str
    list_code: str = "platform"
    merchant_id: str | None = None
    topics: list[str] | None = None
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    confirmation_token: str | None = None
