"""Relations (`include`), keyset pages (`find_page`, cursors) and aggregates, on real
PostgreSQL: belongs-to and has-many, nested, scoped per relation with per-parent limits, one
query per relation level, client policies and tenant scopes applied to included tables; cursors
that page exactly like offset does, through an index (EXPLAIN); counts, sums and groups."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import psycopg
import pytest

import nxdata as nx
from nxdata import Database
from nxdata.ddl import create_statements
from nxdata.errors import FilterError, ValidationError

Conn = psycopg.Connection[Any]


@dataclass
class Shop:
    schema: nx.Schema
    Customer: Any
    Order: Any
    Item: Any
    Product: Any


def make_shop(name: str) -> Shop:
    schema = nx.Schema(name)

    @schema.table("Customer")
    class Customer(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        name: str
        tenant: str = "t1"
        secret: Annotated[str, nx.Column(hidden=True)] = "s3cr3t"

    @schema.table("Product")
    class Product(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        title: str

    @schema.table(
        "Order",
        foreign_keys=[nx.ForeignKey("customer_id", Customer)],
        indexes=[nx.Index("placed_at", "id")],
    )
    class Order(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        customer_id: int
        placed_at: datetime
        total: nx.Money
        tenant: str = "t1"
        note: str | None = None

    @schema.table(
        "Item",
        foreign_keys=[
            nx.ForeignKey("order_id", Order, relation="order", inverse="items"),
            nx.ForeignKey("product_id", Product),
        ],
    )
    class Item(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        order_id: int
        product_id: int
        qty: int
        tenant: str = "t1"

    return Shop(schema, Customer, Order, Item, Product)


BASE = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def shop(conn: Conn, schema_name: str, db: Database) -> Iterator[Shop]:
    s = make_shop(schema_name)
    for statement in create_statements([s.schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    nx.Repository(db, s.Product).create_all([{"id": i, "title": f"p{i}"} for i in (1, 2, 3)])
    nx.Repository(db, s.Customer).create_all(
        [
            {"id": 1, "name": "ann"},
            {"id": 2, "name": "bob"},
            {"id": 3, "name": "cy", "tenant": "t2"},
        ]
    )
    orders = [
        {
            "id": i,
            "customer_id": 1 + i % 3,
            "placed_at": BASE + timedelta(hours=i % 7),
            "total": Decimal(i),
            "tenant": "t2" if i % 3 == 2 else "t1",
        }
        for i in range(1, 31)
    ]
    nx.Repository(db, s.Order).create_all(orders)
    items = [
        {
            "id": 100 * o + k,
            "order_id": o,
            "product_id": 1 + k % 3,
            "qty": k,
            "tenant": "t2" if o % 3 == 2 else "t1",
        }
        for o in range(1, 31)
        for k in range(1, 1 + o % 4)
    ]
    nx.Repository(db, s.Item).create_all(items)
    yield s


# -- include --------------------------------------------------------------------------------------


def test_relations_come_from_the_declared_foreign_keys(shop: Shop) -> None:
    from nxdata.relations import relations

    order = relations(nx.table_of(shop.Order))
    assert {n: r.kind for n, r in order.items()} == {"customer": "belongs_to", "items": "has_many"}
    assert set(relations(nx.table_of(shop.Customer))) == {"orders"}
    assert set(relations(nx.table_of(shop.Item))) == {"order", "product"}
    assert set(relations(nx.table_of(shop.Product))) == {"items"}


def test_include_belongs_to_and_has_many_nested_in_one_query_per_level(
    db: Database, shop: Shop
) -> None:
    orders = nx.Repository(db, shop.Order)
    with db.watch_queries() as events:
        found = orders.find(
            {
                "where": {"id": {"inq": [1, 2, 3, 5]}},
                "order": ["id"],
                "include": [
                    "customer",
                    {"relation": "items", "scope": {"order": ["qty DESC"], "include": ["product"]}},
                ],
            }
        )
    assert len(events) == 4  # orders, their customers, their items, the items' products
    assert [e.method for e in events] == [
        "find",
        "include customer",
        "include items",
        "include product",
    ]
    assert [o.id for o in found] == [1, 2, 3, 5]
    assert [o.customer.name for o in found] == ["bob", "cy", "ann", "cy"]
    assert [[i.qty for i in o.items] for o in found] == [[1], [2, 1], [3, 2, 1], [1]]
    assert found[2].items[0].product.title == "p1"  # qty 3 → product 1
    assert found[0].customer.secret is msgspec.UNSET  # hidden: never returned unless named
    assert isinstance(found[0], shop.Order)  # a subclass: every field of the row is there


def test_a_has_many_limit_applies_to_each_parent(db: Database, shop: Shop) -> None:
    customers = nx.Repository(db, shop.Customer)
    found = customers.find(
        {
            "order": ["id"],
            "include": [
                {
                    "relation": "orders",
                    "scope": {"order": ["total DESC"], "limit": 2, "fields": ["id", "total"]},
                }
            ],
        }
    )
    assert [[o.id for o in c.orders] for c in found] == [[30, 27], [28, 25], [29, 26]]
    assert found[0].orders[0].note is msgspec.UNSET  # fields apply
    second = customers.find(
        {
            "order": ["id"],
            "include": [
                {"relation": "orders", "scope": {"order": ["total DESC"], "limit": 2, "offset": 2}}
            ],
        }
    )
    assert [[o.id for o in c.orders] for c in second] == [[24, 21], [22, 19], [23, 20]]


def test_include_works_with_find_one_find_by_id_and_empty_results(db: Database, shop: Shop) -> None:
    orders = nx.Repository(db, shop.Order)
    one = orders.find_one({"where": {"id": 4}, "include": ["items", "customer"]})
    assert one is not None and len(one.items) == 0 and one.customer.id == 2
    by_id = orders.find_by_id(7, {"include": ["items"]})
    assert by_id is not None and [i.id for i in by_id.items] == [701, 702, 703]
    assert orders.find({"where": {"id": -1}, "include": ["items"]}) == []


def test_include_errors_name_the_part(db: Database, shop: Shop) -> None:
    orders = nx.Repository(db, shop.Order)
    with pytest.raises(FilterError, match=r"at include\[1\]: unknown relation 'itemz' \(one of"):
        orders.find({"include": ["customer", "itemz"]})
    with pytest.raises(FilterError, match=r"at include\[0\].scope.where.qtty"):
        orders.find({"include": [{"relation": "items", "scope": {"where": {"qtty": 1}}}]})
    with pytest.raises(FilterError, match="customer is one row per parent"):
        orders.find({"include": [{"relation": "customer", "scope": {"limit": 1}}]})
    with pytest.raises(FilterError, match="included twice"):
        orders.find({"include": ["items", "items"]})
    with pytest.raises(FilterError, match="nests more than 4 levels"):
        nested: Any = {"relation": "items", "scope": {}}
        deepest = nested
        for _ in range(5):
            relation = "order" if deepest["relation"] == "items" else "items"
            inner = {"relation": relation, "scope": {}}
            deepest["scope"]["include"] = [inner]
            deepest = inner
        orders.find({"include": [nested]})


def test_client_policies_and_tenant_scopes_reach_included_tables(db: Database, shop: Shop) -> None:
    closed = nx.Repository(db, shop.Order, policy=nx.FilterPolicy())
    with pytest.raises(FilterError, match=r"unknown relation 'items' \(none can be included\)"):
        closed.find({"include": ["items"]})  # a client may include nothing unless allowed
    opened = nx.Repository(
        db,
        shop.Order,
        policy=nx.FilterPolicy(
            include={
                "items": nx.FilterPolicy(filter=["qty"], fields=["id", "qty"], default_limit=1)
            }
        ),
    )
    with pytest.raises(FilterError, match="unknown relation 'customer'"):
        opened.find({"include": ["customer"]})  # answered like a relation that does not exist
    found = opened.find({"where": {"id": 7}, "include": ["items"]})
    assert [[i.qty for i in o.items] for o in found] == [[1]]  # default_limit per parent
    assert found[0].items[0].product_id is msgspec.UNSET  # the related policy's fields
    with pytest.raises(FilterError, match=r"include\[0\].scope.where.product_id"):
        opened.find({"include": [{"relation": "items", "scope": {"where": {"product_id": 1}}}]})

    tenant = nx.Repository(db, shop.Order).scoped(tenant="t1")
    rows = tenant.find({"include": ["items"]})
    assert rows and all(o.tenant == "t1" for o in rows)
    assert all(i.tenant == "t1" for o in rows for i in o.items)


def test_rows_as_gives_the_relations_their_types(db: Database, shop: Shop) -> None:
    class OrderView(shop.Order, kw_only=True):  # type: ignore[misc, name-defined]
        items: list[Any] = []
        customer: Any = None

    found = nx.Repository(db, shop.Order).find({"where": {"id": 3}, "include": ["items"]})
    [view] = nx.rows_as(OrderView, found)
    assert isinstance(view, OrderView) and len(view.items) == 3 and view.customer is None
    with pytest.raises(ValidationError, match="has no field 'items'"):
        nx.rows_as(shop.Order, found)


def test_query_decodes_a_join_into_any_struct(db: Database, shop: Shop) -> None:
    class Line(msgspec.Struct):
        order_id: int
        title: str
        qty: int

    s = shop.schema.name
    lines = nx.Repository(db, shop.Item).query(
        f'SELECT i.order_id, p.title, i.qty FROM "{s}"."Item" i '
        f'JOIN "{s}"."Product" p ON p.id = i.product_id WHERE i.order_id = %s ORDER BY i.qty',
        [3],
        row_type=Line,
    )
    assert lines == [Line(3, "p2", 1), Line(3, "p3", 2), Line(3, "p1", 3)]
    with pytest.raises(ValidationError, match="Expected `int`, got `str`"):
        nx.Repository(db, shop.Item).query(
            "SELECT 'x' AS order_id, 'a' AS title, 1 AS qty", row_type=Line
        )


# -- pages ----------------------------------------------------------------------------------------


def test_pages_by_cursor_walk_every_row_once_in_order(db: Database, shop: Shop) -> None:
    orders = nx.Repository(db, shop.Order)
    flt: dict[str, Any] = {"where": {"total": {"gt": 3}}, "order": ["placed_at DESC"], "limit": 4}
    seen: list[int] = []
    page = orders.find_page(flt, total="exact")
    assert page.total == 27
    while True:
        seen += [o.id for o in page.items]
        if page.next is None:
            break
        page = orders.find_page({**flt, "after": page.next})
    expected = [o.id for o in orders.find({**flt, "limit": 100, "order": ["placed_at DESC", "id"]})]
    assert seen == expected and len(seen) == 27
    assert orders.find_page({**flt, "limit": 27}).next is None  # exactly one page: no next


def test_cursors_refuse_what_they_cannot_page(db: Database, shop: Shop) -> None:
    orders = nx.Repository(db, shop.Order)
    page = orders.find_page({"order": ["placed_at"], "limit": 2})
    assert page.next is not None
    with pytest.raises(FilterError, match="made for another order"):
        orders.find_page({"order": ["total"], "limit": 2, "after": page.next})
    with pytest.raises(FilterError, match="not a cursor of this API"):
        orders.find_page({"order": ["placed_at"], "limit": 2, "after": "!!!"})
    forged = base64.urlsafe_b64encode(b'[["placed_at","id"],["yesterday",1]]').decode()
    with pytest.raises(FilterError, match="after"):
        orders.find_page({"order": ["placed_at"], "limit": 2, "after": forged})
    with pytest.raises(FilterError, match="note may be NULL"):
        orders.find_page({"order": ["note"], "limit": 2})
    with pytest.raises(FilterError, match="find_page needs a limit"):
        orders.find_page({"order": ["placed_at"]})


def test_the_cursor_is_a_row_comparison_an_index_serves(
    db: Database, shop: Shop, conn: Conn
) -> None:
    orders = nx.Repository(db, shop.Order)
    many = [
        {
            "id": 1000 + i,
            "customer_id": 1,
            "placed_at": BASE + timedelta(seconds=i),
            "total": Decimal(1),
        }
        for i in range(20_000)
    ]
    orders.create_all(many)
    conn.execute(f'ANALYZE "{shop.schema.name}"."Order"')
    page = orders.find_page({"order": ["placed_at", "id"], "limit": 20})
    statement = orders.compile({"order": ["placed_at", "id"], "limit": 20, "after": page.next})
    assert '("placed_at", "id") > (' in statement.sql
    plan = "\n".join(
        r[0] for r in conn.execute("EXPLAIN " + statement.sql, statement.params).fetchall()
    )
    assert 'Index Scan using "IDX_Order_placed_at_id"' in plan, plan
    assert "Index Cond: (ROW(placed_at, id) > ROW(" in plan, plan


def test_estimated_totals_come_from_the_planner(db: Database, shop: Shop, conn: Conn) -> None:
    conn.execute(f'ANALYZE "{shop.schema.name}"."Order"')
    page = nx.Repository(db, shop.Order).find_page({"limit": 5}, total="estimate")
    assert page.total is not None and 20 <= page.total <= 40  # 30 rows


# -- aggregates -----------------------------------------------------------------------------------


def test_aggregates_count_sum_and_group(db: Database, shop: Shop) -> None:
    orders = nx.Repository(db, shop.Order)
    [everything] = orders.aggregate(sum=["total"], avg=["total"], min=["placed_at"], max=["total"])
    assert everything == {
        "count": 30,
        "sum_total": Decimal("465.0000"),
        "avg_total": Decimal("15.5000000000000000"),
        "min_placed_at": BASE,
        "max_total": Decimal("30.0000"),
    }
    by_customer = orders.aggregate(
        {"total": {"gt": 10}}, group_by=["customer_id"], sum=["total"], order=["sum_total DESC"]
    )
    assert [(g["customer_id"], g["count"], g["sum_total"]) for g in by_customer] == [
        (1, 7, Decimal("147.0000")),
        (3, 7, Decimal("140.0000")),
        (2, 6, Decimal("123.0000")),
    ]
    client = nx.Repository(db, shop.Order, policy=nx.FilterPolicy(fields=["customer_id"]))
    with pytest.raises(FilterError, match=r"at sum\[0\]"):
        client.aggregate(sum=["total"])  # aggregated values are data: fields must allow them
    assert len(client.aggregate(group_by=["customer_id"], limit=2)) == 2
    with pytest.raises(FilterError, match="sum needs a number column"):
        orders.aggregate(sum=["tenant"])


def test_find_as_selects_only_the_fields_of_its_type(db: Database, shop: Shop) -> None:
    class Summary(msgspec.Struct):
        id: int
        total: Decimal

    orders = nx.Repository(db, shop.Order)
    with db.watch_queries() as events:
        found = orders.find_as(Summary, {"where": {"id": {"lte": 2}}, "order": ["id"]})
    assert found == [Summary(1, Decimal("1.0000")), Summary(2, Decimal("2.0000"))]
    assert events[0].sql.startswith('SELECT "id","total" FROM')
    with pytest.raises(FilterError, match="takes no fields"):
        orders.find_as(Summary, {"fields": ["id"]})

    class Wrong(msgspec.Struct):
        nope: int

    with pytest.raises(nx.errors.DeclarationError, match=r"Wrong\.nope is not a field"):
        orders.find_as(Wrong)


def test_keys_the_library_adds_need_no_policy(db: Database, shop: Shop) -> None:
    """A page's primary key and a has-many's default order are the library's, not the
    client's: a policy whose order list lacks them does not refuse them; a belongs-to is one
    row per parent, whatever the related policy's default_limit."""
    client = nx.Repository(
        db,
        shop.Order,
        policy=nx.FilterPolicy(
            order=["placed_at"],
            include={
                "items": nx.FilterPolicy(order=["qty"]),
                "customer": nx.FilterPolicy(default_limit=2),
            },
        ),
    )
    page = client.find_page({"order": ["placed_at"], "limit": 5, "include": ["customer", "items"]})
    assert len(page.items) == 5 and page.next is not None
    assert all(o.customer is not None for o in page.items)  # 5 parents, default_limit 2
    rest = client.find_page({"order": ["placed_at"], "limit": 5, "after": page.next})
    assert {o.id for o in rest.items}.isdisjoint({o.id for o in page.items})
    with pytest.raises(FilterError, match=r"at order\[1\]: unknown column 'id'"):
        client.find_page({"order": ["placed_at", "id"], "limit": 5})  # the client's "id": checked


def test_a_filters_json_error_names_its_part() -> None:
    with pytest.raises(FilterError) as info:
        nx.Filter.from_json(b'{"limit": "x"}')
    assert info.value.part == "limit"
    with pytest.raises(FilterError) as info:
        nx.Filter.from_json(b'{"limits": 5}')
    assert info.value.part == "limits"
