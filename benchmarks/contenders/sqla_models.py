"""The benchmark tables for SQLAlchemy 2: Core ``Table`` objects and ORM mapped classes, both
describing exactly the tables `benchmarks.data` declares with nxdata."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import nxdata as nx

from ..data import BULK_COLUMNS, Item, ItemBulk, ItemStream, ItemWrite, Wallet

__all__ = [
    "ORM_BULK_KEYS",
    "ItemBulkORM",
    "ItemORM",
    "ItemStreamORM",
    "ItemWriteORM",
    "WalletORM",
    "tables",
]

metadata = MetaData()


def _item_table(row_type: type[Any]) -> Table:
    table = nx.table_of(row_type)
    return Table(
        table.name,
        metadata,
        Column("id", Text, primary_key=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("modified_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("deleted_at", DateTime(timezone=True)),
        Column("metadata", JSONB),
        Column("name", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("price", Numeric(12, 2), nullable=False),
        Column("quantity", Integer, nullable=False),
        Column("active", Boolean, nullable=False),
        schema=table.schema.name,
    )


tables = {
    row_type.__name__: _item_table(row_type) for row_type in (Item, ItemWrite, ItemBulk, ItemStream)
}
wallet = nx.table_of(Wallet)
tables["Wallet"] = Table(
    wallet.name,
    metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("modified_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
    Column("metadata", JSONB),
    Column("owner", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("balance", Numeric(19, 4), nullable=False),
    schema=wallet.schema.name,
)


class Base(DeclarativeBase):
    pass


class _ItemMixin:
    """The mapped columns of every item table; typed the way an ORM user would write them."""

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    modified_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    quantity: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean)


def _schema_of(row_type: type[Any]) -> dict[str, str]:
    return {"schema": nx.table_of(row_type).schema.name}


class ItemORM(_ItemMixin, Base):
    __tablename__ = nx.table_of(Item).name
    __table_args__ = _schema_of(Item)


class ItemWriteORM(_ItemMixin, Base):
    __tablename__ = nx.table_of(ItemWrite).name
    __table_args__ = _schema_of(ItemWrite)


class ItemBulkORM(_ItemMixin, Base):
    __tablename__ = nx.table_of(ItemBulk).name
    __table_args__ = _schema_of(ItemBulk)


class ItemStreamORM(_ItemMixin, Base):
    __tablename__ = nx.table_of(ItemStream).name
    __table_args__ = _schema_of(ItemStream)


class WalletORM(Base):
    __tablename__ = nx.table_of(Wallet).name
    __table_args__ = _schema_of(Wallet)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    modified_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    owner: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    balance: Mapped[Decimal] = mapped_column(Numeric(19, 4))


def orm_kwargs(row: dict[str, Any]) -> dict[str, Any]:
    """An insert dict as ORM constructor arguments (``metadata`` is reserved on mapped classes)."""
    kwargs = dict(row)
    kwargs["metadata_"] = kwargs.pop("metadata")
    return kwargs


ORM_BULK_KEYS = tuple("metadata_" if c == "metadata" else c for c in BULK_COLUMNS)
"""The bulk insert's tuple columns as ORM constructor keywords."""


def filtered(
    target: Any, cols: Any, status: str, low: Decimal, high: Decimal, quantity: int
) -> Any:
    """The small filtered query, built the way a SQLAlchemy user writes it (each call)."""
    return (
        select(target)
        .where(cols.status == status, cols.price.between(low, high), cols.quantity > quantity)
        .order_by(cols.created_at.desc())
        .limit(20)
    )


def from_filter(target: Any, cols: Any, spec: dict[str, Any]) -> Any:
    """The same filter dict the compile scenarios give nxdata, as a SQLAlchemy select (the
    filters there have the small filtered query's shape)."""
    where = spec["where"]
    low, high = where["price"]["between"]
    return filtered(target, cols, where["status"], low, high, where["quantity"]["gt"])


class StatementCache:
    """What an engine does with a statement before the driver sees it: find the compiled form by
    the statement's cache key (compiling on a miss), then extract this call's parameters. Uses the
    engine's own (private) path, ``_compile_w_cache``, so the cost is the one ``execute`` pays."""

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect
        self.cache: dict[Any, Any] = {}

    def cold(self, stmt: Any) -> tuple[str, Any]:
        compiled = stmt.compile(dialect=self.dialect)
        return compiled.string, compiled.construct_params()

    def cached(self, stmt: Any) -> tuple[str, Any]:
        compiled, extracted, collected, _ = stmt._compile_w_cache(
            self.dialect, compiled_cache=self.cache, column_keys=[]
        )
        try:  # SQLAlchemy 2.1 hands the collected values over separately
            params = compiled.construct_params(
                extracted_parameters=extracted, escape_names=False, _collected_params=collected
            )
        except TypeError:
            params = compiled.construct_params(extracted_parameters=extracted, escape_names=False)
        return compiled.string, params
