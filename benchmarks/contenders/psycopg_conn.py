"""Raw psycopg 3 on one dedicated connection: the limit nxdata's point queries and writes are held
to, doing the same work as nxdata.

One autocommit connection, opened at set-up and held for the whole run (no pool, no borrow),
hand-written SQL with server-side prepared statements (``prepare=True``), the session in UTC and
jsonb read and written with msgspec (as nxdata's connections are), and every row built into the
same Struct nxdata returns (``Item(*row)``). Writes return what nxdata's return: the row
(``RETURNING``), as a Struct. Bulk inserts COPY the generator's tuples with ``write_row``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from itertools import starmap
from typing import Any

import msgspec
import psycopg
from psycopg.adapt import Buffer, Dumper, Loader

from ..data import SQL, Item, ItemStream, ItemWrite, Wallet
from .base import Contender

__all__ = ["PsycopgConn"]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class _JsonbLoader(Loader):
    def load(self, data: Buffer) -> Any:
        return _decode(data)


class _JsonbDumper(Dumper):
    oid = psycopg.adapters.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return _encode(obj)


_PK = ((SQL.pk_lookup, Item), (SQL.pk_write, ItemWrite), (SQL.pk_wallet, Wallet))
_IDS = ((SQL.ids_item, Item), (SQL.ids_write, ItemWrite), (SQL.ids_wallet, Wallet))


class PsycopgConn(Contender):
    name = "psycopg-conn"
    label = "raw psycopg 3 on one dedicated connection (prepared, rows into nxdata's Structs)"
    inapplicable = {
        "compile_cold": "hand-written SQL: the same as psycopg",
        "compile_cached": "hand-written SQL: the same as psycopg",
        "borrow": "no pool: the connection is held",
        "concurrent": "one connection: threads and tasks cannot share it",
    }
    notes = {
        "insert_one": "no validation of the input",
        "bulk_insert": "no validation of the input",
        "reads_by_ids": "rows put in the order of the ids, as nxdata",
    }

    def setup(self) -> None:
        conn = psycopg.connect(self.ctx.url, autocommit=True, options="-c timezone=UTC")
        conn.adapters.register_loader("jsonb", _JsonbLoader)
        conn.adapters.register_dumper(dict, _JsonbDumper)
        self.conn: psycopg.Connection[Any] = conn

    def close(self) -> None:
        self.conn.close()

    def pk_lookup(self, ids: list[str]) -> None:
        execute = self.conn.execute
        for id_ in ids:
            row = execute(SQL.pk_lookup, (id_,), prepare=True).fetchone()
            assert row is not None
            Item(*row)

    def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        execute = self.conn.execute
        for p in params:
            list(starmap(Item, execute(SQL.filtered, p, prepare=True).fetchall()))

    def large_fetch(self) -> list[Any]:
        return list(starmap(Item, self.conn.execute(SQL.fetch_all, prepare=True).fetchall()))

    def fetch_n(self, n: int) -> list[Any]:
        rows = self.conn.execute(SQL.fetch_n, (n,), prepare=True).fetchall()
        return list(starmap(ItemStream, rows))

    def stream(self) -> int:
        count = 0
        with self.conn.cursor() as cur:
            for row in cur.stream(SQL.stream_all, size=1000):
                ItemStream(*row)
                count += 1
        return count

    def stream_n(self, n: int) -> int:
        count = 0
        with self.conn.cursor() as cur:
            for row in cur.stream(SQL.fetch_n, (n,), size=1000):
                ItemStream(*row)
                count += 1
        return count

    def insert_one(self, rows: list[dict[str, Any]]) -> None:
        execute = self.conn.execute
        for r in rows:
            row = execute(
                SQL.insert_one,
                (
                    r["id"],
                    r["metadata"],  # a dict: the msgspec jsonb dumper
                    r["name"],
                    r["status"],
                    r["price"],
                    r["quantity"],
                    r["active"],
                ),
                prepare=True,
            ).fetchone()
            assert row is not None
            ItemWrite(*row)

    def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        count = 0
        with self.conn.cursor() as cur, cur.copy(SQL.copy_bulk) as copy:
            write_row = copy.write_row
            for row in rows(n):
                write_row(row)
                count += 1
        return count

    def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        execute = self.conn.execute
        for id_, status, quantity in changes:
            row = execute(SQL.update_one, (status, quantity, id_), prepare=True).fetchone()
            assert row is not None
            ItemWrite(*row)

    def delete_by_id(self, ids: list[str]) -> None:
        execute = self.conn.execute
        for id_ in ids:
            row = execute(SQL.delete_returning, (id_,), prepare=True).fetchone()
            assert row is not None
            ItemWrite(*row)

    def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        conn = self.conn
        execute = conn.execute
        for source, target, amount in moves:
            with conn.transaction():
                rows = execute(SQL.lock_wallets_rows, ([source, target],), prepare=True)
                balance = {w.id: w.balance for w in starmap(Wallet, rows.fetchall())}
                for id_, value in (
                    (source, balance[source] - amount),
                    (target, balance[target] + amount),
                ):
                    row = execute(SQL.set_balance_returning, (value, id_), prepare=True)
                    changed = row.fetchone()
                    assert changed is not None
                    Wallet(*changed)

    def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        execute = self.conn.execute
        for op in ops:
            for (query, row_type), ids in zip(_PK, op, strict=True):
                for id_ in ids:
                    row = execute(query, (id_,), prepare=True).fetchone()
                    assert row is not None
                    row_type(*row)

    def reads_together(self, ops: list[tuple[list[str], ...]]) -> None:
        conn = self.conn
        execute = conn.execute
        for op in ops:
            with conn.pipeline():
                sent = [
                    (row_type, execute(query, (id_,), prepare=True))
                    for (query, row_type), ids in zip(_PK, op, strict=True)
                    for id_ in ids
                ]
                rows = [(row_type, cursor.fetchone()) for row_type, cursor in sent]
            for row_type, row in rows:
                assert row is not None
                row_type(*row)

    def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        execute = self.conn.execute
        for op in ops:
            for (query, row_type), ids in zip(_IDS, op, strict=True):
                found = {row[0]: row for row in execute(query, (ids,), prepare=True).fetchall()}
                assert len([row_type(*found[id_]) for id_ in ids if id_ in found]) == len(ids)
