"""What a migration statement does to a live database, classified with PostgreSQL's own parser
(pglast): the hazards a reviewer must know before it runs, and the safe recipe for each.

Hazard kinds (each `Hazard` names its statement, the reason and the recipe):

- ``data-loss``: ``DROP`` of a table, column, schema, sequence, type, view, function...; a type
  change that can lose values (``text`` → ``varchar(5)``); ``TRUNCATE``, ``DELETE``.
- ``rewrite``: the table is rewritten under an ACCESS EXCLUSIVE lock: a type change that is not
  binary-coercible by PostgreSQL's rules (``integer`` → ``bigint`` is; ``varchar(10)`` →
  ``varchar(20)`` or ``text`` is not), a column added with a volatile default or an identity.
- ``long-lock``: a lock that blocks reads or writes for a whole scan: a plain ``CREATE INDEX`` on
  an existing table, a constraint added and validated at once, ``SET NOT NULL`` without a
  validated CHECK, ``VALIDATE`` in the transaction that added the constraint ``NOT VALID``.
- ``fails-on-data``: fails when existing rows do not fit: a ``NOT NULL`` column without a
  default, ``SET NOT NULL``, a new unique index, foreign key or CHECK on an existing table, an
  enum re-created without values that rows hold, a sequence whose range no longer holds its
  current value, a partition created (or attached) while rows of its range or values sit in the
  table's default partition (`data_checks` counts the rows that would fail).
- ``breaking``: code that is running now stops working: a dropped or renamed column or table,
  a dropped view, function or procedure.
- ``drops-object`` (found by ``nxdata diff``, which knows the declarations): a drop of a view,
  function, trigger, policy, sequence, grant or row-level security that the declarations no
  longer hold — removed from them, or (when no generated migration created it) made by hand;
  and of an index or constraint made by hand.

Only existing tables matter: a table created in the same migration is empty and new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..errors import MigrationError
from ..objects import sql_string
from ..table import _quote
from ._extras import missing_extras
from .files import ALLOW_NEEDED, HAZARD_KINDS
from .inspect import ColumnKey, TableKey, TargetState

try:  # the optional diff tools: a clear message, not a ModuleNotFoundError
    from pglast import parse_sql
    from pglast.enums.parsenodes import AlterTableType, ConstrType, ObjectType
    from pglast.parser import ParseError
    from pglast.stream import RawStream
except ImportError as exc:
    raise missing_extras(exc) from None

__all__ = [
    "ALLOW_NEEDED",
    "HAZARD_KINDS",
    "ColumnKey",
    "Hazard",
    "HazardKind",
    "TargetState",
    "UnsafeStatement",
    "classify",
    "is_widening",
    "normalize_type",
    "recreated_in",
    "rewrites",
    "unsafe_statements",
]

HazardKind = Literal[
    "data-loss", "rewrite", "long-lock", "fails-on-data", "breaking", "drops-object"
]

RECIPES: dict[str, str] = {
    "drop-column": (
        "deploy code that no longer reads or writes the column first, then drop it in a later "
        "migration; keep a backup (allow data-loss, breaking)"
    ),
    "drop": "make sure nothing uses it and its data is not needed, or back it up first",
    "narrow": (
        "add a new column of the new type, backfill it in batches (checking what does not "
        "fit), switch the code, then drop the old column"
    ),
    "rewrite": (
        "add a new column, backfill it in batches, switch the code, drop the old one; or "
        "accept the rewrite in a maintenance window (allow rewrite)"
    ),
    "volatile-default": (
        "add the column without a default (or with a constant one), backfill it in batches, "
        "then set the default"
    ),
    "index": "CREATE INDEX CONCURRENTLY, in a step outside a transaction (nxdata diff does)",
    "partitioned-constraint": (
        "on a partitioned table PostgreSQL builds a key's index under the lock, and adds a "
        "foreign key validated at once (no NOT VALID before PostgreSQL 18): apply it in a quiet "
        "hour (allow long-lock)"
    ),
    "partitioned-index": (
        "PostgreSQL builds no index CONCURRENTLY on a partitioned table: by hand, CREATE INDEX "
        "ON ONLY the parent, CREATE INDEX CONCURRENTLY on each partition, ALTER INDEX ... "
        "ATTACH PARTITION each one, then mark this migration applied; or accept the lock in a "
        "quiet hour (allow long-lock)"
    ),
    "constraint": (
        "add it NOT VALID, then VALIDATE it in a later transaction (nxdata diff does): the "
        "validation then blocks neither reads nor writes"
    ),
    "set-not-null": (
        "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it in another transaction, then SET "
        "NOT NULL, which PostgreSQL 12+ then does without a scan (nxdata diff does)"
    ),
    "validate-same-tx": "VALIDATE in a later transaction than the NOT VALID constraint",
    "not-null-column": (
        "add the column nullable or with a DEFAULT, backfill it in batches, then SET NOT NULL"
    ),
    "null-rows": "backfill the NULL rows first (in batches)",
    "bad-rows": "fix or delete the rows that violate it first; the data check counts them",
    "rename": (
        "expand and contract: add the new name, write both, move the readers, then drop the "
        "old one; or rename when no running code uses the old name"
    ),
    "drop-code": (
        "deploy code that no longer uses it first, then drop it in a later migration "
        "(allow breaking)"
    ),
    "drops-object": (
        "declare it to keep it; or leave it alone for good with [tool.nxdata] unmanaged / "
        "schema.unmanaged(...); rerun with --unsafe only if it should go"
    ),
    "drop-declared": (
        "make sure nothing uses it any more (deploy that code first), then rerun with --unsafe"
    ),
    "enum-values": (
        "deploy code that no longer writes the removed values, move the rows that hold them to "
        "other values (the data check counts them), then re-create the enum"
    ),
    "default-partition": (
        "move those rows out of the default partition first, by hand in one transaction ({move}), "
        "then run nxdata diff again (the partition exists then); create partitions before "
        "their rows arrive (nx.create_partitions_ahead)"
    ),
    "sequence-range": (
        "move the sequence into its new range first (SELECT setval(...)), or keep its old bounds"
    ),
}


@dataclass(frozen=True, slots=True)
class Hazard:
    """One hazard of one statement; `check` is a ``SELECT count(*)`` of the rows that would
    make a ``fails-on-data`` statement fail, `rows` its result once run."""

    kind: HazardKind
    statement: str
    reason: str
    recipe: str
    check: str | None = None
    rows: int | None = None

    def __str__(self) -> str:
        rows = (
            ""
            if self.rows is None
            else f" ({self.rows} row{'s' if self.rows != 1 else ''} would fail)"
        )
        return f"{self.kind}: {self.reason}{rows}"

    def counted(self, rows: int | None) -> Hazard:
        """This hazard with the rows its data check found."""
        return replace(self, rows=rows)


@dataclass(frozen=True, slots=True)
class UnsafeStatement:
    """A generated statement that loses data, and why (``drops column``, ``narrows type``...)."""

    statement: str
    reason: str

    def __str__(self) -> str:
        return f"{self.reason}: {' '.join(self.statement.split())}"


@dataclass(frozen=True, slots=True)
class _Type:
    name: str
    mods: tuple[int, ...]
    array: bool

    def text(self) -> str:
        out = self.name + (f"({','.join(map(str, self.mods))})" if self.mods else "")
        return out + ("[]" if self.array else "")


_DATA_OBJECTS = {
    ObjectType.OBJECT_TABLE: "drops table",
    ObjectType.OBJECT_SCHEMA: "drops schema",
    ObjectType.OBJECT_SEQUENCE: "drops sequence",
    ObjectType.OBJECT_TYPE: "drops type",
    ObjectType.OBJECT_DOMAIN: "drops domain",
    ObjectType.OBJECT_EXTENSION: "drops extension",
}
# Objects that hold no data but that running code calls or reads.
_CODE_OBJECTS = {
    ObjectType.OBJECT_VIEW: "drops view",
    ObjectType.OBJECT_MATVIEW: "drops materialized view",
    ObjectType.OBJECT_FUNCTION: "drops function",
    ObjectType.OBJECT_PROCEDURE: "drops procedure",
}

_ALIASES = {
    "int4": "integer",
    "int": "integer",
    "int8": "bigint",
    "int2": "smallint",
    "float8": "double precision",
    "float4": "real",
    "bool": "boolean",
    "character varying": "varchar",
    "bpchar": "char",
    "character": "char",
    "decimal": "numeric",
    "timestamptz": "timestamp with time zone",
    "timestamp": "timestamp without time zone",
}

# old type → types that hold every value of it (typmods checked separately). Every type's
# values have a text form, so a change to text loses nothing either.
_WIDER: dict[str, set[str]] = {
    "smallint": {"integer", "bigint", "numeric"},
    "integer": {"bigint", "numeric"},
    "bigint": {"numeric"},
    "real": {"double precision"},
    "varchar": {"text"},
    "char": {"text", "varchar"},
    "citext": {"text"},
    "text": {"citext"},
}

# Type changes PostgreSQL makes without rewriting the table (binary-coercible, typmod relaxed).
_NO_REWRITE: dict[str, set[str]] = {
    "varchar": {"text", "varchar"},
    "text": {"varchar"},
    "numeric": {"numeric"},
    "bit varying": {"bit varying"},
    "cidr": {"inet"},
}

# Defaults that are not volatile (now() is stable): adding a column with one is metadata-only.
_STABLE_DEFAULT_FUNCTIONS = frozenset(
    {"now", "statement_timestamp", "transaction_timestamp", "current_setting"}
)


def _type_of(type_name: Any) -> _Type:
    names = [n.sval for n in type_name.names]
    if len(names) > 1 and names[0] == "pg_catalog":
        names = names[1:]
    name = ".".join(names)
    name = _ALIASES.get(name, name)
    mods: list[int] = []
    for mod in type_name.typmods or ():
        value = getattr(getattr(mod, "val", None), "ival", None)
        mods.append(int(value) if value is not None else -1)
    return _Type(name, tuple(mods), bool(type_name.arrayBounds))


def normalize_type(sql_type: str) -> _Type:
    """Parse a type as PostgreSQL writes it (``character varying(20)``, ``numeric(19,4)``)."""
    try:
        stmt: Any = parse_sql(f"SELECT NULL::{sql_type}")[0].stmt
        return _type_of(stmt.targetList[0].val.typeName)
    except (ParseError, AttributeError, IndexError) as exc:
        raise MigrationError(f"cannot parse the type {sql_type!r}") from exc


def is_widening(old: _Type, new: _Type) -> bool:
    """True when every value of `old` fits `new` unchanged."""
    if old.array != new.array:
        return False
    if new.name == "text" and not new.mods:
        return True  # every value has a text form
    if old.name == new.name:
        if old.mods == new.mods or not new.mods:
            return True  # same type, or the new one drops the limit (varchar(10) → varchar)
        if not old.mods:
            return False  # unbounded → bounded
        if old.name in ("varchar", "char", "bit varying"):
            return new.mods[0] >= old.mods[0]
        if old.name == "numeric":
            old_p, old_s = old.mods[0], old.mods[1] if len(old.mods) > 1 else 0
            new_p, new_s = new.mods[0], new.mods[1] if len(new.mods) > 1 else 0
            return new_s >= old_s and new_p - new_s >= old_p - old_s
        return False
    if new.name not in _WIDER.get(old.name, set()):
        return False
    if new.name == "numeric" and new.mods:
        digits = {"smallint": 5, "integer": 10, "bigint": 19}.get(old.name, 1000)
        scale = new.mods[1] if len(new.mods) > 1 else 0
        return new.mods[0] - scale >= digits
    return not (new.name == "varchar" and new.mods)


def rewrites(old: _Type, new: _Type) -> bool:
    """True when ``ALTER COLUMN ... TYPE`` from `old` to `new` rewrites the table (and its
    indexes): anything but PostgreSQL's binary-coercible changes with a relaxed type modifier."""
    if old == new:
        return False
    if old.array != new.array:
        return True
    if new.name not in _NO_REWRITE.get(old.name, set()):
        return True
    if not new.mods:
        return False  # varchar(n) → varchar / text, numeric(p,s) → numeric
    if old.name == new.name and old.mods:
        if old.name == "numeric":  # more precision, same scale
            old_s = old.mods[1] if len(old.mods) > 1 else 0
            new_s = new.mods[1] if len(new.mods) > 1 else 0
            return not (new_s == old_s and new.mods[0] >= old.mods[0])
        return new.mods[0] < old.mods[0]
    return True


