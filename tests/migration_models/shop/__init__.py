"""Two schemas with a cross-schema foreign key, identity, partial and gin indexes,
a foreign key to a unique constraint, a check, an enum check, a comment; and seed processes."""

from .tables import catalog, sales

__all__ = ["catalog", "sales"]
