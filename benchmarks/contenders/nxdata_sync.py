"""nxdata, sync: `Repository` over a `Database` pool, rows as the table's Structs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..data import Item, ItemBulk, ItemStream, ItemWrite, Wallet
from .base import Contender, Threaded, Unavailable

if TYPE_CHECKING:
    from nxdata import Repository

__all__ = ["Nxdata"]

NOTES = {
    "insert_one": "validates the dict first",
    "bulk_insert": "validates every row (msgspec) first",
    "delete_by_id": "returns the deleted row (RETURNING, a Struct)",
    "update_by_id": "validates the changes first",
    "transfer": "full rows locked and returned (as psycopg-conn)",
    "reads_by_ids": "rows in the order of the ids",
}


class Nxdata(Threaded, Contender):
    name = "nxdata"
    label = "nxdata Repository"
    concurrency = "threads"
    notes = NOTES

    def setup(self) -> None:
        try:
            from nxdata import Database, Lock, Repository
        except ImportError as exc:
            raise Unavailable(f"nxdata has no Repository yet ({exc})") from exc
        self.lock = Lock.UPDATE
        self.db = Database(self.ctx.url, min_size=self.ctx.pool_size, max_size=self.ctx.pool_size)
        self.db.open()
        self.items = Repository(self.db, Item)
        self.writes = Repository(self.db, ItemWrite)
        self.bulk = Repository(self.db, ItemBulk)
        self.streamed = Repository(self.db, ItemStream, max_limit=None)
        self.wallets = Repository(self.db, Wallet)
        self.tables: tuple[Repository[Any], ...] = (self.items, self.writes, self.wallets)

    def close(self) -> None:
        self.close_threads()
        self.db.close()

    def pk_lookup(self, ids: list[str]) -> None:
        find_by_id = self.items.find_by_id
        for id_ in ids:
            assert find_by_id(id_) is not None

    def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        find = self.items.find
        for status, low, high, quantity in params:
            find(
                {
                    "where": {
                        "status": status,
                        "price": {"between": [low, high]},
                        "quantity": {"gt": quantity},
                    },
                    "order": ["created_at DESC"],
                    "limit": 20,
                }
            )

    def large_fetch(self) -> list[Any]:
        return self.items.find()

    def fetch_n(self, n: int) -> list[Any]:
        return self.streamed.find({"limit": n})

    def stream(self) -> int:
        count = 0
        for _ in self.streamed.iterate():
            count += 1
        return count

    def stream_n(self, n: int) -> int:
        count = 0
        for _ in self.streamed.iterate({"limit": n}):
            count += 1
        return count

    def insert_one(self, rows: list[dict[str, Any]]) -> None:
        create = self.writes.create
        for r in rows:
            create(r)

    def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        # Tuples in the insert type's field order: create_all takes them (its annotation lags).
        return self.bulk.create_all(rows(n))

    def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        update_by_id = self.writes.update_by_id
        for id_, status, quantity in changes:
            assert update_by_id(id_, {"status": status, "quantity": quantity}) is not None

    def delete_by_id(self, ids: list[str]) -> None:
        delete_by_id = self.writes.delete_by_id
        for id_ in ids:
            assert delete_by_id(id_) is not None

    def borrow(self, n: int) -> None:
        # What every call outside a transaction adds to the pool's borrow: the ambient
        # transaction lookup and the socket check of the connection (see Database._acquire).
        db = self.db
        for _ in range(n):
            db._transaction(None)
            db._release(db._acquire())

    def compile_cold(self, filters: list[dict[str, Any]]) -> None:
        compile, cache = self.items.compile, getattr(self.items, "_cache", None)
        if cache is None:
            raise Unavailable("nxdata Repository has no statement cache to empty")
        for f in filters:
            cache.clear()  # a shape not seen before: PyPika builds and renders the statement
            compile(f)

    def compile_cached(self, filters: list[dict[str, Any]]) -> None:
        # Repository.compile: what every find() runs before the driver (the shape walk, the
        # per-shape cache, the parameters), returned instead of sent.
        compile = self.items.compile
        for f in filters:
            compile(f)

    def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        db, wallets, lock = self.db, self.wallets, self.lock
        for source, target, amount in moves:
            with db.transaction() as tx:
                rows = wallets.find(
                    {"where": {"id": {"inq": [source, target]}}, "order": ["id"]},
                    lock=lock,
                    transaction=tx,
                )
                balance = {w.id: w.balance for w in rows}
                wallets.update_by_id(source, {"balance": balance[source] - amount}, transaction=tx)
                wallets.update_by_id(target, {"balance": balance[target] + amount}, transaction=tx)

    def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        for op in ops:
            for repo, ids in zip(self.tables, op, strict=True):
                find_by_id = repo.find_by_id
                for id_ in ids:
                    assert find_by_id(id_) is not None

    def reads_together(self, ops: list[tuple[list[str], ...]]) -> None:
        read_together = self.db.read_together
        for op in ops:
            found = read_together(
                *(
                    repo.later.find_by_id(id_)
                    for repo, ids in zip(self.tables, op, strict=True)
                    for id_ in ids
                )
            )
            assert all(row is not None for row in found)

    def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        for op in ops:
            for repo, ids in zip(self.tables, op, strict=True):
                assert len(repo.find_by_ids(ids)) == len(ids)
