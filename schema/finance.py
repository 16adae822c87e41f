"""The ``finance`` schema: finance categories, wallets with balances and transaction records.

Transaction records are the ledger: a trigger refuses any change to the money they record and
any delete (a correction is a new, opposite record).
"""

from __future__ import annotations

import enum
from decimal import Decimal

from nxdata import (
    Check,
    CommonColumns,
    ForeignKey,
    Index,
    Money,
    Schema,
    Trigger,
    live_unique,
)

from .public import Merchant, User
from .sale import SaleOrder

finance = Schema("finance")

refuse_ledger_change = finance.function(
    "refuse_ledger_change",
    returns="trigger",
    body="""
BEGIN
  RAISE EXCEPTION '% of %.% is refused: ledger records are append-only (record a correction)',
    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END
""",
    comment="Trigger function: refuses to change or delete a ledger record.",
)


class CategoryKind(enum.StrEnum):
    """Which side of the books a finance category is on."""

    income = "income"
    expense = "expense"
    transfer = "transfer"


class WalletKind(enum.StrEnum):
    """What a wallet holds money for."""

    merchant = "merchant"
    customer = "customer"
    cash_drawer = "cash_drawer"
    escrow = "escrow"


class WalletStatus(enum.StrEnum):
    """Whether money may move in or out of a wallet."""

    active = "active"
    frozen = "frozen"
    closed = "closed"


class TransactionKind(enum.StrEnum):
    """What moved money."""

    deposit = "deposit"
    withdrawal = "withdrawal"
    transfer = "transfer"
    payment = "payment"
    refund = "refund"
    fee = "fee"


@finance.table(
    "FinanceCategory",
    indexes=[live_unique("merchant_id", "code"), Index("parent_id")],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("parent_id", "FinanceCategory", on_delete="set null"),
    ],
)
class FinanceCategory(CommonColumns):
    """A bookkeeping category (sales, refunds, supplier payments); categories nest."""

    merchant_id: str
    code: str
    name: str
    kind: CategoryKind
    parent_id: str | None = None


@finance.table(
    "Wallet",
    indexes=[
        live_unique("owner_type", "owner_id", "currency"),
        Index("merchant_id"),
        Index("status"),
    ],
    foreign_keys=[ForeignKey("merchant_id", Merchant, on_delete="restrict")],
    checks=[Check("balance >= 0", name="CK_Wallet_balance")],
)
class Wallet(CommonColumns):
    """A balance held for a merchant, customer or cash drawer; updated under a row lock."""

    merchant_id: str
    owner_type: WalletKind
    owner_id: str
    name: str
    currency: str = "USD"
    balance: Money = Decimal("0")
    status: WalletStatus = WalletStatus.active


@finance.table(
    "TransactionRecord",
    indexes=[
        Index("wallet_id", "created_at"),
        Index("counterparty_wallet_id"),
        Index("sale_order_id", where="sale_order_id IS NOT NULL"),
        Index("category_id"),
        live_unique("wallet_id", "idempotency_key"),
    ],
    foreign_keys=[
        ForeignKey("wallet_id", Wallet, on_delete="restrict"),
        ForeignKey("counterparty_wallet_id", Wallet, on_delete="restrict"),
        ForeignKey("category_id", FinanceCategory, on_delete="set null"),
        ForeignKey("sale_order_id", SaleOrder, on_delete="set null"),
        ForeignKey("created_by", User, on_delete="set null"),
    ],
    checks=[
        Check("amount <> 0", name="CK_TransactionRecord_amount"),
        Check("balance_after >= 0", name="CK_TransactionRecord_balance_after"),
    ],
    triggers=[
        # The money fields only: a sale order's deletion still sets sale_order_id to NULL.
        Trigger(
            "TR_TransactionRecord_append_only",
            refuse_ledger_change,
            timing="before",
            events=("update", "delete"),
            update_of=("wallet_id", "kind", "amount", "balance_after", "idempotency_key"),
        ),
    ],
)
class TransactionRecord(CommonColumns):
    """One signed movement of money on a wallet, with the balance it left behind."""

    wallet_id: str
    kind: TransactionKind
    amount: Money
    balance_after: Money
    idempotency_key: str
    counterparty_wallet_id: str | None = None
    category_id: str | None = None
    sale_order_id: str | None = None
    created_by: str | None = None
    description: str | None = None