def unsafe_statements(
    statements: Sequence[str], column_types: Mapping[ColumnKey, str] | None = None
) -> list[UnsafeStatement]:
    """The statements among `statements` that lose data (the ``data-loss`` hazards).

    `column_types` gives the current type of each column (``format_type`` text) so that a type
    change can be told apart from a widening; a type change of an unknown column is unsafe.
    """
    state = TargetState(column_types=column_types or {})
    out: list[UnsafeStatement] = []
    seen: set[str] = set()
    for hazard in classify(statements, state, everything_exists=True):
        if hazard.kind == "data-loss" and hazard.statement not in seen:
            seen.add(hazard.statement)
            out.append(UnsafeStatement(hazard.statement, hazard.reason))
    return out


def parse(statement: str) -> list[Any]:
    """The parsed statements of `statement` (pglast nodes); `MigrationError` if it cannot."""
    try:
        return [raw.stmt for raw in parse_sql(statement)]
    except ParseError as exc:
        raise MigrationError(f"cannot parse SQL ({exc}): {statement}") from exc


def deparse(node: Any) -> str:
    """SQL text of a parsed expression."""
    return str(RawStream()(node))


def _table(relation: Any) -> TableKey:
    return (relation.schemaname or "public", relation.relname)


def _name(key: TableKey) -> str:
    return f"{_quote(key[0])}.{_quote(key[1])}"


