"""Diffing a database against the declarations with migra, plus nxdata's fixes on top.

migra (archived upstream, pinned) compares two live databases schema by schema. We hand it the
target and the throwaway database built from the declarations, then correct what it gets wrong
for the SQL our declarations produce:

- **extensions**: with ``schema=`` migra skips extensions (they live in ``public``), so a schema
  that declares ``extensions=("citext",)`` would get a migration that fails on a fresh database.
  We drop migra's own extension statements (they pin the server's version, e.g. ``version '1.6'``)
  and put ``CREATE EXTENSION IF NOT EXISTS`` first for each declared extension the target lacks.
- **foreign keys after the keys they reference**: migra adds constraints in name order, so
  ``FK_...`` comes before ``UQ_...`` and a foreign key to a unique constraint added in the same
  file fails. We move foreign-key additions (and their ``VALIDATE``) to the end.
- **comments, sequence options, FORCE ROW LEVEL SECURITY, privileges**: migra compares none
  of these (its privileges cover tables only); `catalog` compares them from the catalogs.
- **objects made outside the declarations**: migra drops every index, view, function, trigger,
  policy or grant the declarations lack. A drop of one that no declaration owns and no generated
  migration created is an ``drops-object`` hazard (refused without ``--unsafe``); objects matching
  an `Unmanaged` pattern are left out of the diff altogether.
- **roles**: a grant or policy naming a declared `Role` is preceded by its idempotent creation.
- **identity added to an existing column**: migra's ``ADD GENERATED ... AS IDENTITY`` starts the
  sequence at 1, so the next insert collides with the rows already there; we add a ``setval`` to
  one past the column's maximum.
- **nxdata's journal schema** is never diffed (only declared schemas are, and the journal's name
  is reserved).

Every statement ends with ``;`` and statements are separated by one blank line, so the same
inputs give byte-identical text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ..config import sqlalchemy_url
from ..errors import MigrationError
from ..objects import Role, Unmanaged
from ..table import Schema, _quote
from ._extras import missing_extras
from .catalog import (
    Ownership,
    column_dependents,
    comment_statements,
    declared_objects,
    dropped_objects,
    generated_objects,
    privilege_statements,
    recreated_index_statements,
    recreated_objects,
    rls_force_statements,
    sequence_statements,
    view_option_statements,
)
from .hazards import RECIPES, Hazard, UnsafeStatement, classify
from .inspect import target_state
from .online import Step, plan_steps
from .renames import Renames, fold_renames
from .throwaway import connect

try:  # the optional diff tools: a clear message, not a ModuleNotFoundError
    from pglast import parse_sql
    from pglast.enums.parsenodes import AlterTableType, ConstrType, ObjectType
    from pglast.parser import ParseError
except ImportError as exc:
    raise missing_extras(exc) from None

__all__ = [
    "SchemaDiff",
    "count_failing_rows",
    "diff_databases",
    "schema_dependencies",
    "schema_order",
]


@dataclass(frozen=True, slots=True)
class SchemaDiff:
    """The statements that bring one schema of the target to its declared state, the steps they
    run in (`online.plan_steps`), and their hazards on the target (`hazards.classify`)."""

    schema: str
    statements: tuple[str, ...]
    unsafe: tuple[UnsafeStatement, ...] = ()
    depends_on: tuple[str, ...] = field(default=())
    steps: tuple[Step, ...] = ()
    hazards: tuple[Hazard, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the schema already matches its declaration."""
        return not self.statements

    @property
    def sql(self) -> str:
        """The statements as one script (no header), with step lines when there are several
        steps or one outside a transaction."""
        if not self:
            return ""
        steps = self.steps or (Step(self.statements),)
        if len(steps) == 1 and steps[0].transaction:
            return _script(steps[0].statements)
        parts = []
        for number, step in enumerate(steps, start=1):
            marker = f"-- nxdata: step {number}" + ("" if step.transaction else ", no transaction")
            parts.append(marker + "\n" + _script(step.statements))
        return "\n".join(parts)

    def __bool__(self) -> bool:
        return bool(self.statements)


