"""PostgreSQL errors raised through repositories come back as nxdata errors keeping the original."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from test_repository_support import Models, create_tables, make_models

from nxdata import Database, Lock, Repository, SoftDeletableRepository
from nxdata.errors import (
    CheckViolation,
    ConflictError,
    DeadlockDetected,
    ForeignKeyViolation,
    IntegrityError,
    NotNullViolation,
    SerializationFailure,
    TransientError,
    UniqueViolation,
)

Conn = psycopg.Connection[Any]


@pytest.fixture
def models(conn: Conn, schema_name: str) -> Models:
    m = make_models(schema_name)
    create_tables(conn, m)
    return m


def test_unique_violation_names_the_constraint(db: Database, models: Models) -> None:
    items = SoftDeletableRepository(db, models.Item)
    items.create({"name": "a", "code": "X"})
    with pytest.raises(UniqueViolation) as info:
        items.create({"name": "b", "code": "X"})
    assert info.value.constraint == "UQ_Item_code"
    assert "UQ_Item_code" in str(info.value)
    assert isinstance(info.value, ConflictError) and isinstance(info.value, IntegrityError)
    assert isinstance(info.value.original, psycopg.errors.UniqueViolation)


def test_foreign_key_check_and_not_null(db: Database, models: Models) -> None:
    entries = Repository(db, models.Entry)
    with pytest.raises(ForeignKeyViolation) as fk:
        entries.create({"label": "x", "item_id": "no-such-item"})
    assert fk.value.constraint == "FK_Entry_item_id_Item_id"
    with pytest.raises(CheckViolation) as check:
        entries.create({"label": "x", "qty": -1})
    assert check.value.constraint == "CK_Entry_qty"
    table = models.schema.tables["Entry"].sql_name
    with pytest.raises(NotNullViolation) as nn:
        entries.query(f"INSERT INTO {table} (label) VALUES (NULL) RETURNING *")
    assert nn.value.column == "label"


def test_serialization_failure_is_transient(db: Database, models: Models) -> None:
    entries = Repository(db, models.Entry)
    row = entries.create({"label": "s", "qty": 1})
    first = db.begin_transaction(isolation="serializable")
    second = db.begin_transaction(isolation="serializable")
    try:
        entries.find(transaction=first)
        entries.find(transaction=second)
        entries.update_by_id(row.id, {"qty": 2}, transaction=first)
        first.commit()
        with pytest.raises(SerializationFailure) as info:
            entries.update_by_id(row.id, {"qty": 3}, transaction=second)
        assert isinstance(info.value, TransientError)
    finally:
        for tx in (first, second):
            if tx.active:
                tx.rollback()


def test_deadlock_is_detected_and_transient(db: Database, models: Models) -> None:
    entries = Repository(db, models.Entry)
    a, b = entries.create({"label": "a"}), entries.create({"label": "b"})
    first = db.begin_transaction()
    second = db.begin_transaction()
    errors: list[BaseException] = []
    try:
        for tx in (first, second):
            tx.connection.execute("SET LOCAL deadlock_timeout = '20ms'")
            tx.connection.execute("SET LOCAL lock_timeout = '5s'")
        entries.find_by_id(a.id, lock=Lock.UPDATE, transaction=first)
        entries.find_by_id(b.id, lock=Lock.UPDATE, transaction=second)

        def first_waits() -> None:
            try:
                entries.find_by_id(b.id, lock=Lock.UPDATE, transaction=first)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=first_waits)
        thread.start()
        try:
            entries.find_by_id(a.id, lock=Lock.UPDATE, transaction=second)
        except BaseException as exc:
            errors.append(exc)
        if not errors:  # the other one may be the victim; let it finish waiting
            second.rollback()
        thread.join(10)
        assert any(isinstance(e, DeadlockDetected) for e in errors), errors
        assert all(isinstance(e, TransientError) for e in errors)
    finally:
        for tx in (first, second):
            if tx.active:
                tx.rollback()