def classify(
    statements: Iterable[str],
    state: TargetState,
    *,
    everything_exists: bool = False,
    steps: Sequence[Sequence[str]] | None = None,
) -> list[Hazard]:
    """Every hazard of `statements` on a database in `state`, in statement order.

    Tables created by the statements themselves are new (no hazard but data loss applies to
    them). With `everything_exists`, every table mentioned is taken to exist (a file checked
    without a database). `steps` groups the statements by transaction, to find a ``VALIDATE``
    in the transaction of its ``NOT VALID``.
    """
    statements = list(statements)
    created: set[TableKey] = set()
    valid_checks: set[tuple[TableKey, str]] = set()  # (table, column) proven NOT NULL by a CHECK
    out: list[Hazard] = []

    def exists(key: TableKey) -> bool:
        return key not in created and (everything_exists or key in state.tables)

    recreated = recreated_in(statements)
    enums, retired = _recreated_enums(statements)
    regenerated = _generated_columns_added(statements)
    for statement in statements:
        for stmt in parse(statement):
            kind = type(stmt).__name__
            if kind == "CreateStmt":
                if stmt.partbound is not None and stmt.inhRelations:
                    parent = _table(stmt.inhRelations[0])
                    if exists(parent):
                        out += _default_partition_hazards(
                            stmt.partbound, parent, _table(stmt.relation), statement, state
                        )
                created.add(_table(stmt.relation))
                continue
            if kind == "CreateTableAsStmt" and stmt.into is not None:
                created.add(_table(stmt.into.rel))  # a materialized view: new, like a table
                continue
            if kind == "DropStmt" and _drop_keys(stmt) and _drop_keys(stmt) <= recreated:
                continue  # dropped to be created again (a view around a column change)
            if kind == "DropStmt" and stmt.removeType == ObjectType.OBJECT_TYPE:
                names = {_qualified(_object_name(obj)) for obj in stmt.objects or ()}
                if names and names <= retired:
                    continue  # the old version of an enum created again: its columns moved
            if _regenerated(stmt, state, regenerated):
                continue  # its new expression: the add that follows rewrites the table
            out += _hazards(stmt, statement, state, exists, valid_checks, enums)
    if steps is not None:
        out += _validate_in_same_transaction(steps, state, exists)
    return out