@contextmanager
def _sqlalchemy_connection(url: str) -> Iterator[Any]:
    # Our own engine with NullPool rather than sqlbag.S: sqlbag caches one engine (and its pooled
    # connections) per URL forever, which keeps sessions open on the throwaway database.
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool
    except ImportError as exc:
        raise missing_extras(exc) from None
    # With only pg_catalog on the search path, PostgreSQL qualifies every name it prints
    # (pg_get_constraintdef, pg_get_indexdef, defaults), so the generated SQL does not depend on
    # the search_path of whoever applies it: `REFERENCES public."Merchant"`, not `"Merchant"`.
    engine = create_engine(
        sqlalchemy_url(url),
        poolclass=NullPool,
        connect_args={"options": "-c search_path=pg_catalog"},
    )
    try:
        with engine.connect() as conn:
            yield conn
            conn.rollback()  # read-only: nothing to keep
    finally:
        engine.dispose()


def schema_dependencies(schema: Schema) -> set[str]:
    """Other schemas this one's foreign keys point into."""
    return {
        fk.target.schema.name
        for table in schema.tables.values()
        for fk in table.foreign_keys
        if fk.target.schema.name != schema.name
    }


def schema_order(schemas: Sequence[Schema]) -> list[Schema]:
    """Schemas with the ones they reference first; ties (and cycles) broken by name."""
    pending = {s.name: s for s in schemas}
    deps = {s.name: schema_dependencies(s) & set(pending) for s in schemas}
    out: list[Schema] = []
    while pending:
        ready = sorted(n for n in pending if not (deps[n] & set(pending)))
        if not ready:
            ready = [min(pending)]  # a cycle: take the first by name
        for name in ready:
            out.append(pending.pop(name))
    return out


def _script(statements: Sequence[str]) -> str:
    return "".join(s + "\n\n" for s in statements).rstrip("\n") + "\n"


def _normalize(statement: str) -> str:
    text = "\n".join(line.rstrip() for line in statement.strip().splitlines())
    return text if text.endswith(";") else text + ";"


def _parse(statement: str) -> Any | None:
    try:
        parsed = parse_sql(statement)
    except ParseError as exc:
        raise MigrationError(
            f"migra produced SQL that does not parse ({exc}): {statement}"
        ) from exc
    return parsed[0].stmt if parsed else None


def _is_extension(stmt: Any) -> bool:
    kind = type(stmt).__name__
    if kind in ("CreateExtensionStmt", "AlterExtensionStmt"):
        return True
    return kind == "DropStmt" and stmt.removeType == ObjectType.OBJECT_EXTENSION


def _is_foreign_key(stmt: Any) -> bool:
    if type(stmt).__name__ != "AlterTableStmt":
        return False
    for cmd in stmt.cmds or ():
        if cmd.subtype == AlterTableType.AT_ValidateConstraint:
            return True
        if (
            cmd.subtype == AlterTableType.AT_AddConstraint
            and getattr(cmd.def_, "contype", None) == ConstrType.CONSTR_FOREIGN
        ):
            return True
    return False


def _identity_restarts(stmt: Any) -> list[str]:
    """``setval`` after ``ADD GENERATED ... AS IDENTITY`` on an existing column: the new sequence
    starts at 1 and would collide with the values already in the column."""
    if type(stmt).__name__ != "AlterTableStmt":
        return []
    out = []
    for cmd in stmt.cmds or ():
        if cmd.subtype == AlterTableType.AT_AddIdentity:
            table = (
                f"{_quote(stmt.relation.schemaname or 'public')}.{_quote(stmt.relation.relname)}"
            )
            literal = "'" + table.replace("'", "''") + "'"
            column = _quote(cmd.name)
            out.append(
                f"SELECT setval(pg_get_serial_sequence({literal}, '{cmd.name}'), "
                f"coalesce(max({column}), 0) + 1, false) FROM {table};"
            )
    return out


def _fix_statements(statements: Sequence[str]) -> list[str]:
    front: list[str] = []
    foreign_keys: list[str] = []
    for statement in statements:
        stmt = _parse(statement)
        if stmt is None or _is_extension(stmt):
            continue
        statement = _without_truncating_cast(stmt, statement)
        (foreign_keys if _is_foreign_key(stmt) else front).append(statement)
        front += _identity_restarts(stmt)
    return front + foreign_keys


_TRUNCATING_TYPES = frozenset({"varchar", "bpchar", "bit", "varbit"})
_USING = re.compile(r"\s+using\s+.*;$", re.IGNORECASE | re.DOTALL)


