"""The benchmark's tables (declared with nxdata), their data, and the hand-written SQL over them.

One realistic table shape, ten columns — ``CommonColumns`` (text uuid ``id``, ``created_at``,
``modified_at``, ``deleted_at``, a jsonb ``metadata`` holding a small nested object) plus ``name``
and ``status`` (text), ``price`` (numeric), ``quantity`` (integer) and ``active`` (boolean) — in
four tables so that the read scenarios never see the writes: ``Item`` (reads), ``ItemWrite``
(single-row writes), ``ItemBulk`` (bulk inserts, emptied before each) and ``ItemStream`` (the
streaming scenario's many rows). ``Wallet`` holds balances for the transfer scenario.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

import nxdata as nx

__all__ = [
    "BULK_COLUMNS",
    "INSERT_COLUMNS",
    "ITEM_COLUMNS",
    "SQL",
    "WALLET_COLUMNS",
    "Item",
    "ItemBulk",
    "ItemStream",
    "ItemWrite",
    "Wallet",
    "bench",
    "import_rows",
    "load",
    "make_rows",
]

bench = nx.Schema("bench")

Price = Annotated[Decimal, nx.Column(sql_type="numeric(12, 2)")]


class ItemColumns(nx.CommonColumns):
    """The ten columns every item table has (five from CommonColumns, five of its own)."""

    name: str
    status: str
    price: Price
    quantity: int
    active: bool


@bench.table("Item", indexes=[nx.Index("status", "created_at")])
class Item(ItemColumns):
    """Read-only during the run: lookups, filtered queries, the large fetch."""


@bench.table("ItemWrite")
class ItemWrite(ItemColumns):
    """Target of single-row inserts, updates and deletes."""


@bench.table("ItemBulk")
class ItemBulk(ItemColumns):
    """Target of bulk inserts; emptied (untimed) before each one."""


@bench.table("ItemStream")
class ItemStream(ItemColumns):
    """Many rows, read by the streaming memory measurement."""


@bench.table("Wallet")
class Wallet(nx.CommonColumns):
    """Balances moved by the transfer scenario."""

    owner: str
    currency: str
    balance: nx.Money


ITEM_COLUMNS = tuple(c.name for c in nx.table_of(Item).columns)
"""Column names of an item row, in declaration order."""
INSERT_COLUMNS = ("id", "metadata", "name", "status", "price", "quantity", "active")
"""Columns an insert supplies; the timestamps come from server defaults, deleted_at is NULL."""
BULK_COLUMNS = tuple(nx.table_of(ItemBulk).insert_type.__struct_fields__)
"""Columns of the bulk insert's rows: the insert type's fields in declared order (all ten), as
`import_rows` yields them and nxdata's ``create_all`` takes tuples."""
WALLET_COLUMNS = tuple(c.name for c in nx.table_of(Wallet).columns)
"""Column names of a wallet row, in declaration order."""


def _sql_name(row_type: type[msgspec.Struct]) -> str:
    return nx.table_of(row_type).sql_name


def _q(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{n}"' for n in names)


class SQL:
    """Hand-written statements for the raw contenders (``%s``; asyncpg gets ``$n`` versions)."""

    cols = _q(ITEM_COLUMNS)
    wallet_cols = _q(WALLET_COLUMNS)
    item = _sql_name(Item)
    write = _sql_name(ItemWrite)
    bulk = _sql_name(ItemBulk)
    stream = _sql_name(ItemStream)
    wallet = _sql_name(Wallet)

    pk_lookup = f"SELECT {cols} FROM {item} WHERE id = %s"
    filtered = (
        f"SELECT {cols} FROM {item} WHERE status = %s AND price BETWEEN %s AND %s "
        "AND quantity > %s ORDER BY created_at DESC LIMIT 20"
    )
    fetch_all = f"SELECT {cols} FROM {item}"
    stream_all = f"SELECT {cols} FROM {stream}"
    fetch_n = f"SELECT {cols} FROM {stream} LIMIT %s"
    pk_write = f"SELECT {cols} FROM {write} WHERE id = %s"
    pk_wallet = f"SELECT {wallet_cols} FROM {wallet} WHERE id = %s"
    ids_item = f"SELECT {cols} FROM {item} WHERE id = ANY(%s)"
    ids_write = f"SELECT {cols} FROM {write} WHERE id = ANY(%s)"
    ids_wallet = f"SELECT {wallet_cols} FROM {wallet} WHERE id = ANY(%s)"
    insert_one = (
        f"INSERT INTO {write} ({_q(INSERT_COLUMNS)}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        f"RETURNING {cols}"
    )
    update_one = (
        f"UPDATE {write} SET status = %s, quantity = %s, modified_at = now() WHERE id = %s "
        f"RETURNING {cols}"
    )
    delete_one = f"DELETE FROM {write} WHERE id = %s"
    delete_returning = f"DELETE FROM {write} WHERE id = %s RETURNING {cols}"
    copy_bulk = f"COPY {bulk} ({_q(BULK_COLUMNS)}) FROM STDIN"
    copy_write = f"COPY {write} ({_q(INSERT_COLUMNS)}) FROM STDIN"
    lock_wallets = f"SELECT id, balance FROM {wallet} WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
    set_balance = f"UPDATE {wallet} SET balance = %s, modified_at = now() WHERE id = %s"
    lock_wallets_rows = (
        f"SELECT {wallet_cols} FROM {wallet} WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
    )
    set_balance_returning = (
        f"UPDATE {wallet} SET balance = %s, modified_at = now() WHERE id = %s "
        f"RETURNING {wallet_cols}"
    )

    @staticmethod
    def numbered(query: str) -> str:
        """The statement with ``$1, $2, ...`` placeholders (asyncpg)."""
        parts = query.split("%s")
        return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))


