"""Generated statements rearranged so that a migration runs on a live database without taking it
down: the steps of a migration file.

On tables that already exist (a table created by the same migration is empty: its statements
stay as they are):

- a new index is built ``CREATE INDEX CONCURRENTLY IF NOT EXISTS``, in a step that runs outside
  a transaction (writes go on during the build) — except on a partitioned table, where
  PostgreSQL refuses ``CONCURRENTLY``: a plain ``CREATE INDEX`` builds it on every partition,
  blocking writes meanwhile (a ``long-lock`` hazard that says how to avoid it);
- a new unique or primary key constraint is attached to such an index (``USING INDEX``);
- a new foreign key or CHECK is added ``NOT VALID`` (a short lock) and validated in a later
  transaction of its own (the scan then blocks neither reads nor writes);
- ``SET NOT NULL`` goes through ``CHECK (col IS NOT NULL) NOT VALID``, validated, after which
  PostgreSQL 12+ sets NOT NULL without a scan, and the CHECK is dropped;
- a comment on an index built concurrently, or on a constraint attached after the indexes,
  comes after it.

Every transactional step runs with a ``lock_timeout`` set by ``nxdata migrate`` (retried with a
backoff): no statement queues the application behind it for long.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..table import _quote
from .hazards import parse
from .inspect import TableKey, TargetState

try:
    from pglast.enums.parsenodes import AlterTableType, ConstrType, ObjectType
except ImportError:  # pragma: no cover - hazards raised the clear error already
    raise

__all__ = ["Step", "plan_steps"]


@dataclass(frozen=True, slots=True)
class Step:
    """Statements that run together: in one transaction, or (``transaction=False``) one by one
    outside any, for ``CONCURRENTLY`` work."""

    statements: tuple[str, ...]
    transaction: bool = True


_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+", re.IGNORECASE)


def _concurrent(statement: str) -> str:
    """``CREATE [UNIQUE] INDEX name ON ...`` → ``... INDEX CONCURRENTLY IF NOT EXISTS name ...``
    (pg_get_indexdef's form, which migra prints)."""
    return _CREATE_INDEX.sub(
        lambda m: f"CREATE {m.group(1) or ''}INDEX CONCURRENTLY IF NOT EXISTS ", statement, count=1
    )


def _not_null_check_name(key: TableKey, column: str) -> str:
    name = f"NN_{key[1]}_{column}"
    if len(name.encode()) > 63:
        name = "NN_" + hashlib.sha256(f"{key[1]}.{column}".encode()).hexdigest()[:20]
    return name


def plan_steps(statements: Sequence[str], state: TargetState) -> list[Step]:
    """The steps of a migration: `statements` (as the diff gives them, in order) rearranged for
    tables that exist in `state`, see the module docstring. Same input, same steps."""
    main: list[str] = []
    concurrent: list[str] = []
    attach: list[str] = []
    validates: list[str] = []
    finish: list[str] = []
    created: set[TableKey] = set()
    built: set[tuple[str, ...]] = set()  # (schema, name) of the indexes built concurrently
    attached: set[tuple[str, ...]] = set()  # (schema, table, name) of constraints attached

    def exists(key: TableKey) -> bool:
        return key in state.tables and key not in created

    for statement in statements:
        parsed = parse(statement)
        if len(parsed) != 1:
            main.append(statement)
            continue
        stmt = parsed[0]
        kind = type(stmt).__name__
        if kind == "CreateStmt":
            created.add(_table(stmt.relation))
            main.append(statement)
        elif _distributes(statement):
            # Citus distributes a table with its keys (attached below) and before its foreign
            # keys: it comes where the diff put it among those.
            attach.append(statement)
        elif (
            kind == "IndexStmt"
            and not stmt.concurrent
            and exists(_table(stmt.relation))
            and _table(stmt.relation) not in state.partitioned
        ):
            # (PostgreSQL builds no index CONCURRENTLY on a partitioned table: see the hazard.)
            concurrent.append(_concurrent(statement))
            built.add((_table(stmt.relation)[0], str(stmt.idxname)))
        elif kind == "CommentStmt" and stmt.objtype in _COMMENTED_LATER:
            names = tuple(str(getattr(p, "sval", "")) for p in stmt.object or ())
            if len(names) == _COMMENTED_LATER[stmt.objtype] - 1:
                names = ("public", *names)
            later = built if stmt.objtype == ObjectType.OBJECT_INDEX else attached
            (attach if names in later else main).append(statement)
        elif kind == "AlterTableStmt" and len(stmt.cmds or ()) == 1:
            key = _table(stmt.relation)
            cmd = stmt.cmds[0]
            sub = cmd.subtype
            if sub == AlterTableType.AT_AddConstraint and (
                cmd.def_.contype == ConstrType.CONSTR_FOREIGN or cmd.def_.indexname
            ):
                attach.append(statement)  # after the unique indexes it may need
                attached.add((*key, str(cmd.def_.conname)))
            elif sub == AlterTableType.AT_ValidateConstraint and exists(key):
                validates.append(statement)
            elif sub == AlterTableType.AT_ValidateConstraint:
                attach.append(statement)  # a new table is empty: validated at once
            elif sub == AlterTableType.AT_SetNotNull and exists(key):
                table = f"{_quote(key[0])}.{_quote(key[1])}"
                check = _quote(_not_null_check_name(key, cmd.name))
                main.append(
                    f"ALTER TABLE {table} ADD CONSTRAINT {check} "
                    f"CHECK ({_quote(cmd.name)} IS NOT NULL) NOT VALID;"
                )
                validates.append(f"ALTER TABLE {table} VALIDATE CONSTRAINT {check};")
                finish.append(statement)
                finish.append(f"ALTER TABLE {table} DROP CONSTRAINT {check};")
            else:
                main.append(statement)
        else:
            main.append(statement)
    if not concurrent:  # nothing to wait for: one transaction, as the diff gave them
        main, attach = main + attach, []
    steps = [Step(tuple(main))] if main else []
    if concurrent:
        steps.append(Step(tuple(concurrent), transaction=False))
    if attach:
        steps.append(Step(tuple(attach)))
    steps += [Step((statement,)) for statement in validates]  # one transaction each
    if finish:
        steps.append(Step(tuple(finish)))
    return steps


# Comments that may name what a later step makes: (kind, how many names identify it).
_COMMENTED_LATER = {ObjectType.OBJECT_INDEX: 2, ObjectType.OBJECT_TABCONSTRAINT: 3}


def _distributes(statement: str) -> bool:
    """Whether `statement` is one of `nxdata.citus`'s (see `nxdata.migrations.citus`)."""
    return statement.startswith("DO $nxdata_citus$") or statement.startswith(
        "SELECT alter_distributed_table("
    )


def _table(relation: object) -> TableKey:
    return (
        getattr(relation, "schemaname", None) or "public",
        str(getattr(relation, "relname", "")),
    )
