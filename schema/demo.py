"""`make demo`: migrate the reference schema, run its seeds, then show repositories at work.

Run as ``python -m schema.demo``. The database is ``NXDATA_DATABASE_URL`` / ``DATABASE_URL`` when
set, else an embedded PostgreSQL under ``.nxdata/``. Safe to run again: migrations and the
run-once seed are skipped, and the demo's own rows get fresh numbers.
"""

from __future__ import annotations

import secrets
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from nxdata import Database, Lock, Repository, SoftDeletableRepository
from nxdata.config import redact
from nxdata.errors import CheckViolation, IntegrityError, NxdataError, PermissionDenied
from nxdata.migrations import bootstrap_migrations

from . import SCHEMAS
from .finance import TransactionKind, TransactionRecord, Wallet
from .licensing import Activation, License, LicenseEvent, LicenseStatus, PolicyFeature
from .public import Merchant, Product
from .sale import OrderStatus, SaleOrder, SaleOrderItem

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
MONEY = Decimal("0.0001")


def say(title: str) -> None:
    """Print a section title."""
    print(f"\n== {title}")


def show(label: str, value: Any) -> None:
    """Print one indented fact."""
    print(f"   {label}: {value}")


def sale_demo(db: Database, run: str) -> None:
    """Orders with items in one transaction, a rolled-back one, filters and soft delete."""
    merchants = SoftDeletableRepository(db, Merchant)
    products = SoftDeletableRepository(db, Product)
    orders = SoftDeletableRepository(db, SaleOrder)
    items = SoftDeletableRepository(db, SaleOrderItem)

    say("sale: find with a filter")
    cafe = merchants.find_one({"where": {"code": "CAFE"}})
    assert cafe is not None, "the demo-data seed has not run"
    menu = products.find(
        {
            "where": {"merchant_id": cafe.id, "is_active": True, "base_price": {"lt": 5}},
            "fields": ["id", "sku", "name", "base_price", "tags"],
            "order": ["sku"],
        }
    )
    for product in menu:
        show(product.sku, f"{product.name:<10} {product.base_price:>8}  tags={product.tags}")
    coffee = products.find({"where": {"merchant_id": cafe.id, "tags": {"contains": ["coffee"]}}})
    show("tagged 'coffee'", sorted(p.name for p in coffee))

    say("sale: create an order with its items in one transaction")
    lines = [(p, Decimal(q)) for p, q in zip(menu, ("2", "1", "1"), strict=False)]
    subtotal = sum((p.base_price * q for p, q in lines), Decimal(0)).quantize(MONEY)
    tax = (subtotal * Decimal("0.08")).quantize(MONEY)
    with db.transaction() as tx:
        order = orders.create(
            {
                "merchant_id": cafe.id,
                "number": f"{run}-0001",
                "status": OrderStatus.placed,
                "subtotal": subtotal,
                "tax_total": tax,
                "total": subtotal + tax,
                "customer": {"name": "Dana", "email": "dana@example.com"},
                "placed_at": datetime.now(UTC),
            },
            transaction=tx,
        )
        created = items.create_all(
            [
                {
                    "sale_order_id": order.id,
                    "product_id": p.id,
                    "name": p.name,
                    "unit_price": p.base_price,
                    "quantity": q,
                    "line_total": (p.base_price * q).quantize(MONEY),
                }
                for p, q in lines
            ],
            returning=True,
            transaction=tx,
        )
    show("order", f"{order.number} status={order.status} total={order.total} {order.currency}")
    show("customer (typed jsonb)", order.customer)
    for item in created:
        show("  item", f"{item.quantity} x {item.name} @ {item.unit_price} = {item.line_total}")

    say("sale: a failing transaction leaves nothing behind")
    before = orders.count({"merchant_id": cafe.id})
    try:
        with db.transaction() as tx:
            bad = orders.create({"merchant_id": cafe.id, "number": f"{run}-0002"}, transaction=tx)
            items.create(
                {
                    "sale_order_id": bad.id,
                    "product_id": menu[0].id,
                    "name": menu[0].name,
                    "unit_price": menu[0].base_price,
                    "quantity": Decimal(0),  # CK_SaleOrderItem_quantity says > 0
                },
                transaction=tx,
            )
    except CheckViolation as exc:
        show("rolled back", f"{type(exc).__name__}: {exc.constraint or exc}")
    show("orders before / after", f"{before} / {orders.count({'merchant_id': cafe.id})}")

    say("sale: find placed orders over 5.00, newest first")
    found = orders.find(
        {
            "where": {"merchant_id": cafe.id, "status": "placed", "total": {"gte": 5}},
            "order": ["created_at DESC"],
            "limit": 3,
        }
    )
    for o in found:
        show(o.number, f"total={o.total} placed_at={o.placed_at:%Y-%m-%d %H:%M:%S}")

    say("sale: soft delete")
    draft = orders.create({"merchant_id": cafe.id, "number": f"{run}-0003"})
    orders.delete_by_id(draft.id)
    show("find_by_id after delete", orders.find_by_id(draft.id))
    hidden = orders.find_by_id(draft.id, include_deleted=True)
    show("with include_deleted=True", f"{hidden.number} deleted_at={hidden.deleted_at}")
    restored = orders.restore_by_id(draft.id)
    show("restore_by_id", f"{restored.number} deleted_at={restored.deleted_at}")
    orders.delete_by_id(draft.id)