def _qualified(name: str) -> str:
    """``schema.name`` of a type or sequence named with or without its schema (``public``,
    the first schema of the default search path, when without)."""
    return name if "." in name else f"public.{name}"


def _recreated_enums(
    statements: Sequence[str],
) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """The enums the statements create (``schema.name`` → values), and the names of the old
    versions of those they create again: migra renames the old type away
    (``..._old_version_to_be_dropped``), creates the new one, moves the columns and drops the
    old one."""
    created: dict[str, tuple[str, ...]] = {}
    renamed: dict[str, str] = {}
    for statement in statements:
        for stmt in parse(statement):
            kind = type(stmt).__name__
            if kind == "CreateEnumStmt":
                name = _qualified(".".join(str(n.sval) for n in stmt.typeName))
                created[name] = tuple(str(v.sval) for v in stmt.vals or ())
            elif kind == "RenameStmt" and stmt.renameType == ObjectType.OBJECT_TYPE:
                old = _qualified(_object_name(stmt.object))
                renamed[old] = f"{old.rpartition('.')[0]}.{stmt.newname}"
    return created, {new for old, new in renamed.items() if old in created}


def _generated_columns_added(statements: Sequence[str]) -> set[ColumnKey]:
    """The stored generated columns the statements add."""
    out: set[ColumnKey] = set()
    for statement in statements:
        for stmt in parse(statement):
            if type(stmt).__name__ != "AlterTableStmt":
                continue
            for cmd in stmt.cmds or ():
                if cmd.subtype == AlterTableType.AT_AddColumn and any(
                    c.contype == ConstrType.CONSTR_GENERATED for c in cmd.def_.constraints or ()
                ):
                    out.add((*_table(stmt.relation), cmd.def_.colname))
    return out


def _regenerated(stmt: Any, state: TargetState, added: set[ColumnKey]) -> bool:
    """Whether `stmt` drops a generated column that the statements add again (with a new
    expression, which PostgreSQL before 17 cannot change in place): no data is lost."""
    if type(stmt).__name__ != "AlterTableStmt" or len(stmt.cmds or ()) != 1:
        return False
    cmd = stmt.cmds[0]
    key = (*_table(stmt.relation), cmd.name)
    return cmd.subtype == AlterTableType.AT_DropColumn and key in added and key in state.generated


def _hazards(
    stmt: Any,
    statement: str,
    state: TargetState,
    exists: Any,
    valid_checks: set[tuple[TableKey, str]],
    enums: Mapping[str, tuple[str, ...]],
) -> list[Hazard]:
    kind = type(stmt).__name__
    if kind == "AlterSeqStmt":
        return _sequence_hazards(stmt, statement, state)
    if kind == "DropStmt":
        names = ", ".join(_object_name(obj) for obj in stmt.objects or ())
        code = _CODE_OBJECTS.get(stmt.removeType)
        if code is not None:
            return [
                Hazard(
                    "breaking",
                    statement,
                    f"{code} {names}: code that uses it fails",
                    RECIPES["drop-code"],
                )
            ]
        reason = _DATA_OBJECTS.get(stmt.removeType)
        if reason is None:
            return []
        out = [Hazard("data-loss", statement, f"{reason} {names}".strip(), RECIPES["drop"])]
        if stmt.removeType == ObjectType.OBJECT_TABLE:
            out.append(
                Hazard(
                    "breaking",
                    statement,
                    f"{reason} {names}: code that reads it fails",
                    RECIPES["rename"],
                )
            )
        return out
    if kind == "TruncateStmt":
        return [Hazard("data-loss", statement, "truncates table", RECIPES["drop"])]
    if kind == "DeleteStmt":
        return [Hazard("data-loss", statement, "deletes rows", RECIPES["drop"])]
    if kind == "RenameStmt":
        return _rename_hazards(stmt, statement)
    if kind == "IndexStmt":
        key = _table(stmt.relation)
        out = []
        if exists(key) and not stmt.concurrent:
            partitioned = key in state.partitioned
            out.append(
                Hazard(
                    "long-lock",
                    statement,
                    f"builds index {stmt.idxname} on {key[1]} blocking writes for the whole scan"
                    + (" of every partition" if partitioned else ""),
                    RECIPES["partitioned-index" if partitioned else "index"],
                )
            )
        if exists(key) and stmt.unique:
            out.append(
                Hazard(
                    "fails-on-data",
                    statement,
                    f"unique index {stmt.idxname} on {key[1]} fails on duplicate rows",
                    RECIPES["bad-rows"],
                    check=_duplicates_check(stmt, key),
                )
            )
        return out
    if kind != "AlterTableStmt":
        return []
    key = _table(stmt.relation)
    out = []
    for cmd in stmt.cmds or ():
        out += _alter_hazards(cmd, key, statement, state, exists, valid_checks, enums)
    return out


_RECREATABLE = {
    ObjectType.OBJECT_VIEW: "view",
    ObjectType.OBJECT_MATVIEW: "view",
    ObjectType.OBJECT_FUNCTION: "function",
    ObjectType.OBJECT_PROCEDURE: "function",
}


