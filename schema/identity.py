"""The ``identity`` schema: credentials, identifiers, profiles, sessions and one-time tokens."""

from __future__ import annotations

import enum
from datetime import date, datetime
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
)

from .public import Address, Merchant, User

identity = Schema("identity")


class CredentialKind(enum.StrEnum):
    """How a user proves who they are."""

    password = "password"
    totp = "totp"
    webauthn = "webauthn"
    oauth = "oauth"


class IdentifierKind(enum.StrEnum):
    """A handle a user signs in with."""

    email = "email"
    phone = "phone"
    username = "username"
    external = "external"


class Preferences(msgspec.Struct, kw_only=True):
    """User interface preferences (stored as jsonb)."""

    theme: str = "system"
    language: str = "en"
    notifications: bool = True


@identity.table(
    "UserCredential",
    indexes=[live_unique("user_id", "kind", "provider"), Index("user_id")],
    foreign_keys=[ForeignKey("user_id", User, on_delete="cascade")],
)
class UserCredential(CommonColumns):
    """A secret a user signs in with (a password hash, a TOTP seed, a passkey)."""

    user_id: str
    secret: str
    kind: CredentialKind = CredentialKind.password
    provider: str = "local"
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


@identity.table(
    "UserIdentifier",
    indexes=[
        live_unique("kind", "value"),
        Index("user_id"),
        Index(
            "user_id",
            name="UQ_UserIdentifier_primary_user_id",
            unique=True,
            where="is_primary AND deleted_at IS NULL",
        ),
    ],
    foreign_keys=[ForeignKey("user_id", User, on_delete="cascade")],
)
class UserIdentifier(CommonColumns):
    """An e-mail address, phone number or external id that resolves to a user."""

    user_id: str
    value: str
    kind: IdentifierKind = IdentifierKind.email
    is_primary: bool = False
    verified_at: datetime | None = None


@identity.table(
    "UserProfile",
    uniques=[Unique("user_id")],
    foreign_keys=[ForeignKey("user_id", User, on_delete="cascade")],
)
class UserProfile(CommonColumns):
    """Personal details of a user."""

    user_id: str
    first_name: str | None = None
    last_name: str | None = None
    birth_date: date | None = None
    avatar_url: str | None = None
    address: Address | None = None
    preferences: Preferences | None = None


@identity.table(
    "MailVerificationToken",
    uniques=[Unique("token_hash")],
    indexes=[Index("user_id"), Index("expires_at", where="consumed_at IS NULL")],
    foreign_keys=[
        ForeignKey("user_id", User, on_delete="cascade"),
        ForeignKey("identifier_id", UserIdentifier, on_delete="cascade"),
    ],
    checks=[Check("attempts >= 0", name="CK_MailVerificationToken_attempts")],
)
class MailVerificationToken(compose(id_columns("uuid"), timestamp_columns(soft_delete=False))):
    """A one-time code mailed to confirm an e-mail address (hard-deleted once used or expired)."""

    user_id: str
    identifier_id: str
    token_hash: str
    expires_at: datetime
    consumed_at: datetime | None = None
    attempts: int = 0


@identity.table(
    "PasswordResetToken",
    uniques=[Unique("token_hash")],
    indexes=[Index("user_id"), Index("expires_at", where="consumed_at IS NULL")],
    foreign_keys=[ForeignKey("user_id", User, on_delete="cascade")],
)
class PasswordResetToken(compose(id_columns("uuid"), timestamp_columns(soft_delete=False))):
    """A one-time token that lets a user set a new password."""

    user_id: str
    token_hash: str
    expires_at: datetime
    consumed_at: datetime | None = None
    requested_ip: str | None = None


@identity.table(
    "UserSession",
    uniques=[Unique("refresh_token_hash")],
    indexes=[
        Index("user_id"),
        Index("expires_at", where="revoked_at IS NULL", name="IDX_UserSession_live_expires_at"),
    ],
    foreign_keys=[
        ForeignKey("user_id", User, on_delete="cascade"),
        ForeignKey("merchant_id", Merchant, on_delete="set null"),
    ],
)
class UserSession(common_columns(soft_delete=False)):
    """A signed-in session with its refresh token."""

    user_id: str
    refresh_token_hash: str
    expires_at: datetime
    merchant_id: str | None = None
    user_agent: str | None = None
    ip_address: str | None = None
    revoked_at: datetime | None = None


@identity.table(
    "ApiKey",
    uniques=[Unique("prefix")],
    indexes=[Index("merchant_id"), Index("scopes", method="gin")],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("created_by", User, on_delete="set null"),
    ],
)
class ApiKey(CommonColumns):
    """A key a merchant's integration authenticates with (only a hash of the secret is kept)."""

    merchant_id: str
    name: str
    prefix: str
    secret_hash: str
    created_by: str | None = None
    scopes: list[str] | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


@identity.table(
    "LoginAttempt",
    indexes=[Index("identifier", "created_at"), Index("user_id")],
    foreign_keys=[ForeignKey("user_id", User, on_delete="cascade")],
)
class LoginAttempt(compose(id_columns("bigint"), timestamp_columns(soft_delete=False))):
    """One sign-in attempt, kept for rate limiting and audit (append-only)."""

    identifier: str
    succeeded: bool
    user_id: str | None = None
    ip_address: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None