def licensing_demo(db: Database, run: str) -> None:
    """Licenses found by filter, an activation, hard-deleted events, a suspension."""
    licenses = SoftDeletableRepository(db, License)
    features = SoftDeletableRepository(db, PolicyFeature)
    activations = SoftDeletableRepository(db, Activation)
    events = Repository(db, LicenseEvent)

    say("licensing: active licenses expiring within 400 days")
    soon = datetime.now(UTC) + timedelta(days=400)
    active = licenses.find(
        {
            "where": {"status": LicenseStatus.active, "expires_at": {"lt": soon}},
            "order": ["license_key"],
        }
    )
    for lic in active:
        show(lic.license_key, f"expires {lic.expires_at:%Y-%m-%d}")
    lic = active[0]

    say("licensing: policy features (polymorphic value columns)")
    for f in features.find({"where": {"policy_id": lic.policy_id}, "order": ["code"]}):
        value = {"BOOLEAN": f.bo_value, "NUMBER": f.n_value, "TEXT": f.t_value}.get(
            f.data_type, f.j_value
        )
        show(f.code, f"{f.data_type:<8} {value}")

    say("licensing: activate a machine, record events, suspend")
    with db.transaction() as tx:
        activation = activations.create(
            {"license_id": lic.id, "fingerprint": f"{run}-fp", "hostname": "till-1"},
            transaction=tx,
        )
        locked = licenses.find_by_id(lic.id, lock=Lock.NO_KEY_UPDATE, transaction=tx)
        assert locked is not None
        licenses.update_by_id(
            lic.id, {"activation_count": locked.activation_count + 1}, transaction=tx
        )
        event = events.create(
            {
                "license_id": lic.id,
                "kind": "activated",
                "activation_id": activation.id,
                "payload": {"hostname": "till-1"},
            },
            transaction=tx,
        )
    show("activation", f"{activation.fingerprint} on {activation.hostname}")
    show("event", f"#{event.id} {event.kind} (bigint identity)")
    suspended = licenses.update_by_id(lic.id, {"status": LicenseStatus.suspended})
    show("suspended", f"{suspended.license_key} status={suspended.status}")
    licenses.update_by_id(lic.id, {"status": LicenseStatus.active})
    show("events of this license", events.count({"license_id": lic.id}))
    gone = events.delete_by_id(event.id)
    show("hard delete of the event", f"#{gone.id} → {events.find_by_id(event.id)}")