def _drop_keys(stmt: Any) -> set[tuple[str, str]]:
    """(kind, schema.name) of the views and functions a DROP names."""
    kind = _RECREATABLE.get(stmt.removeType)
    if kind is None:
        return set()
    out = set()
    for obj in stmt.objects or ():
        name = _object_name(getattr(obj, "objname", None) or obj)
        out.add((kind, name if "." in name else f"public.{name}"))
    return out


def recreated_in(statements: Sequence[str]) -> set[tuple[str, str]]:
    """(kind, schema.name) of the views and functions the statements create."""
    out: set[tuple[str, str]] = set()
    for statement in statements:
        try:
            parsed = parse(statement)
        except MigrationError:
            continue
        for stmt in parsed:
            kind = type(stmt).__name__
            if kind == "ViewStmt":
                out.add(("view", f"{stmt.view.schemaname or 'public'}.{stmt.view.relname}"))
            elif kind == "CreateTableAsStmt" and stmt.into is not None:
                rel = stmt.into.rel
                out.add(("view", f"{rel.schemaname or 'public'}.{rel.relname}"))
            elif kind == "CreateFunctionStmt":
                names = [str(getattr(p, "sval", "")) for p in stmt.funcname]
                out.add(("function", ".".join(names) if len(names) > 1 else f"public.{names[0]}"))
    return out


def _object_name(obj: Any) -> str:
    """``schema.name`` of a dropped object (a list of names, a name, a function, or a type)."""
    if type(obj).__name__ == "ObjectWithArgs":
        obj = tuple(obj.objname)
    if isinstance(obj, tuple):
        return ".".join(str(getattr(p, "sval", "")) for p in obj)
    if hasattr(obj, "sval"):
        return str(obj.sval)
    names = getattr(obj, "names", None)
    return ".".join(str(getattr(p, "sval", "")) for p in names) if names else ""


def _rename_hazards(stmt: Any, statement: str) -> list[Hazard]:
    if stmt.renameType == ObjectType.OBJECT_COLUMN:
        what = f"renames column {stmt.relation.relname}.{stmt.subname} to {stmt.newname}"
    elif stmt.renameType == ObjectType.OBJECT_TABLE:
        what = f"renames table {stmt.relation.relname} to {stmt.newname}"
    else:
        return []
    return [
        Hazard("breaking", statement, f"{what}: code using the old name fails", RECIPES["rename"])
    ]


def _alter_hazards(
    cmd: Any,
    key: TableKey,
    statement: str,
    state: TargetState,
    exists: Any,
    valid_checks: set[tuple[TableKey, str]],
    enums: Mapping[str, tuple[str, ...]],
) -> list[Hazard]:
    table = key[1]
    sub = cmd.subtype
    if sub == AlterTableType.AT_DropColumn:
        return [
            Hazard(
                "data-loss", statement, f"drops column {table}.{cmd.name}", RECIPES["drop-column"]
            ),
            Hazard(
                "breaking",
                statement,
                f"drops column {table}.{cmd.name}: code that reads it fails",
                RECIPES["drop-column"],
            ),
        ]
    if sub == AlterTableType.AT_AlterColumnType:
        old_text = state.column_types.get((key[0], table, cmd.name))
        new = _type_of(cmd.def_.typeName)
        enum = state.column_enums.get((key[0], table, cmd.name))
        if enum is not None and not new.array and _qualified(new.name) == enum:
            return _enum_hazards(
                enum, state.enums.get(enum, ()), enums.get(enum), cmd, key, statement, exists
            )
        if old_text is not None and "." in new.name and "." not in old_text:
            # The catalogs print a type on the search path without its schema, migra with it
            # (public.citext): the same type, compared by its name.
            new = replace(new, name=new.name.rpartition(".")[2])
        out = []
        if old_text is None or not is_widening(normalize_type(old_text), new):
            what = f"{old_text} to {new.text()}" if old_text else f"to {new.text()}"
            out.append(
                Hazard(
                    "data-loss",
                    statement,
                    f"changes the type of {table}.{cmd.name} ({what}): values may not fit",
                    RECIPES["narrow"],
                )
            )
            check = _misfits_check(key, cmd.name, new)
            if exists(key) and check is not None:
                out.append(
                    Hazard(
                        "fails-on-data",
                        statement,
                        f"changes the type of {table}.{cmd.name} ({what}): fails on values "
                        f"that do not fit {new.text()}",
                        RECIPES["narrow"],
                        check=check,
                    )
                )
        if exists(key) and (old_text is None or rewrites(normalize_type(old_text), new)):
            what = f"{old_text} to {new.text()}" if old_text else f"to {new.text()}"
            out.append(
                Hazard(
                    "rewrite",
                    statement,
                    f"changes the type of {table}.{cmd.name} ({what}): rewrites the table under "
                    "an ACCESS EXCLUSIVE lock",
                    RECIPES["rewrite"],
                )
            )
        return out
    if not exists(key):
        return []
    if sub == AlterTableType.AT_AddColumn:
        return _add_column_hazards(cmd.def_, key, statement)
    if sub == AlterTableType.AT_SetNotNull:
        out = [
            Hazard(
                "fails-on-data",
                statement,
                f"SET NOT NULL on {table}.{cmd.name} fails on NULL rows",
                RECIPES["null-rows"],
                check=f"SELECT count(*) FROM {_name(key)} WHERE {_quote(cmd.name)} IS NULL",
            )
        ]
        if (key, cmd.name) not in valid_checks:
            out.append(
                Hazard(
                    "long-lock",
                    statement,
                    f"SET NOT NULL on {table}.{cmd.name} scans the table under an ACCESS "
                    "EXCLUSIVE lock",
                    RECIPES["set-not-null"],
                )
            )
        return out
    if sub == AlterTableType.AT_AttachPartition and cmd.def_.bound is not None:
        return _default_partition_hazards(
            cmd.def_.bound, key, _table(cmd.def_.name), statement, state
        )
    if sub == AlterTableType.AT_AddConstraint:
        return _constraint_hazards(
            cmd.def_, key, statement, valid_checks, partitioned=key in state.partitioned
        )
    return []