def _without_truncating_cast(stmt: Any, statement: str) -> str:
    """migra writes ``ALTER COLUMN c TYPE varchar(5) USING c::varchar(5)``: an explicit cast to
    a shorter ``varchar``/``char``/``bit`` *truncates* values silently, where the assignment
    cast the plain ``ALTER ... TYPE`` uses fails on them. The ``USING`` goes."""
    if type(stmt).__name__ != "AlterTableStmt" or len(stmt.cmds or ()) != 1:
        return statement
    cmd = stmt.cmds[0]
    if cmd.subtype != AlterTableType.AT_AlterColumnType:
        return statement
    using: Any = getattr(cmd.def_, "raw_default", None)
    if type(using).__name__ != "TypeCast" or type(using.arg).__name__ != "ColumnRef":
        return statement
    fields = [getattr(f, "sval", None) for f in using.arg.fields]
    names = [getattr(n, "sval", "") for n in using.typeName.names]
    if fields != [cmd.name] or not names or names[-1] not in _TRUNCATING_TYPES:
        return statement
    return _USING.sub(";", statement)


def _installed_extensions(conn: psycopg.Connection[Any]) -> set[str]:
    return {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}


def count_failing_rows(
    url: str, hazards: Sequence[Hazard], *, timeout: float = 120
) -> list[Hazard]:
    """`hazards` with the rows each ``fails-on-data`` check counts on the target (read only, each
    query bounded by `timeout` seconds); a check that cannot run (it names a column the same
    migration adds) leaves ``rows`` None."""
    out = []
    with connect(url) as conn:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false)", [str(int(timeout * 1000))]
        )
        for hazard in hazards:
            if hazard.kind != "fails-on-data" or hazard.check is None:
                out.append(hazard)
                continue
            try:
                row = conn.execute(hazard.check).fetchone()
            except psycopg.Error:
                out.append(hazard)
                continue
            out.append(hazard.counted(int(row[0]) if row is not None else None))
    return out


def _unsafe(hazards: Sequence[Hazard]) -> list[UnsafeStatement]:
    """The data-loss hazards, one per statement."""
    out: list[UnsafeStatement] = []
    seen: set[str] = set()
    for hazard in hazards:
        if hazard.kind == "data-loss" and hazard.statement not in seen:
            seen.add(hazard.statement)
            out.append(UnsafeStatement(hazard.statement, hazard.reason))
    return out


def diff_databases(
    target_url: str,
    declared_url: str,
    schemas: Sequence[Schema],
    *,
    renames: Renames | None = None,
    migrations: Path | None = None,
    unmanaged: Sequence[Unmanaged] = (),
) -> list[SchemaDiff]:
    """One `SchemaDiff` per schema (in `schema_order`), from the target to the declared database.

    `declared_url` is a database built from the declarations (see `throwaway_database`), with
    the old names of `renames` given back; their ``RENAME`` statements end each schema's diff.
    Objects matching `unmanaged` (or a schema's own `Schema.unmanaged` patterns) are left out;
    a drop of one that the declarations do not hold and no generated file of `migrations`
    created is an ``drops-object`` hazard.
    """
    renames = renames or Renames()
    try:
        from migra import Migration  # type: ignore[import-untyped]
    except ImportError as exc:
        raise missing_extras(exc) from None
    out: list[SchemaDiff] = []
    generated = generated_objects(migrations)
    with (
        connect(target_url) as target,
        connect(declared_url) as declared,
        _sqlalchemy_connection(target_url) as sa_target,
        _sqlalchemy_connection(declared_url) as sa_declared,
    ):
        installed = _installed_extensions(target)
        state = target_state(target)
        for schema in schema_order(schemas):
            migration = Migration(sa_target, sa_declared, schema=schema.name)
            migration.set_safety(False)  # we classify destructive statements ourselves
            migration.add_all_changes()
            statements = _fix_statements([_normalize(s) for s in migration.statements])
            statements = fold_renames(statements, target)
            before, after = column_dependents(target, declared, schema.name, statements)
            if before:
                first = next(
                    (i for i, s in enumerate(statements) if "set data type" in s.lower()),
                    len(statements),
                )
                statements = statements[:first] + before + statements[first:]
            statements += after
            recreated = recreated_objects(statements)
            statements += recreated_index_statements(declared, recreated, statements)
            statements += sequence_statements(target, declared, schema.name)
            statements += rls_force_statements(target, declared, schema.name)
            statements += view_option_statements(target, declared, schema.name, statements)
            statements += comment_statements(target, declared, schema.name, recreated=recreated)
            grants, revokes = privilege_statements(
                target, declared, schema.name, recreated=recreated
            )
            statements += grants
            ownership = Ownership(
                declared_objects(declared, schema.name),
                generated,
                (*unmanaged, *getattr(schema, "unmanaged_objects", ())),
            )
            statements, unowned = _ownership(statements, ownership, revokes)
            statements = _roles_first(statements, getattr(schema, "roles", ()))
            statements += renames.statements(schema.name)
            missing = [e for e in schema.extensions if e not in installed]
            if missing:
                statements = [
                    f"CREATE EXTENSION IF NOT EXISTS {_quote(e)} WITH SCHEMA public;"
                    for e in sorted(missing)
                ] + statements
            steps = plan_steps(statements, state)
            hazards = unowned + classify(
                [s for step in steps for s in step.statements],
                state,
                steps=[step.statements for step in steps if step.transaction],
            )
            unsafe = _unsafe(hazards)
            out.append(
                SchemaDiff(
                    schema.name,
                    tuple(statements),
                    tuple(unsafe),
                    tuple(sorted(schema_dependencies(schema))),
                    tuple(steps),
                    tuple(hazards),
                )
            )
    return out


