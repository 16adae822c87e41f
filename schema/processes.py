"""Seed processes of the reference schema: platform permissions (always) and demo data (once).

The seeds are plain functions of a psycopg connection (parameterized SQL, no commit: the caller
owns the transaction), registered as migration processes so ``nxdata migrate --all`` and
`nxdata.migrations.processes.bootstrap_migrations` run them after the SQL files::

    with psycopg.connect(url) as conn:
        seed_permissions(conn)
        seed_demo_data(conn)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from nxdata import new_id
from nxdata.migrations.processes import ProcessContext, process

__all__ = [
    "DEMO_MERCHANTS",
    "PERMISSIONS",
    "demo_data_process",
    "permissions_process",
    "seed_demo_data",
    "seed_permissions",
]

Conn = psycopg.Connection[Any]

# (subject, actions) per service: every permission code is "{subject}.{action}".
_SUBJECTS: dict[str, tuple[str, ...]] = {
    "user": ("read", "create", "update", "delete"),
    "role": ("read", "create", "update", "delete", "assign"),
    "merchant": ("read", "create", "update", "delete"),
    "product": ("read", "create", "update", "delete"),
    "device": ("read", "register", "update", "delete"),
    "configuration": ("read", "update"),
    "pricing.fare": ("read", "create", "update", "delete"),
    "pricing.tax": ("read", "create", "update", "delete"),
    "pricing.evaluation": ("create",),
    "sale.order": ("read", "create", "update", "cancel", "refund"),
    "sale.check": ("read", "open", "close", "void"),
    "sale.kitchen_ticket": ("read", "update"),
    "inventory.stock": ("read", "adjust", "transfer", "count"),
    "inventory.purchase_order": ("read", "create", "receive", "cancel"),
    "allocation.seat": ("read", "hold", "release", "block"),
    "finance.wallet": ("read", "deposit", "withdraw", "transfer"),
    "finance.transaction": ("read",),
    "payment.webhook": ("read", "create", "update", "delete"),
    "ledger.job": ("read", "create"),
    "licensing.policy": ("read", "create", "update", "delete"),
    "licensing.license": ("read", "issue", "suspend", "revoke", "activate"),
    "outreach.inquiry": ("read", "update"),
    "outreach.subscriber": ("read", "export"),
}

PERMISSIONS: tuple[tuple[str, str, str, str], ...] = tuple(
    (f"{subject}.{action}", f"{action.replace('_', ' ').title()} {subject}", subject, action)
    for subject, actions in _SUBJECTS.items()
    for action in actions
)
"""Every permission of the platform as (code, name, subject, action)."""

_SYSTEM_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    # code: (name, permission code prefixes; "" = all)
    "owner": ("Owner", ("",)),
    "cashier": (
        "Cashier",
        ("sale.order.", "sale.check.", "product.read", "pricing.evaluation.", "allocation.seat."),
    ),
    "accountant": ("Accountant", ("finance.", "ledger.", "sale.order.read")),
}


def seed_permissions(conn: Conn) -> int:
    """Upsert every permission and the system roles with their permissions; returns the number
    of permissions. Idempotent: run on every migrate."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO "public"."Permission" (id, code, name, subject, action)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (code) DO UPDATE
               SET name = EXCLUDED.name, subject = EXCLUDED.subject, action = EXCLUDED.action,
                   deleted_at = NULL, modified_at = now()
             WHERE ("Permission".name, "Permission".subject, "Permission".action,
                    "Permission".deleted_at)
                   IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.subject, EXCLUDED.action, NULL)
            """,
            [(new_id(), *permission) for permission in PERMISSIONS],
        )
        for code, (name, prefixes) in _SYSTEM_ROLES.items():
            cur.execute(
                """
                INSERT INTO "public"."Role" (id, code, name, is_system) VALUES (%s, %s, %s, true)
                ON CONFLICT (code) WHERE deleted_at IS NULL DO UPDATE SET name = EXCLUDED.name
                """,
                [new_id(), code, name],
            )
            codes = [p[0] for p in PERMISSIONS if any(p[0].startswith(x) for x in prefixes)]
            cur.execute(
                """
                INSERT INTO "public"."RolePermission" (id, role_id, permission_id)
                SELECT gen_random_uuid()::text, r.id, p.id
                FROM "public"."Role" r JOIN "public"."Permission" p ON p.code = ANY(%s)
                WHERE r.code = %s AND r.deleted_at IS NULL
                ON CONFLICT (role_id, permission_id) WHERE deleted_at IS NULL DO NOTHING
                """,
                [codes, code],
            )
    return len(PERMISSIONS)


DEMO_MERCHANTS: dict[str, str] = {"CAFE": "Café Aurora", "TIX": "Northwind Tickets"}
"""The demo merchants by code."""


def _insert(conn: Conn, table: str, **values: Any) -> str:
    """Insert one row with a new id into ``table`` ("schema.Table"); returns the id."""
    values = {"id": new_id(), **values}
    schema, name = table.split(".")
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(schema, name),
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    conn.execute(query, list(values.values()))
    return str(values["id"])


def seed_demo_data(conn: Conn) -> dict[str, str]:
    """Load a small demo data set (merchants, users, catalogue, fares, a licensing policy with
    features, licenses, wallets with balances); returns the ids of the main rows by label.

    Registered to run once; should it meet its own data anyway (a journal reset), it returns an
    empty dict and writes nothing.
    """
    existing = conn.execute(
        """SELECT 1 FROM "public"."Merchant" WHERE code = ANY(%s) AND deleted_at IS NULL""",
        [list(DEMO_MERCHANTS)],
    ).fetchone()
    if existing is not None:
        return {}
    jsonb = Jsonb
    ids: dict[str, str] = {}
    ids["alice"] = _insert(
        conn, "public.User", username="alice", display_name="Alice Owner", status="active"
    )
    ids["bob"] = _insert(
        conn, "public.User", username="bob", display_name="Bob Cashier", status="active"
    )
    for label, username in (("alice", "alice@example.com"), ("bob", "bob@example.com")):
        _insert(
            conn,
            "identity.UserIdentifier",
            user_id=ids[label],
            kind="email",
            value=username,
            is_primary=True,
        )
    for code, name in DEMO_MERCHANTS.items():
        merchant = _insert(
            conn,
            "public.Merchant",
            code=code,
            name=name,
            owner_id=ids["alice"],
            status="active",
            address=jsonb({"line1": "1 Harbour St", "city": "Lisbon", "country": "PT"}),
        )
        ids[f"merchant:{code}"] = merchant
        ids[f"channel:{code}"] = _insert(
            conn, "public.SaleChannel", merchant_id=merchant, code="POS", name="Front counter"
        )
        _insert(
            conn,
            "pricing.TaxCategory",
            merchant_id=merchant,
            code="VAT",
            name="Value added tax",
        )
    owner_role = conn.execute("""SELECT id FROM "public"."Role" WHERE code = 'owner'""").fetchone()
    cashier_role = conn.execute(
        """SELECT id FROM "public"."Role" WHERE code = 'cashier'"""
    ).fetchone()
    for merchant_code in DEMO_MERCHANTS:
        for label, role in (("alice", owner_role), ("bob", cashier_role)):
            _insert(
                conn,
                "public.MerchantUser",
                merchant_id=ids[f"merchant:{merchant_code}"],
                user_id=ids[label],
                role_id=role[0] if role else None,
            )

    cafe, tix = ids["merchant:CAFE"], ids["merchant:TIX"]
    drinks = _insert(conn, "public.Category", merchant_id=cafe, code="DRINKS", name="Drinks")
    for sku, name, price, tags in (
        ("ESP", "Espresso", "2.2000", ["coffee", "hot"]),
        ("LAT", "Latte", "3.5000", ["coffee", "hot", "milk"]),
        ("CRO", "Croissant", "2.8000", ["bakery"]),
    ):
        product = _insert(
            conn,
            "public.Product",
            merchant_id=cafe,
            category_id=drinks if sku != "CRO" else None,
            sku=sku,
            name=name,
            base_price=Decimal(price),
            tags=tags,
        )
        ids[f"product:{sku}"] = product
        _insert(
            conn,
            "public.ProductVariant",
            product_id=product,
            sku=f"{sku}-R",
            name="Regular",
        )
        _insert(
            conn,
            "pricing.Fare",
            merchant_id=cafe,
            product_id=product,
            code=f"FARE-{sku}",
            name=f"{name} counter price",
            amount=Decimal(price),
            status="active",
        )
    starts = datetime.now(UTC) + timedelta(days=30)
    ids["product:JAZZ"] = _insert(
        conn,
        "public.Product",
        merchant_id=tix,
        sku="JAZZ",
        name="Jazz Night",
        kind="ticket",
        base_price=Decimal("45.0000"),
        tags=["music", "live"],
        starts_at=starts,
        ends_at=starts + timedelta(hours=3),
    )

    ids["policy"] = _insert(
        conn,
        "licensing.Policy",
        code="pos-pro",
        name="POS Pro (yearly)",
        duration_days=365,
        max_activations=3,
        entitlements=jsonb({"max_devices": 3, "offline_days": 14, "channels": ["pos", "web"]}),
    )
    for code, data_type, column, value in (
        ("offline_mode", "BOOLEAN", "bo_value", True),
        ("max_devices", "NUMBER", "n_value", 3.0),
        ("support_tier", "TEXT", "t_value", "priority"),
        ("receipt_layout", "JSON", "j_value", jsonb({"logo": True, "footer": "Thank you!"})),
    ):
        _insert(
            conn,
            "licensing.PolicyFeature",
            policy_id=ids["policy"],
            code=code,
            data_type=data_type,
            **{column: value},
        )
    for merchant_code in DEMO_MERCHANTS:
        license_id = _insert(
            conn,
            "licensing.License",
            policy_id=ids["policy"],
            merchant_id=ids[f"merchant:{merchant_code}"],
            license_key=f"POSPRO-{merchant_code}-0001",
            issued_at=datetime.now(UTC),
            expires_at=datetime.now(UTC) + timedelta(days=365),
        )
        ids[f"license:{merchant_code}"] = license_id
        conn.execute(
            """INSERT INTO "licensing"."LicenseEvent" (license_id, kind, actor, payload)
               VALUES (%s, 'issued', 'seed', %s)""",
            [license_id, jsonb({"policy": "pos-pro"})],
        )

    for label, merchant, owner_type, owner_id, balance in (
        ("wallet:CAFE", cafe, "merchant", cafe, "1000.0000"),
        ("wallet:TIX", tix, "merchant", tix, "250.0000"),
        ("wallet:bob", cafe, "customer", ids["bob"], "40.0000"),
    ):
        ids[label] = _insert(
            conn,
            "finance.Wallet",
            merchant_id=merchant,
            owner_type=owner_type,
            owner_id=owner_id,
            name=f"{label.split(':')[1]} wallet",
            balance=Decimal(balance),
        )
        _insert(
            conn,
            "finance.TransactionRecord",
            wallet_id=ids[label],
            kind="deposit",
            amount=Decimal(balance),
            balance_after=Decimal(balance),
            idempotency_key=f"seed-opening-{label}",
            description="Opening balance",
        )
    return ids


@process("public-0001-seed-permissions", always_run=True, schema="public")
def permissions_process(ctx: ProcessContext) -> None:
    """Upsert the platform's permissions and system roles on every migrate."""
    seed_permissions(ctx.connection)


# Tied to "licensing", the last schema it writes in dependency order, so `migrate --schema
# public` alone does not run it; its name sorts it after the permissions it links roles from.
@process("public-0002-seed-demo-data", schema="licensing")
def demo_data_process(ctx: ProcessContext) -> None:
    """Load the demo data set once (it spans public, identity, pricing, finance, licensing)."""
    seed_demo_data(ctx.connection)