def _default_partition_hazards(
    bound: Any, parent: TableKey, partition: TableKey, statement: str, state: TargetState
) -> list[Hazard]:
    """A partition created (or attached) on a table with a default partition: PostgreSQL moves
    no rows out of the default one, and fails (``updated partition constraint for default
    partition ... would be violated by some row``) when rows of the new range or values sit
    in it."""
    default = state.default_partitions.get(parent)
    keydef = state.partition_keys.get(parent)
    if default is None or keydef is None or bound.is_default or default == partition:
        return []
    where = _bound_condition(keydef, bound)
    if where is None:
        return []
    move = (
        f"ALTER TABLE {_name(parent)} DETACH PARTITION {_name(default)}; "
        f"{' '.join(statement.split()).rstrip(';')}; "
        f"WITH moved AS (DELETE FROM {_name(default)} WHERE {where} RETURNING *) "
        f"INSERT INTO {_name(parent)} OVERRIDING SYSTEM VALUE SELECT * FROM moved; "
        f"ALTER TABLE {_name(parent)} ATTACH PARTITION {_name(default)} DEFAULT"
    )
    return [
        Hazard(
            "fails-on-data",
            statement,
            f"adds partition {partition[1]} to {parent[1]}: fails if rows of its "
            f"{'values' if bound.strategy == 'l' else 'range'} sit in the default partition "
            f"{default[1]} (PostgreSQL moves none)",
            RECIPES["default-partition"].format(move=move),
            check=f"SELECT count(*) FROM {_name(default)} WHERE {where}",
        )
    ]


def _bound_condition(keydef: str, bound: Any) -> str | None:
    """A WHERE condition true for the rows a partition of `bound` takes (`keydef` the table's
    key as ``pg_get_partkeydef`` prints it), None when there is no simple one (hash)."""
    try:
        table: Any = parse_sql(f"CREATE TABLE _t () PARTITION BY {keydef}")[0].stmt
        spec = table.partspec
        keys = []
        for elem in spec.partParams:
            key = _quote(elem.name) if elem.name else f"({deparse(elem.expr)})"
            if elem.collation:
                key = f"({key} COLLATE {'.'.join(_quote(c.sval) for c in elem.collation)})"
            keys.append(key)
    except (ParseError, AttributeError, IndexError):
        return None
    if bound.strategy == "l" and len(keys) == 1:
        listed = [d for d in bound.listdatums or () if not _is_null(d)]
        parts = [f"{keys[0]} IN ({', '.join(deparse(v) for v in listed)})"] if listed else []
        if len(listed) < len(bound.listdatums or ()):
            parts.append(f"{keys[0]} IS NULL")
        return " OR ".join(parts) or None
    if bound.strategy != "r":
        return None
    # A key with a NULL goes to the default partition only; bounds compare as rows (the
    # first differing column decides), MINVALUE / MAXVALUE ending the part compared.
    parts = [f"{key} IS NOT NULL" for key in keys]
    for datums, after in ((bound.lowerdatums, False), (bound.upperdatums, True)):
        values: list[str] = []
        special = None
        for datum in datums or ():
            special = _range_limit(datum)
            if special is not None:
                break
            values.append(deparse(datum))
        if after:  # the upper bound: excluded, but all of (x, MAXVALUE) is below it
            op = "<=" if special == "maxvalue" else "<"
        else:  # the lower bound: included, but all of (x, MAXVALUE) is below it
            op = ">" if special == "maxvalue" else ">="
        if not values:
            if (special == "minvalue") == after:
                return "false"  # empty: below MINVALUE, or at or above MAXVALUE
            continue  # no limit on this side
        n = len(values)
        left = keys[0] if n == 1 else f"({', '.join(keys[:n])})"
        right = values[0] if n == 1 else f"({', '.join(values)})"
        parts.append(f"{left} {op} {right}")
    return " AND ".join(parts)


def _range_limit(datum: Any) -> str | None:
    """``minvalue`` or ``maxvalue`` for those range bound datums, else None."""
    if type(datum).__name__ != "ColumnRef" or len(datum.fields or ()) != 1:
        return None
    name = str(getattr(datum.fields[0], "sval", "")).lower()
    return name if name in ("minvalue", "maxvalue") else None


def _is_null(datum: Any) -> bool:
    return type(datum).__name__ == "A_Const" and bool(datum.isnull)


