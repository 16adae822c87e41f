"""How a call finds its transaction: the one passed as ``transaction=``, else the *ambient* one
(the innermost `db.transaction()` block open in this thread or task), else none — or none on
purpose, with ``transaction=nx.AUTOCOMMIT``.

>>> with db.transaction():
...     orders.create(order)                        # joins the block's transaction
...     audit.create(entry, transaction=nx.AUTOCOMMIT)  # committed now, whatever happens next
"""

from __future__ import annotations

from typing import Final, final

__all__ = ["AUTOCOMMIT", "Autocommit"]


@final
class Autocommit:
    """The type of `AUTOCOMMIT` (one instance)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "nx.AUTOCOMMIT"

    def __reduce__(self) -> str:
        return "AUTOCOMMIT"


AUTOCOMMIT: Final = Autocommit()
"""``transaction=nx.AUTOCOMMIT``: run this call on a connection of its own, outside the ambient
transaction, committed at once (an audit row that must survive a rollback, a progress marker)."""