_STATUSES = ("active", "trial", "past_due", "canceled")
STATUSES = _STATUSES

# Rows made by the server: much faster than sending them, and the same for every contender.
_GENERATE = """
INSERT INTO {table} (id, created_at, modified_at, deleted_at, metadata, name, status, price,
                     quantity, active)
SELECT gen_random_uuid()::text, ts, ts + random() * interval '30 days', NULL,
       jsonb_build_object(
           'plan', jsonb_build_object('tier', (ARRAY['free','pro','team','enterprise'])[1 + i % 4],
                                      'seats', 1 + i % 50),
           'tags', jsonb_build_array('t' || (i % 7), 't' || (i % 11)),
           'source', (ARRAY['web','api','import'])[1 + i % 3]),
       'Item ' || i || ' ' || left(md5(i::text), 16),
       (ARRAY['active','trial','past_due','canceled'])[1 + (i * 7) % 4],
       round((random() * 1000)::numeric, 2),
       (random() * 100)::int,
       random() < 0.8
FROM (SELECT i, now() - random() * interval '365 days' AS ts FROM generate_series(1, {n}) i) s
"""


def load(url: str, *, fetch_rows: int, stream_rows: int, write_rows: int, wallets: int) -> None:
    """Create the schema and fill the tables (in the database at `url`, which should be empty)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in nx.create_statements([bench]):
            conn.execute(statement)  # DDL text from our declarations
        conn.execute("SELECT setseed(0.42)")
        for table, n in (
            (SQL.item, fetch_rows),
            (SQL.write, write_rows),
            (SQL.stream, stream_rows),
        ):
            conn.execute(_GENERATE.format(table=table, n=int(n)).encode())
        conn.execute(
            f"INSERT INTO {SQL.wallet} (id, owner, currency, balance) "
            "SELECT gen_random_uuid()::text, 'owner ' || i, 'EUR', 1000000 "
            f"FROM generate_series(1, {int(wallets)}) i".encode()
        )
        conn.execute(f"VACUUM ANALYZE {SQL.item}".encode())
        for table in (SQL.write, SQL.stream, SQL.wallet, SQL.bulk):
            conn.execute(f"VACUUM ANALYZE {table}".encode())


def ids(url: str, table: str) -> list[str]:
    """Every id in a table (``table`` is one of the `SQL` names)."""
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id".encode())]


def make_rows(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """`n` new item rows as dicts of the insert columns (fresh uuid ids, varied values)."""
    rows = []
    for _ in range(n):
        i = rng.randrange(1_000_000)
        rows.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "metadata": {
                    "plan": {"tier": ("free", "pro", "team", "enterprise")[i % 4], "seats": i % 50},
                    "tags": [f"t{i % 7}", f"t{i % 11}"],
                    "source": ("web", "api", "import")[i % 3],
                },
                "name": f"Item {i} {rng.getrandbits(64):016x}",
                "status": _STATUSES[i % 4],
                "price": Decimal(rng.randrange(100_000)) / 100,
                "quantity": rng.randrange(100),
                "active": rng.random() < 0.8,
            }
        )
    return rows


_TIERS = ("free", "pro", "team", "enterprise")
_SOURCES = ("web", "api", "import")
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def import_rows(n: int, seed: int = 11) -> Iterator[tuple[Any, ...]]:
    """An import job's rows, made as they are consumed: `n` tuples in `BULK_COLUMNS` order
    (fresh uuid, timestamps, no ``deleted_at``, a small nested jsonb object, text, numeric,
    integer, boolean). The same `seed` gives the same rows, so every contender of the bulk
    insert consumes exactly the same input, produced inside its timed region."""
    rng = random.Random(seed)
    bits, below, chance = rng.getrandbits, rng.randrange, rng.random
    make_id, second = uuid.UUID, timedelta(seconds=1)
    created = _EPOCH
    for _ in range(n):
        i = below(1_000_000)
        created += second
        yield (
            str(make_id(int=bits(128), version=4)),
            created,
            created,
            None,
            {
                "plan": {"tier": _TIERS[i % 4], "seats": i % 50},
                "tags": [f"t{i % 7}", f"t{i % 11}"],
                "source": _SOURCES[i % 3],
            },
            f"Item {i} {bits(64):016x}",
            _STATUSES[i % 4],
            Decimal(below(100_000)) / 100,
            below(100),
            chance() < 0.8,
        )


def as_tuples(rows: list[dict[str, Any]], *, wrap_json: bool) -> list[tuple[Any, ...]]:
    """Rows as tuples in `INSERT_COLUMNS` order; ``wrap_json`` wraps jsonb for psycopg."""
    out = []
    for row in rows:
        values = [row[c] for c in INSERT_COLUMNS]
        if wrap_json:
            values[1] = Jsonb(values[1])
        out.append(tuple(values))
    return out


def copy_rows(conn: psycopg.Connection[Any], statement: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows with COPY on an autocommit connection (untimed set-up, e.g. the rows the
    delete scenario deletes)."""
    with conn.transaction(), conn.cursor() as cur, cur.copy(statement.encode()) as copy:
        for row in as_tuples(rows, wrap_json=True):
            copy.write_row(row)


def truncate(conn: psycopg.Connection[Any], table: str) -> None:
    """Empty a table (untimed set-up) on an autocommit connection."""
    conn.execute(f"TRUNCATE {table}".encode())