def _enum_hazards(
    enum: str,
    old: Sequence[str],
    new: Sequence[str] | None,
    cmd: Any,
    key: TableKey,
    statement: str,
    exists: Any,
) -> list[Hazard]:
    """A column moved to a new version of its enum (migra re-creates an enum whose values
    change): what changes are the values, and the table is rewritten."""
    if new is None:
        return []  # the same type, not created again: nothing changes
    removed = [v for v in old if v not in new]
    added = [v for v in new if v not in old]
    changes = []
    if removed:
        changes.append("removes " + ", ".join(sql_string(v) for v in removed))
    if added:
        changes.append("adds " + ", ".join(sql_string(v) for v in added))
    what = (
        f"re-creates enum {enum} ({'; '.join(changes) or 'reorders its values'}) for "
        f"{key[1]}.{cmd.name}"
    )
    out = []
    if removed:
        values = ", ".join(sql_string(v) for v in removed)
        out.append(
            Hazard(
                "fails-on-data",
                statement,
                f"{what}: fails on rows that hold a removed value",
                RECIPES["enum-values"],
                check=f"SELECT count(*) FROM {_name(key)} WHERE {_quote(cmd.name)}::text IN "
                f"({values})",
            )
        )
    if exists(key):
        out.append(
            Hazard(
                "rewrite",
                statement,
                f"{what}: rewrites the table under an ACCESS EXCLUSIVE lock",
                RECIPES["rewrite"],
            )
        )
    return out


def _sequence_hazards(stmt: Any, statement: str, state: TargetState) -> list[Hazard]:
    """``ALTER SEQUENCE`` that narrows the range of an existing sequence fails when its current
    value falls outside (PostgreSQL checks it, ``RESTART value (1) cannot be less than
    MINVALUE (5)``)."""
    key = _table(stmt.sequence)
    bounds = state.sequences.get(key)
    options = {o.defname: o.arg for o in stmt.options or ()}
    if bounds is None or "restart" in options:
        return []
    low = _number(options.get("minvalue"), bounds[0])
    high = _number(options.get("maxvalue"), bounds[1])
    if low <= bounds[0] and high >= bounds[1]:
        return []
    return [
        Hazard(
            "fails-on-data",
            statement,
            f"narrows sequence {key[0]}.{key[1]} to {low}..{high}: fails if its current value "
            "is outside",
            RECIPES["sequence-range"],
            check=f"SELECT count(*) FROM {_name(key)} WHERE last_value NOT BETWEEN {low} AND "
            f"{high}",
        )
    ]


def _number(node: Any, default: int) -> int:
    """The value of an ``Integer`` or ``Float`` node (a bound past 2^31), `default` for none."""
    if node is None:
        return default
    value = getattr(node, "ival", None)
    if value is None:
        value = getattr(node, "fval", None)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _add_column_hazards(column: Any, key: TableKey, statement: str) -> list[Hazard]:
    out = []
    constraints = list(column.constraints or ())
    types = {c.contype for c in constraints}
    default = next(
        (c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None
    )
    name = f"{key[1]}.{column.colname}"
    if (
        ConstrType.CONSTR_NOTNULL in types
        and default is None
        and ConstrType.CONSTR_IDENTITY not in types
        and ConstrType.CONSTR_GENERATED not in types
    ):
        out.append(
            Hazard(
                "fails-on-data",
                statement,
                f"adds NOT NULL column {name} without a default: fails if the table has rows",
                RECIPES["not-null-column"],
                check=f"SELECT count(*) FROM {_name(key)}",
            )
        )
    if ConstrType.CONSTR_IDENTITY in types or ConstrType.CONSTR_GENERATED in types:
        out.append(
            Hazard(
                "rewrite",
                statement,
                f"adds {name} with values for every row (identity or generated): rewrites the "
                "table",
                RECIPES["volatile-default"],
            )
        )
    elif default is not None and _volatile(default):
        out.append(
            Hazard(
                "rewrite",
                statement,
                f"adds {name} with a volatile default ({deparse(default)}): rewrites the table",
                RECIPES["volatile-default"],
            )
        )
    return out


_INTEGER_RANGES = {
    "smallint": (-32768, 32767),
    "integer": (-2147483648, 2147483647),
    "bigint": (-9223372036854775808, 9223372036854775807),
}


def _misfits_check(key: TableKey, column: str, new: _Type) -> str | None:
    """A count of the values of `column` that the narrower type `new` cannot hold (too long,
    out of range), or None when there is no simple test."""
    col = _quote(column)
    where = None
    if new.array:
        return None
    if new.name in ("varchar", "char", "bit varying", "bit") and new.mods:
        where = f"char_length({col}::text) > {new.mods[0]}"
    elif new.name in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[new.name]
        where = f"{col}::numeric NOT BETWEEN {low} AND {high}"
    elif new.name == "numeric" and len(new.mods) >= 1:
        digits = new.mods[0] - (new.mods[1] if len(new.mods) > 1 else 0)
        where = f"abs({col}::numeric) >= 1e{digits}"
    if where is None:
        return None
    return f"SELECT count(*) FROM {_name(key)} WHERE {where}"


def _volatile(expression: Any) -> bool:
    """Whether a default expression is (possibly) volatile: a function call other than the
    stable ones; constants, casts of constants and CURRENT_* values are not."""
    kind = type(expression).__name__
    if kind in ("A_Const", "SQLValueFunction"):
        return False
    if kind == "TypeCast":
        return _volatile(expression.arg)
    if kind == "FuncCall":
        name = expression.funcname[-1].sval
        return name not in _STABLE_DEFAULT_FUNCTIONS
    return True


def _constraint_hazards(
    constraint: Any,
    key: TableKey,
    statement: str,
    valid_checks: set[tuple[TableKey, str]],
    *,
    partitioned: bool = False,
) -> list[Hazard]:
    table = key[1]
    # On a partitioned table a key cannot use an index built CONCURRENTLY, nor a foreign key be
    # added NOT VALID (PostgreSQL 17 and older): the recipe says what is left.
    locked = RECIPES["partitioned-constraint"] if partitioned else None
    contype = constraint.contype
    name = constraint.conname or "constraint"
    out = []
    if contype == ConstrType.CONSTR_CHECK:
        expression = deparse(constraint.raw_expr)
        out.append(
            Hazard(
                "fails-on-data",
                statement,
                f"CHECK {name} on {table} fails on rows outside it",
                RECIPES["bad-rows"],
                check=f"SELECT count(*) FROM {_name(key)} WHERE ({expression}) IS FALSE",
            )
        )
        if constraint.skip_validation:
            column = _is_not_null_check(constraint.raw_expr)
            if column is not None:
                valid_checks.add((key, column))
        else:
            out.append(
                Hazard(
                    "long-lock",
                    statement,
                    f"adds and validates CHECK {name} on {table} at once (a scan under an "
                    "ACCESS EXCLUSIVE lock)",
                    RECIPES["constraint"],
                )
            )
    elif contype == ConstrType.CONSTR_FOREIGN:
        out.append(
            Hazard(
                "fails-on-data",
                statement,
                f"foreign key {name} on {table} fails on rows without a parent",
                RECIPES["bad-rows"],
                check=_orphans_check(constraint, key),
            )
        )
        if not constraint.skip_validation:
            out.append(
                Hazard(
                    "long-lock",
                    statement,
                    f"adds and validates foreign key {name} on {table} at once",
                    locked or RECIPES["constraint"],
                )
            )
    elif (
        contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY)
        and not constraint.indexname
    ):
        out.append(
            Hazard(
                "long-lock",
                statement,
                f"builds the index of {name} on {table} under an ACCESS EXCLUSIVE lock",
                locked or RECIPES["index"],
            )
        )
    return out


