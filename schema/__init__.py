"""The reference schema: the platform's single database, 11 PostgreSQL schemas and 72 tables.

Each module declares one schema (``schema.licensing`` → ``licensing = Schema("licensing")``) and
its tables; `SCHEMAS` lists the 11 `Schema` objects in dependency order (a schema's foreign keys
point only at schemas before it)::

    from nxdata.ddl import create_sql
    from schema import SCHEMAS

    print(create_sql(SCHEMAS))
"""

from __future__ import annotations

from nxdata import Schema

from .allocation import allocation
from .finance import finance
from .identity import identity
from .inventory import inventory
from .ledger import ledger
from .licensing import licensing
from .outreach import outreach
from .payment import payment
from .pricing import pricing
from .public import public
from .sale import sale

__all__ = [
    "SCHEMAS",
    "allocation",
    "finance",
    "identity",
    "inventory",
    "ledger",
    "licensing",
    "outreach",
    "payment",
    "pricing",
    "public",
    "sale",
]

SCHEMAS: tuple[Schema, ...] = (
    public,
    identity,
    pricing,
    inventory,
    allocation,
    sale,
    finance,
    payment,
    ledger,
    licensing,
    outreach,
)
"""The 11 schemas in dependency order."""