def _ownership(
    statements: Sequence[str], ownership: Ownership, revokes: Sequence[Any]
) -> tuple[list[str], list[Hazard]]:
    """`statements` without those that drop or revoke what `ownership` leaves alone, and a
    ``drops-object`` hazard for each that drops a view, function, trigger, policy, sequence,
    grant or row-level security the declarations no longer hold (an index or a constraint only
    when no generated migration created it: removing a declared index is routine)."""
    revoked = {p.statement(revoke=True): p for p in revokes}
    kept: list[str] = []
    hazards: list[Hazard] = []
    for statement in statements:
        privilege = revoked.get(statement)
        if privilege is not None:
            if ownership.leaves_alone(("grant", privilege.role)):
                continue
            granted = {
                ("grant", f"{privilege.identity} {privilege.privilege} {privilege.role}"),
                ("grant", f"{privilege.identity} all {privilege.role}"),
            }
            what = f"revokes {privilege.privilege} on {privilege.identity} from {privilege.role}"
            hazards.append(_dropped(statement, what, generated=bool(granted & ownership.generated)))
            kept.append(statement)
            continue
        dropped = dropped_objects(statement)
        if dropped and all(ownership.leaves_alone(key) for key in dropped):
            continue
        for key in dropped:
            kind, identity = key
            if key in ownership.declared or ownership.leaves_alone(key):
                continue  # dropped to be created again, or left alone
            generated = key in ownership.generated
            if generated and kind in ("index", "constraint"):
                continue
            what = (
                f"switches off row level security on {identity}"
                if kind == "row level security"
                else f"drops {kind} {identity}"
            )
            hazards.append(_dropped(statement, what, generated=generated))
        kept.append(statement)
    return kept, hazards


def _dropped(statement: str, what: str, *, generated: bool) -> Hazard:
    if generated:
        return Hazard(
            "drops-object",
            statement,
            f"{what}, removed from the declarations",
            RECIPES["drop-declared"],
        )
    return Hazard(
        "drops-object",
        statement,
        f"{what}, which no declaration owns and no generated migration created (made by hand?)",
        RECIPES["drops-object"],
    )


def _roles_first(statements: Sequence[str], roles: Sequence[Role]) -> list[str]:
    """`statements`, preceded by the idempotent creation of each declared role they grant to or
    name in a policy: a fresh database gets the role from the migration itself."""
    named: set[str] = set()
    for statement in statements:
        named |= _roles_named(statement)
    return [r.create_statement() for r in roles if r.name in named] + list(statements)


def _roles_named(statement: str) -> set[str]:
    """Roles a ``GRANT`` gives to or a ``CREATE/ALTER POLICY`` applies to."""
    try:
        parsed = parse_sql(statement)
    except ParseError:
        return set()
    out: set[str] = set()
    for raw in parsed:
        stmt: Any = raw.stmt
        kind = type(stmt).__name__
        if kind == "GrantStmt" and stmt.is_grant:
            specs = stmt.grantees
        elif kind in ("CreatePolicyStmt", "AlterPolicyStmt"):
            specs = stmt.roles
        else:
            continue
        out |= {spec.rolename for spec in specs or () if getattr(spec, "rolename", None)}
    return out