def _is_not_null_check(expression: Any) -> str | None:
    """The column of ``CHECK (col IS NOT NULL)``, else None."""
    if type(expression).__name__ != "NullTest" or int(expression.nulltesttype) != 1:
        return None
    arg = expression.arg
    if type(arg).__name__ != "ColumnRef":
        return None
    return str(arg.fields[-1].sval)


def _duplicates_check(index: Any, key: TableKey) -> str | None:
    """``SELECT count(*)`` of the groups of rows a new unique index would refuse."""
    try:
        parts = [
            _quote(p.name) if p.name else f"({deparse(p.expr)})" for p in index.indexParams or ()
        ]
    except Exception:  # an index element we cannot write back: no check
        return None
    if not parts:
        return None
    not_null = " AND ".join(f"{p} IS NOT NULL" for p in parts)
    where = f"({deparse(index.whereClause)}) AND {not_null}" if index.whereClause else not_null
    # The rows beyond the first of each key: what must go or change for the index to build.
    return (
        f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {_name(key)} "
        f"WHERE {where} GROUP BY {', '.join(parts)} HAVING count(*) > 1) AS duplicates"
    )


def _orphans_check(constraint: Any, key: TableKey) -> str | None:
    """``SELECT count(*)`` of the rows a new foreign key would refuse."""
    columns = [c.sval for c in constraint.fk_attrs or ()]
    ref_columns = [c.sval for c in constraint.pk_attrs or ()]
    if not columns or len(columns) != len(ref_columns):
        return None
    parent = _name(_table(constraint.pktable))
    present = " AND ".join(f"c.{_quote(c)} IS NOT NULL" for c in columns)
    match = " AND ".join(
        f"p.{_quote(r)} = c.{_quote(c)}" for c, r in zip(columns, ref_columns, strict=True)
    )
    return (
        f"SELECT count(*) FROM {_name(key)} c WHERE {present} "
        f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match})"
    )


def _validate_in_same_transaction(
    steps: Sequence[Sequence[str]], state: TargetState, exists: Any
) -> list[Hazard]:
    """``VALIDATE CONSTRAINT`` in the same transaction as the ``NOT VALID`` add: the add's
    ACCESS EXCLUSIVE lock is then held for the whole validation scan."""
    out = []
    for step in steps:
        added: set[tuple[TableKey, str]] = set()
        for statement in step:
            for stmt in parse(statement):
                if type(stmt).__name__ != "AlterTableStmt":
                    continue
                key = _table(stmt.relation)
                for cmd in stmt.cmds or ():
                    if cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.skip_validation:
                        added.add((key, cmd.def_.conname))
                    elif cmd.subtype == AlterTableType.AT_ValidateConstraint and (
                        (key, cmd.name) in added and exists(key)
                    ):
                        out.append(
                            Hazard(
                                "long-lock",
                                statement,
                                f"validates {cmd.name} on {key[1]} in the transaction that added "
                                "it: its ACCESS EXCLUSIVE lock lasts the whole scan",
                                RECIPES["validate-same-tx"],
                            )
                        )
    return out