def finance_demo(db: Database, run: str) -> None:
    """Move money between two wallets under row locks; an overdraft is refused by a CHECK."""
    wallets = SoftDeletableRepository(db, Wallet)
    records = SoftDeletableRepository(db, TransactionRecord)

    def transfer(source_id: str, target_id: str, amount: Decimal, key: str) -> None:
        with db.transaction() as tx:
            # Lock both rows in id order so two opposite transfers cannot deadlock.
            locked = wallets.find(
                {"where": {"id": {"inq": [source_id, target_id]}}, "order": ["id"]},
                lock=Lock.UPDATE,
                transaction=tx,
            )
            by_id = {w.id: w for w in locked}
            source, target = by_id[source_id], by_id[target_id]
            for wallet, delta, kind in (
                (source, -amount, TransactionKind.transfer),
                (target, amount, TransactionKind.transfer),
            ):
                updated = wallets.update_by_id(
                    wallet.id, {"balance": wallet.balance + delta}, transaction=tx
                )
                records.create(
                    {
                        "wallet_id": wallet.id,
                        "counterparty_wallet_id": (target if wallet is source else source).id,
                        "kind": kind,
                        "amount": delta,
                        "balance_after": updated.balance,
                        "idempotency_key": f"{key}-{wallet.id[:8]}",
                        "description": "demo transfer",
                    },
                    transaction=tx,
                )

    say("finance: lock two wallet rows and move money")
    merchants = {m.code: m.id for m in SoftDeletableRepository(db, Merchant).find()}
    cafe = wallets.find_one({"where": {"owner_type": "merchant", "owner_id": merchants["CAFE"]}})
    tix = wallets.find_one({"where": {"owner_type": "merchant", "owner_id": merchants["TIX"]}})
    assert cafe is not None and tix is not None
    show("before", f"CAFE={cafe.balance} TIX={tix.balance}")
    transfer(cafe.id, tix.id, Decimal("125.5000"), f"{run}-t1")
    cafe, tix = wallets.find_by_id(cafe.id), wallets.find_by_id(tix.id)
    show("after 125.50 CAFE → TIX", f"CAFE={cafe.balance} TIX={tix.balance}")

    try:
        transfer(tix.id, cafe.id, tix.balance + 1, f"{run}-t2")
    except CheckViolation as exc:
        show("overdraft refused", f"{type(exc).__name__} on {exc.constraint or exc}")
    cafe, tix = wallets.find_by_id(cafe.id), wallets.find_by_id(tix.id)
    show("unchanged", f"CAFE={cafe.balance} TIX={tix.balance}")
    show("TIX ledger rows", records.count({"wallet_id": tix.id}))


def objects_demo(db: Database, run: str) -> None:
    """What the schema declares besides tables: an append-only ledger (a trigger) and a view
    that row-level security confines to one merchant."""
    say("objects: the ledger refuses changes (a trigger)")
    records = SoftDeletableRepository(db, TransactionRecord)
    record = records.find_one({"where": {"description": "demo transfer"}, "order": ["created_at"]})
    assert record is not None, "the finance demo has not run"
    try:
        records.update_by_id(record.id, {"amount": record.amount * 2})
    except IntegrityError as exc:
        show("update of the amount refused", str(exc).splitlines()[0])
    described = records.update_by_id(record.id, {"description": f"demo transfer {run}"})
    show("its description may change", described.description)

    say("objects: a tenant sees and writes its own orders only (row-level security)")
    merchants = {m.code: m.id for m in SoftDeletableRepository(db, Merchant).find()}
    orders = SoftDeletableRepository(db, SaleOrder)
    as_tix = {"role": "app_tenant", "app.merchant_id": merchants["TIX"]}
    with db.transaction(settings=as_tix) as tx:
        orders.create({"merchant_id": merchants["TIX"], "number": f"{run}-T1"}, transaction=tx)
    try:
        with db.transaction(settings=as_tix) as tx:
            orders.create({"merchant_id": merchants["CAFE"], "number": f"{run}-T2"}, transaction=tx)
    except PermissionDenied as exc:
        show("TIX writing a CAFE order", f"refused: {str(exc).splitlines()[0]}")
    everything = db.fetch_value('SELECT count(DISTINCT merchant_id) FROM sale."OrderTotal"')
    show("merchants in sale.OrderTotal (as the owner)", everything)
    for code in ("CAFE", "TIX"):
        as_tenant = {"role": "app_tenant", "app.merchant_id": merchants[code]}
        with db.transaction(settings=as_tenant) as tx:
            seen = db.fetch_all(
                'SELECT DISTINCT merchant_id FROM sale."OrderTotal"', transaction=tx
            )
        owners = sorted(next(k for k, v in merchants.items() if v == m) for (m,) in seen)
        show(f"merchants in sale.OrderTotal as app_tenant for {code}", owners)


def main() -> int:
    """Run the demo; returns the exit status."""
    started = time.perf_counter()
    # pgserver (the embedded server) warns when XDG_RUNTIME_DIR is unset; harmless here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    run = f"D{datetime.now(UTC):%H%M%S}{secrets.token_hex(2).upper()}"
    try:
        with Database.from_env() as db:
            print(f"nxdata demo on {redact(db.url)}")
            say("migrate the 11 schemas, then the seed processes")
            result = bootstrap_migrations(
                db,
                migrations_dir=ROOT / "migrations",
                models="schema",
                progress=lambda line: print("   " + line),
            )
            show("applied", f"{len(result.files)} files, {len(result.processes)} processes")
            tables = db.fetch_value(
                "SELECT count(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
                " AND table_schema = ANY(%s)",
                [[schema.name for schema in SCHEMAS]],
            )
            show("tables", tables)
            sale_demo(db, run)
            licensing_demo(db, run)
            finance_demo(db, run)
            objects_demo(db, run)
    except NxdataError as exc:
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"\ndone in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
