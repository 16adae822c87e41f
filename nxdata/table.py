"""Declaring tables: `Schema`, `Table`, constraints, naming conventions and derived types.

A table is a msgspec Struct registered on a schema::

    import msgspec
    import nxdata as nx

    licensing = nx.Schema("licensing")

    @licensing.table(
        "License",
        indexes=[nx.Index("status")],
        foreign_keys=[nx.ForeignKey("policy_id", "licensing.Policy", on_delete="cascade")],
        uniques=[nx.Unique("license_key")],
    )
    class License(nx.CommonColumns):
        policy_id: str
        license_key: str
        status: str = "active"

    table = nx.table_of(License)            # Table[License]: columns, constraints, derived types
    payload = table.validate_insert({"policy_id": "p1", "license_key": "K"})   # License insert type

The decorator returns the class unchanged; the table's metadata hangs off it (``table_of``).
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import itertools
import re
import textwrap
import typing
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

import msgspec

from .citus import check_distribution, check_foreign_key
from .columns import Column
from .errors import DeclarationError, ValidationError
from .objects import (
    Function,
    Grant,
    Policy,
    ResolvedGrant,
    Role,
    Trigger,
    Unmanaged,
    View,
    expand_privileges,
)
from .objects import (
    Sequence as SequenceDef,
)
from .partitioning import PartitionBy, Partitioning, resolve_partitioning
from .sqltypes import ColumnKind, bounded, resolve
from .values import clip, decimal_problem, decimals_fit, numeric_bounds, text_problem

__all__ = [
    "Check",
    "ColumnDef",
    "ForeignKey",
    "Index",
    "ReferentialAction",
    "Schema",
    "Table",
    "Unique",
    "live_unique",
    "snake_case",
    "table_of",
]

T = TypeVar("T", bound=msgspec.Struct)
ReferentialAction = Literal["no action", "restrict", "cascade", "set null", "set default"]
_ACTIONS = {"no action", "restrict", "cascade", "set null", "set default"}
_INDEX_METHODS = {"btree", "hash", "gin", "gist", "spgist", "brin"}
_SCHEMAS: weakref.WeakValueDictionary[str, Schema] = weakref.WeakValueDictionary()
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names, which would make every diff dirty


def snake_case(name: str) -> str:
    """``policyId`` → ``policy_id``; already-snake names are unchanged."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


@dataclass(frozen=True, slots=True)
class ColumnDef:
    """One column of a declared table, resolved from its Struct field.

    ``annotation`` is the field's annotation as declared (markers and ``msgspec.Meta``
    constraints included); ``python_type`` the plain type values decode into.
    """

    field: str
    name: str
    sql_type: str
    nullable: bool
    kind: ColumnKind
    python_type: Any
    options: Column
    default: Any = msgspec.NODEFAULT
    enum_values: tuple[Any, ...] = ()
    annotation: Any = None

    @property
    def primary_key(self) -> bool:
        """True when the column is (part of) the primary key."""
        return self.options.primary_key

    @property
    def identity(self) -> str | None:
        """``"always"`` / ``"by default"`` for an identity column, else None."""
        return self.options.identity

    @property
    def server_default(self) -> str | None:
        """SQL default: the explicit ``server_default`` or a literal Python default."""
        if self.options.server_default is not None:
            return self.options.server_default
        if self.default is not msgspec.NODEFAULT and self.default is not None:
            return sql_literal(self.default)
        # Empty containers are common Python defaults; mirror them on the server so rows written
        # by plain SQL (seeds, other services) get the same value.
        factory = self.options.default_factory
        if factory is dict and self.kind == "json":
            return "'{}'::jsonb"
        if factory is list:
            return "'[]'::jsonb" if self.kind == "json" else "'{}'"
        return None

    @property
    def default_factory(self) -> Callable[[], Any] | None:
        """The Python-side default (e.g. a uuid maker), called for inserts that omit the column."""
        return self.options.default_factory  # type: ignore[no-any-return]

    @property
    def hidden(self) -> bool:
        """True for a column never returned unless code names it, and unknown to clients."""
        return self.options.hidden

    @property
    def server_managed(self) -> bool:
        """True when client bodies may not set the column: an identity, a primary key the library
        or the server fills in, a column set by every update (``modified_at``) or by a delete
        (``deleted_at``), an immutable column with a server default (``created_at``), or one
        declared ``read_only``. Trusted code can still set it (seeds, imports)."""
        options = self.options
        has_default = (
            options.server_default is not None
            or options.default_factory is not None
            or self.default is not msgspec.NODEFAULT
        )
        return bool(
            self.identity
            or options.read_only
            or options.on_update
            or options.soft_delete
            or (options.primary_key and has_default)
            or (options.immutable and options.server_default is not None)
        )

    @property
    def has_insert_default(self) -> bool:
        """True when an insert may omit the column (server or Python default, identity, null)."""
        return (
            self.identity is not None
            or self.options.server_default is not None
            or self.default is not msgspec.NODEFAULT
            or self.default_factory is not None
            or self.nullable
        )


def sql_literal(value: Any) -> str:
    """A SQL literal for a simple Python value (defaults, enum CHECKs)."""
    import enum

    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    from decimal import Decimal

    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise DeclarationError(f"cannot write {value!r} as a SQL default; use Column(server_default=)")


@dataclass(frozen=True)
class Index:
    """An index on one or more columns, or on one SQL expression.

    ``Index("status")``, ``Index("tenant_id", "created_at")``, ``Index("tags", method="gin")``,
    ``Index("email", unique=True, where="deleted_at IS NULL")``,
    ``Index(expression="lower(email)", name="IDX_User_email_lower")``. Default name
    ``IDX_{Table}_{col}_{col}`` (``UQ_...`` when unique); ``name=`` overrides it and is required
    for an expression index.
    """

    columns: tuple[str, ...]
    name: str | None = None
    unique: bool = False
    where: str | None = None
    method: str | None = None
    expression: str | None = None

    def __init__(
        self,
        *columns: str,
        name: str | None = None,
        unique: bool = False,
        where: str | None = None,
        method: str | None = None,
        expression: str | None = None,
    ) -> None:
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "unique", unique)
        object.__setattr__(self, "where", where)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "expression", expression)


def live_unique(*columns: str, name: str | None = None) -> Index:
    """A unique index among live rows only (``WHERE deleted_at IS NULL``): soft-delete tables."""
    return Index(*columns, name=name, unique=True, where="deleted_at IS NULL")


@dataclass(frozen=True)
class Unique:
    """A unique constraint; default name ``UQ_{Table}_{col}_{col}``."""

    columns: tuple[str, ...]
    name: str | None = None
    nulls_not_distinct: bool = False

    def __init__(
        self, *columns: str, name: str | None = None, nulls_not_distinct: bool = False
    ) -> None:
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "nulls_not_distinct", nulls_not_distinct)


@dataclass(frozen=True)
class Check:
    """A CHECK constraint: ``Check("amount >= 0", name="CK_Wallet_amount")``.

    Without a name it is ``CK_{Table}_{n}``, n counting the table's checks from 1.
    """

    expression: str
    name: str | None = None


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key from ``columns`` to ``references`` (a row class, a `Table` or
    ``"schema.Table"``), by default to its primary key.

    ``ForeignKey("policy_id", Policy, on_delete="cascade")``; for several columns pass tuples.
    Default name ``FK_{Table}_{col}_{RefTable}_{refcol}``.

    It also makes two relations a filter may ``include`` (see `nxdata.relations`): ``relation``
    names the referenced row from this table (default: the column without ``_id``,
    ``policy``), ``inverse`` the list of this table's rows from the referenced one (default:
    this table's name in snake case, plural: ``licenses``).
    """

    columns: tuple[str, ...]
    references: Any
    ref_columns: tuple[str, ...] | None = None
    on_delete: ReferentialAction = "no action"
    on_update: ReferentialAction = "no action"
    name: str | None = None
    relation: str | None = None
    inverse: str | None = None

    def __init__(
        self,
        columns: str | Sequence[str],
        references: Any,
        ref_columns: str | Sequence[str] | None = None,
        *,
        on_delete: ReferentialAction = "no action",
        on_update: ReferentialAction = "no action",
        name: str | None = None,
        relation: str | None = None,
        inverse: str | None = None,
    ) -> None:
        cols = (columns,) if isinstance(columns, str) else tuple(columns)
        refs = (
            (ref_columns,)
            if isinstance(ref_columns, str)
            else (tuple(ref_columns) if ref_columns is not None else None)
        )
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "references", references)
        object.__setattr__(self, "ref_columns", refs)
        object.__setattr__(self, "on_delete", on_delete)
        object.__setattr__(self, "on_update", on_update)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "relation", relation)
        object.__setattr__(self, "inverse", inverse)


@dataclass(frozen=True)
class ResolvedForeignKey:
    """A foreign key with its target resolved and its name fixed."""

    name: str
    columns: tuple[str, ...]
    target: Table[Any]
    ref_columns: tuple[str, ...]
    on_delete: str
    on_update: str
    relation: str | None = None
    inverse: str | None = None


class Schema:
    """A PostgreSQL schema and what is declared on it: tables, views, functions, sequences,
    grants, and the objects to leave alone.

    ``extensions`` names extensions the tables need (e.g. ``("citext",)``); they are created in
    the ``public`` schema before any table. With ``docstring_comments`` (default), a table's
    docstring becomes its SQL comment, and a field's docstring (a string right under the field)
    its column's, unless ``comment=`` says otherwise.
    """

    def __init__(
        self, name: str, *, extensions: Iterable[str] = (), docstring_comments: bool = True
    ) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise DeclarationError(f"schema name {name!r} must be lower snake_case")
        self.name = name
        self.extensions = tuple(extensions)
        self.docstring_comments = docstring_comments
        self.tables: dict[str, Table[Any]] = {}
        self.views: dict[str, View] = {}
        self.functions: dict[str, Function] = {}
        self.sequences: dict[str, SequenceDef] = {}
        self.grants: list[Grant] = []
        self.unmanaged_objects: list[Unmanaged] = []
        _SCHEMAS[name] = self  # the latest declaration of a name wins for "schema.Table" lookups

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, tables={list(self.tables)})"

    def table(
        self,
        name: str | None = None,
        *,
        indexes: Iterable[Index] = (),
        foreign_keys: Iterable[ForeignKey] = (),
        uniques: Iterable[Unique] = (),
        checks: Iterable[Check] = (),
        comment: str | None = None,
        renamed_from: str | None = None,
        triggers: Iterable[Trigger] = (),
        row_level_security: bool | Literal["force"] = False,
        policies: Iterable[Policy] = (),
        grants: Iterable[Grant] = (),
        partition_by: PartitionBy | None = None,
        distributed_by: str | None = None,
        reference_table: bool = False,
    ) -> Callable[[type[T]], type[T]]:
        """Class decorator: declare the Struct as a table of this schema (name defaults to the
        class name, which should be PascalCase).

        ``renamed_from``: the table's previous name, so that ``nxdata diff`` writes ``ALTER
        TABLE ... RENAME`` (keeping the data) instead of a drop and a create, while the database
        still has that name. ``triggers``, ``policies`` (with ``row_level_security=True``, or
        ``"force"`` to apply them to the table's owner too) and ``grants`` are the table's
        (see `nxdata.objects`). ``comment`` defaults to the class docstring.

        ``partition_by``: a `PartitionBy` (range, list or hash on one column, with its
        partitions; see `nxdata.partitioning`). ``distributed_by`` (a column) or
        ``reference_table=True``: the table's place in a Citus cluster (see `nxdata.citus`).
        Both are checked here the way PostgreSQL and Citus require: the primary key and every
        unique key include the partition and distribution columns.
        """

        def register(cls: type[T]) -> type[T]:
            table = Table(
                self,
                name or cls.__name__,
                cls,
                indexes=tuple(indexes),
                foreign_keys=tuple(foreign_keys),
                uniques=tuple(uniques),
                checks=tuple(checks),
                comment=comment,
                renamed_from=renamed_from,
                triggers=tuple(triggers),
                row_level_security=row_level_security,
                policies=tuple(policies),
                grants=tuple(grants),
                partition_by=partition_by,
                distributed_by=distributed_by,
                reference_table=reference_table,
            )
            if table.name in self.tables and self.tables[table.name].row_type is not cls:
                raise DeclarationError("declared twice", table=table.qualified_name)
            self._check_free(table.name, "table")
            self._check_partition_names(table)
            previous = self.tables.get(table.name)
            self.tables[table.name] = table
            try:
                self._check_citus_foreign_keys(table)
            except DeclarationError:
                # Not declared after all: a corrected declaration of the name may follow.
                if previous is None:
                    del self.tables[table.name]
                else:
                    self.tables[table.name] = previous
                raise
            cls.__nxdata_table__ = table  # type: ignore[attr-defined]
            return cls

        return register

    def __iter__(self) -> Iterator[Table[Any]]:
        return iter(self.tables.values())

    # -- other objects ---------------------------------------------------------------------------

    def _check_free(self, name: str, what: str) -> None:
        """Tables, views and sequences share one namespace in PostgreSQL."""
        taken = (
            ("table", self.tables.get(name)),
            ("view", self.views.get(name)),
            ("sequence", self.sequences.get(name)),
        )
        for kind, found in taken:
            if found is not None and not (kind == "table" and what == "table"):
                raise DeclarationError(
                    f"{what} {self.name}.{name}: the name is taken by a {kind} of the schema"
                )

    def _check_citus_foreign_keys(self, table: Table[Any]) -> None:
        """Citus's foreign key rules, checked as soon as both ends are declared: the foreign keys
        of `table`, and those of the schema's tables that point at it (see `nxdata.citus`)."""
        for source in self.tables.values():
            for fk in source._declared_fks:
                try:
                    target = _resolve_table_ref(fk.references, source)
                except DeclarationError:
                    continue  # declared later: checked when the foreign keys are resolved
                if table not in (source, target):
                    continue
                distributed = (source, target)
                if any(t.distributed_by is not None or t.reference_table for t in distributed):
                    source._resolve_fk(fk)

    def _check_partition_names(self, table: Table[Any]) -> None:
        """Partitions are tables of the schema: their names may not be taken."""
        mine = {p.name for p in table.partitioning.partitions} if table.partitioning else set()
        for other in self.tables.values():
            if other.name == table.name:
                continue
            theirs = (
                {p.name for p in other.partitioning.partitions} if other.partitioning else set()
            )
            clash = (mine & ({other.name} | theirs)) or ({table.name} & theirs)
            if clash:
                raise DeclarationError(
                    f"the name {sorted(clash)[0]!r} is taken by table {other.qualified_name} "
                    "or one of its partitions",
                    table=table.qualified_name,
                )
        for name in mine:
            if name in self.views or name in self.sequences:
                raise DeclarationError(
                    f"partition {name!r}: the name is taken by a view or sequence of the schema",
                    table=table.qualified_name,
                )

    def view(
        self,
        name: str,
        query: str,
        *,
        comment: str | None = None,
        security_invoker: bool = False,
    ) -> View:
        """Declare a view: ``sale.view("OrderTotal", 'SELECT ... FROM sale."SaleOrder" ...')``.

        Name every table with its schema. See `nxdata.objects.View`."""
        return self._add_view(
            name, query, comment=comment, security_invoker=security_invoker, materialized=False
        )

    def materialized_view(
        self,
        name: str,
        query: str,
        *,
        indexes: Iterable[Index] = (),
        comment: str | None = None,
    ) -> View:
        """Declare a materialized view and its indexes (default names ``IDX_{view}_{cols}``,
        ``UQ_...`` when unique). See `nxdata.objects.View`."""
        named = []
        for index in indexes:
            if index.expression is not None and not index.name:
                raise DeclarationError(
                    f"materialized view {self.name}.{name}: an expression index needs name="
                )
            prefix = "UQ" if index.unique else "IDX"
            index_name = index.name or f"{prefix}_{name}_{'_'.join(index.columns)}"
            if len(index_name.encode()) > MAX_IDENTIFIER:
                raise DeclarationError(
                    f"index name {index_name!r} is longer than 63 bytes: pass name="
                )
            named.append(
                Index(
                    *index.columns,
                    name=index_name,
                    unique=index.unique,
                    where=index.where,
                    method=index.method,
                    expression=index.expression,
                )
            )
        return self._add_view(name, query, comment=comment, materialized=True, indexes=tuple(named))

    def _add_view(
        self,
        name: str,
        query: str,
        *,
        comment: str | None,
        materialized: bool,
        security_invoker: bool = False,
        indexes: tuple[Index, ...] = (),
    ) -> View:
        if not isinstance(query, str) or not query.strip():
            raise DeclarationError(f"view {self.name}.{name} needs a query")
        if name in self.views:
            raise DeclarationError(f"view {self.name}.{name} is declared twice")
        self._check_free(_checked(name, "view"), "view")
        view = View(
            self,
            name,
            query,
            materialized=materialized,
            indexes=indexes,
            comment=comment,
            security_invoker=security_invoker,
        )
        self.views[name] = view
        return view

    def function(
        self,
        name: str,
        *,
        body: str,
        args: str = "",
        returns: str = "trigger",
        language: str = "plpgsql",
        volatility: Literal["volatile", "stable", "immutable"] = "volatile",
        strict: bool = False,
        security_definer: bool = False,
        search_path: str | None = None,
        comment: str | None = None,
        public_execute: bool = True,
    ) -> Function:
        """Declare a function: ``ledger.function("refuse_change", returns="trigger", body=...)``.

        See `nxdata.objects.Function`; one function per name (no overloads)."""
        return self._add_function(
            Function(
                self,
                _checked(name, "function"),
                body,
                args=args,
                returns=returns,
                language=language,
                volatility=volatility,
                strict=strict,
                security_definer=security_definer,
                search_path=search_path,
                comment=comment,
                public_execute=public_execute,
            )
        )

    def procedure(
        self,
        name: str,
        *,
        body: str,
        args: str = "",
        language: str = "plpgsql",
        security_definer: bool = False,
        search_path: str | None = None,
        comment: str | None = None,
        public_execute: bool = True,
    ) -> Function:
        """Declare a procedure (``CALL`` it; it may commit). See `nxdata.objects.Function`."""
        return self._add_function(
            Function(
                self,
                _checked(name, "procedure"),
                body,
                args=args,
                returns=None,
                language=language,
                security_definer=security_definer,
                search_path=search_path,
                procedure=True,
                comment=comment,
                public_execute=public_execute,
            )
        )

    def _add_function(self, function: Function) -> Function:
        if not function.body.strip():
            raise DeclarationError(f"{function.kind} {function.qualified_name} needs a body")
        if function.name in self.functions:
            raise DeclarationError(
                f"{function.kind} {function.qualified_name} is declared twice (overloads are "
                "not supported: give it another name)"
            )
        self.functions[function.name] = function
        return function

    def sequence(
        self,
        name: str,
        *,
        data_type: Literal["smallint", "integer", "bigint"] = "bigint",
        start: int = 1,
        increment: int = 1,
        min_value: int | None = None,
        max_value: int | None = None,
        cache: int = 1,
        cycle: bool = False,
        owned_by: str | None = None,
        comment: str | None = None,
    ) -> SequenceDef:
        """Declare a sequence: ``sale.sequence("invoice_number", start=1000)``. See
        `nxdata.objects.Sequence`."""
        if name in self.sequences:
            raise DeclarationError(f"sequence {self.name}.{name} is declared twice")
        if data_type not in ("smallint", "integer", "bigint"):
            raise DeclarationError(
                f"sequence {self.name}.{name}: data_type is smallint, integer or bigint"
            )
        if increment == 0:
            raise DeclarationError(f"sequence {self.name}.{name}: increment cannot be 0")
        if owned_by is not None and owned_by.count(".") != 1:
            raise DeclarationError(f"sequence {self.name}.{name}: owned_by is 'Table.column'")
        self._check_free(_checked(name, "sequence"), "sequence")
        sequence = SequenceDef(
            self,
            name,
            data_type=data_type,
            start=start,
            increment=increment,
            min_value=min_value,
            max_value=max_value,
            cache=cache,
            cycle=cycle,
            owned_by=owned_by,
            comment=comment,
        )
        self.sequences[name] = sequence
        return sequence

    def grant(
        self,
        privileges: str | Iterable[str],
        *,
        to: Role | str | Iterable[Role | str],
        on: Any = (),
    ) -> Grant:
        """Grant privileges on the schema itself (``sale.grant("usage", to=tenant)``) or on
        objects of it (``on=order_total_view``). See `nxdata.objects.Grant`."""
        grant = Grant(privileges, to=to, on=on)
        self.grants.append(grant)
        return grant

    def unmanaged(self, *patterns: str) -> None:
        """Leave objects made outside the declarations alone: ``sale.unmanaged("index idx_*",
        "trigger SaleOrder.audit_*", "grant reporting")`` (patterns relative to the schema).
        See `nxdata.objects.Unmanaged`."""
        self.unmanaged_objects += [Unmanaged.parse(p, schema=self.name) for p in patterns]

    # -- what the DDL and the diff read ----------------------------------------------------------

    @property
    def roles(self) -> tuple[Role, ...]:
        """The `Role` objects the schema's grants and policies name, by name."""
        found: dict[str, Role] = {}
        for grant in self.grants:
            found.update((r.name, r) for r in grant.declared_roles)
        for table in self.tables.values():
            for grant in table.grants:
                found.update((r.name, r) for r in grant.declared_roles)
            for policy in table.policies:
                found.update((r.name, r) for r in policy.declared_roles)
        return tuple(found[n] for n in sorted(found))

    def resolved_grants(self) -> list[ResolvedGrant]:
        """Every declared privilege, one per object, privilege and role, sorted."""
        out: set[ResolvedGrant] = set()
        for grant in self.grants:
            targets = grant.on or (self,)
            for target in targets:
                kind, sql, identity = self._grant_target(target)
                where = f"grant on {identity}"
                for privilege in expand_privileges(grant.privileges, kind, where):
                    out.update(
                        ResolvedGrant(kind, sql, identity, privilege, r) for r in grant.roles
                    )
        for table in self.tables.values():
            for grant in table.grants:
                if grant.on:
                    raise DeclarationError(
                        "a table's grants are on the table: use schema.grant(..., on=...) for "
                        "other objects",
                        table=table.qualified_name,
                    )
                where = f"grant on {table.qualified_name}"
                for privilege in expand_privileges(grant.privileges, "table", where):
                    out.update(
                        ResolvedGrant("table", table.sql_name, table.qualified_name, privilege, r)
                        for r in grant.roles
                    )
        return sorted(out, key=lambda g: (g.kind, g.identity, g.role, g.privilege))

    def _grant_target(self, target: Any) -> tuple[str, str, str]:
        if target is self:
            return "schema", _quote(self.name), self.name
        if isinstance(target, View):
            return "view", target.sql_name, target.qualified_name
        if isinstance(target, Function):
            return "function", target.signature, target.qualified_name
        if isinstance(target, SequenceDef):
            return "sequence", target.sql_name, target.qualified_name
        if isinstance(target, str) and target in self.views:
            view = self.views[target]
            return "view", view.sql_name, view.qualified_name
        if isinstance(target, str) and target in self.sequences:
            sequence = self.sequences[target]
            return "sequence", sequence.sql_name, sequence.qualified_name
        if isinstance(target, str) and target in self.functions:
            function = self.functions[target]
            return "function", function.signature, function.qualified_name
        table = target if isinstance(target, Table) else None
        if isinstance(target, str):
            qualified = target if "." in target else f"{self.name}.{target}"
            schema_name, _, table_name = qualified.partition(".")
            owner = _SCHEMAS.get(schema_name)
            table = owner.tables.get(table_name) if owner is not None else None
        elif table is None and isinstance(target, type):
            table = getattr(target, "__nxdata_table__", None)
        if table is None:
            raise DeclarationError(
                f"grant on {target!r} in schema {self.name}: not a declared table, view, "
                "function or sequence"
            )
        return "table", table.sql_name, table.qualified_name


def _checked(name: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise DeclarationError(f"a {what} needs a name")
    if len(name.encode()) > MAX_IDENTIFIER:
        raise DeclarationError(f"{what} name {name!r} is longer than 63 bytes")
    return name


def table_of(row_type: type[T]) -> Table[T]:
    """The `Table` declared for a row Struct class."""
    table = getattr(row_type, "__nxdata_table__", None)
    if table is None or table.row_type is not row_type:
        raise DeclarationError(f"{row_type.__name__} is not a declared table (use @schema.table)")
    return table  # type: ignore[no-any-return]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Table(Generic[T]):
    """A declared table: its columns, constraints and the types derived from its row Struct.

    - ``row_type``: the Struct a full row decodes into;
    - ``insert_type``: server-defaulted, identity and nullable columns optional (``UNSET`` =
      "let the server decide"), Python defaults filled in; unknown fields rejected;
    - ``update_type``: every changeable column optional, ``UNSET`` meaning "leave it";
    - ``client_insert_type`` / ``client_update_type``: the same without server-managed columns
      (``id``, ``created_at``, ``modified_at``, ``deleted_at``, ``read_only`` ones) and hidden
      ones: the types for bodies that come from API clients.

    In all of them, integers are bounded by their SQL type (``smallint``, ``integer``,
    ``bigint``), numbers by ``numeric(p, s)`` (NaN and Infinity refused), and text that
    PostgreSQL cannot store (NUL, lone surrogates) is refused: a `ValidationError` naming the
    field, never a server error.
    """

    def __init__(
        self,
        schema: Schema,
        name: str,
        row_type: type[T],
        *,
        indexes: tuple[Index, ...] = (),
        foreign_keys: tuple[ForeignKey, ...] = (),
        uniques: tuple[Unique, ...] = (),
        checks: tuple[Check, ...] = (),
        comment: str | None = None,
        renamed_from: str | None = None,
        triggers: tuple[Trigger, ...] = (),
        row_level_security: bool | Literal["force"] = False,
        policies: tuple[Policy, ...] = (),
        grants: tuple[Grant, ...] = (),
        partition_by: PartitionBy | None = None,
        distributed_by: str | None = None,
        reference_table: bool = False,
    ) -> None:
        if not (isinstance(row_type, type) and issubclass(row_type, msgspec.Struct)):
            raise DeclarationError("a table's row type must be a msgspec.Struct", table=name)
        self.schema = schema
        self.name = name
        self.row_type = row_type
        if comment is None and schema.docstring_comments and row_type.__doc__:
            comment = inspect.cleandoc(row_type.__doc__)
        self.comment = comment
        self.triggers = _unique_names(triggers, "trigger", name)
        if row_level_security not in (False, True, "force"):
            raise DeclarationError("row_level_security is True, False or 'force'", table=name)
        self.row_level_security: bool | Literal["force"] = row_level_security
        self.policies = _unique_names(policies, "policy", name)
        if self.policies and not row_level_security:
            raise DeclarationError(
                "policies have no effect without row level security: pass "
                "row_level_security=True (or 'force')",
                table=name,
            )
        self.grants = tuple(grants)
        self.renamed_from = renamed_from
        self.qualified_name = f"{schema.name}.{name}"
        self.sql_name = f"{_quote(schema.name)}.{_quote(name)}"
        self.columns: tuple[ColumnDef, ...] = self._resolve_columns()
        self.by_field: dict[str, ColumnDef] = {c.field: c for c in self.columns}
        self.by_name: dict[str, ColumnDef] = {c.name: c for c in self.columns}
        self.primary_key: tuple[str, ...] = tuple(c.name for c in self.columns if c.primary_key)
        self.soft_delete_column: ColumnDef | None = next(
            (c for c in self.columns if c.options.soft_delete), None
        )
        self._declared_fks = foreign_keys
        self._resolved_fks: tuple[ResolvedForeignKey, ...] | None = None
        self.indexes: tuple[Index, ...] = self._name_indexes(indexes)
        self.uniques: tuple[Unique, ...] = self._name_uniques(uniques)
        self.checks: tuple[Check, ...] = self._name_checks(checks)
        self.partitioning: Partitioning | None = resolve_partitioning(self, partition_by)
        """The table's partitioning, resolved (see `nxdata.partitioning`); None when it has
        none."""
        self.reference_table: bool = reference_table
        """True for a Citus reference table (see `nxdata.citus`)."""
        self.distributed_by: str | None = check_distribution(self, distributed_by, reference_table)
        """The SQL name of the Citus distribution column, or None."""
        self.visible_columns: tuple[ColumnDef, ...] = tuple(c for c in self.columns if not c.hidden)
        self.insert_type: type[msgspec.Struct] = self._derive_insert_type()
        self.update_type: type[msgspec.Struct] = self._derive_update_type()
        self.client_insert_type: type[msgspec.Struct] = self._derive_insert_type(client=True)
        self.client_update_type: type[msgspec.Struct] = self._derive_update_type(client=True)
        self._value_checks: tuple[tuple[str, Callable[[Any], str | None]], ...] = tuple(
            (c.field, check) for c in self.columns if (check := _value_check(c)) is not None
        )

    def __repr__(self) -> str:
        return f"Table({self.qualified_name})"

    @functools.cached_property
    def column_comments(self) -> dict[str, str]:
        """Column name → SQL comment: ``Column(comment=)``, else (with the schema's
        ``docstring_comments``) the field's docstring."""
        docs = _field_docstrings(self.row_type) if self.schema.docstring_comments else {}
        out = {}
        for column in self.columns:
            text = (
                column.options.comment
                if column.options.comment is not None
                else docs.get(column.field)
            )
            if text:
                out[column.name] = text
        return out

    # -- columns ---------------------------------------------------------------------------------

    def _resolve_columns(self) -> tuple[ColumnDef, ...]:
        try:
            hints = typing.get_type_hints(self.row_type, include_extras=True)
        except NameError as exc:
            raise DeclarationError(f"cannot resolve annotations: {exc}", table=self.name) from exc
        defaults = dict(
            zip(
                self.row_type.__struct_fields__[
                    len(self.row_type.__struct_fields__) - len(self.row_type.__struct_defaults__) :
                ],
                self.row_type.__struct_defaults__,
                strict=True,
            )
        )
        columns = []
        for field_name in self.row_type.__struct_fields__:
            try:
                resolved = resolve(hints[field_name])
            except TypeError as exc:
                raise DeclarationError(str(exc), table=self.name, column=field_name) from exc
            default = defaults.get(field_name, msgspec.NODEFAULT)
            if isinstance(default, Column | msgspec.Meta):
                raise DeclarationError(
                    _marker_as_default(field_name, hints[field_name], default),
                    table=self.name,
                    column=field_name,
                )
            options = resolved.column
            if isinstance(default, msgspec._core.Factory):
                if options.default_factory is None:
                    options = options.merged(Column(default_factory=default.factory))
                default = msgspec.NODEFAULT
            column_name = options.name or snake_case(field_name)
            if len(column_name) > MAX_IDENTIFIER:
                raise DeclarationError("column name longer than 63 bytes", table=self.name)
            if options.identity and resolved.sql_type not in ("integer", "bigint", "smallint"):
                raise DeclarationError(
                    "identity columns must be integer, bigint or smallint",
                    table=self.name,
                    column=field_name,
                )
            columns.append(
                ColumnDef(
                    field=field_name,
                    name=column_name,
                    sql_type=resolved.sql_type,
                    nullable=resolved.nullable,
                    kind=resolved.kind,
                    python_type=resolved.python_type,
                    options=options,
                    default=default,
                    enum_values=resolved.enum_values,
                    annotation=hints[field_name],
                )
            )
        if not columns:
            raise DeclarationError("a table needs at least one column", table=self.name)
        return tuple(columns)

    def column(self, name: str) -> ColumnDef:
        """The column with this field or column name; `DeclarationError` if there is none."""
        found = self.by_field.get(name) or self.by_name.get(name)
        if found is None:
            raise DeclarationError(
                f"no column {name!r} (columns: {', '.join(self.by_name)})", table=self.name
            )
        return found

    def _column_names(self, names: Sequence[str], what: str) -> tuple[str, ...]:
        if not names:
            raise DeclarationError(f"{what} needs at least one column", table=self.name)
        out = []
        for name in names:
            found = self.by_field.get(name) or self.by_name.get(name)
            if found is None:
                raise DeclarationError(
                    f"{what} names unknown column {name!r}", table=self.name, column=name
                )
            out.append(found.name)
        return tuple(out)

    def _checked_name(self, name: str) -> str:
        if len(name.encode()) > MAX_IDENTIFIER:
            raise DeclarationError(
                f"constraint name {name!r} is longer than 63 bytes: pass name=...",
                table=self.name,
            )
        return name

    # -- constraints -----------------------------------------------------------------------------

    def _name_indexes(self, indexes: tuple[Index, ...]) -> tuple[Index, ...]:
        out = []
        declared = list(indexes)
        declared += [Index(c.name) for c in self.columns if c.options.index]
        for index in declared:
            if index.expression is not None:
                if index.columns or not index.name:
                    raise DeclarationError(
                        "an expression index takes no columns and needs name=", table=self.name
                    )
                out.append(index)
                continue
            cols = self._column_names(index.columns, "index")
            if index.method is not None and index.method not in _INDEX_METHODS:
                raise DeclarationError(
                    f"unknown index method {index.method!r} (one of {sorted(_INDEX_METHODS)})",
                    table=self.name,
                )
            prefix = "UQ" if index.unique else "IDX"
            name = index.name or f"{prefix}_{self.name}_{'_'.join(cols)}"
            out.append(
                Index(
                    *cols,
                    name=self._checked_name(name),
                    unique=index.unique,
                    where=index.where,
                    method=index.method,
                )
            )
        return tuple(out)

    def _name_uniques(self, uniques: tuple[Unique, ...]) -> tuple[Unique, ...]:
        declared = list(uniques) + [Unique(c.name) for c in self.columns if c.options.unique]
        out = []
        for unique in declared:
            cols = self._column_names(unique.columns, "unique constraint")
            name = unique.name or f"UQ_{self.name}_{'_'.join(cols)}"
            out.append(
                Unique(
                    *cols,
                    name=self._checked_name(name),
                    nulls_not_distinct=unique.nulls_not_distinct,
                )
            )
        return tuple(out)

    def _name_checks(self, checks: tuple[Check, ...]) -> tuple[Check, ...]:
        out = []
        for column in self.columns:
            if column.enum_values:
                allowed = ", ".join(sql_literal(v) for v in column.enum_values)
                out.append(
                    Check(
                        f"{_quote(column.name)} IN ({allowed})",
                        self._checked_name(f"CK_{self.name}_{column.name}"),
                    )
                )
        for number, check in enumerate(checks, start=1):
            name = check.name or f"CK_{self.name}_{number}"
            out.append(Check(check.expression, self._checked_name(name)))
        return tuple(out)

    @property
    def foreign_keys(self) -> tuple[ResolvedForeignKey, ...]:
        """Foreign keys with targets resolved (targets may be declared after this table)."""
        if self._resolved_fks is None:
            self._resolved_fks = tuple(self._resolve_fk(fk) for fk in self._declared_fks)
        return self._resolved_fks

    def _resolve_fk(self, fk: ForeignKey) -> ResolvedForeignKey:
        target = _resolve_table_ref(fk.references, self)
        cols = self._column_names(fk.columns, "foreign key")
        ref_cols = (
            target._column_names(fk.ref_columns, "referenced key")
            if fk.ref_columns
            else target.primary_key
        )
        if len(cols) != len(ref_cols):
            raise DeclarationError(
                f"foreign key has {len(cols)} columns but references {len(ref_cols)}",
                table=self.name,
            )
        for action in (fk.on_delete, fk.on_update):
            if action not in _ACTIONS:
                raise DeclarationError(
                    f"unknown referential action {action!r} (one of {sorted(_ACTIONS)})",
                    table=self.name,
                )
        name = fk.name or f"FK_{self.name}_{'_'.join(cols)}_{target.name}_{'_'.join(ref_cols)}"
        resolved = ResolvedForeignKey(
            self._checked_name(name),
            cols,
            target,
            ref_cols,
            fk.on_delete,
            fk.on_update,
            fk.relation,
            fk.inverse,
        )
        check_foreign_key(self, resolved)
        return resolved

    # -- derived types ---------------------------------------------------------------------------

    def _derive_insert_type(self, *, client: bool = False) -> type[msgspec.Struct]:
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for c in self.columns:
            if c.identity == "always" or (client and (c.hidden or c.server_managed)):
                continue
            tp = self._input_type(c)
            if c.default is not msgspec.NODEFAULT:
                fields.append((c.field, tp, c.default))
            elif c.default_factory is not None:
                fields.append((c.field, tp, msgspec.field(default_factory=c.default_factory)))
            elif c.options.server_default is not None or c.identity is not None:
                fields.append((c.field, tp | msgspec.UnsetType, msgspec.UNSET))
            elif c.nullable:
                fields.append((c.field, tp, None))
            else:
                fields.append((c.field, tp))
        return msgspec.defstruct(
            f"{self.row_type.__name__}{'ClientInsert' if client else 'Insert'}",
            fields,
            kw_only=True,
            forbid_unknown_fields=True,
            module=self.row_type.__module__,
        )

    def _derive_update_type(self, *, client: bool = False) -> type[msgspec.Struct]:
        fields = []
        for c in self.updatable_columns:
            if client and (c.hidden or c.server_managed):
                continue
            tp = self._input_type(c)
            fields.append((c.field, tp | msgspec.UnsetType, msgspec.UNSET))
        return msgspec.defstruct(
            f"{self.row_type.__name__}{'ClientUpdate' if client else 'Update'}",
            fields,
            kw_only=True,
            forbid_unknown_fields=True,
            module=self.row_type.__module__,
        )

    def _input_type(self, column: ColumnDef) -> Any:
        """The type an insert or update value of `column` is validated against: its annotation
        with the user's ``msgspec.Meta`` constraints, ints bounded by their SQL type, ``| None``
        when nullable."""
        declared = column.annotation if column.annotation is not None else column.python_type
        try:
            tp = bounded(declared, column.sql_type)
        except TypeError as exc:
            raise DeclarationError(str(exc), table=self.name, column=column.field) from exc
        return tp | None if column.nullable and tp is not Any else tp

    @property
    def updatable_columns(self) -> tuple[ColumnDef, ...]:
        """Columns an update may set: not primary key, identity, immutable or auto-updated."""
        return tuple(
            c
            for c in self.columns
            if not (c.primary_key or c.identity or c.options.immutable or c.options.on_update)
        )

    def validate_insert(
        self, data: Mapping[str, Any] | msgspec.Struct | bytes | str, *, client: bool = False
    ) -> msgspec.Struct:
        """Validate data against the insert type; `ValidationError` names the field.

        With ``client=True`` the data is an API client's body: it is checked against
        ``client_insert_type`` (server-managed and hidden columns cannot be set), then completed
        with the defaults of the insert type (a new ``id``...). Either way the result is an
        ``insert_type`` instance.
        """
        if not client:
            validated = self._convert(data, self.insert_type, "insert")
        else:
            body = self._convert(data, self.client_insert_type, "client insert")
            validated = self.insert_type(**_given(body))
        return validated

    def validate_update(
        self, data: Mapping[str, Any] | msgspec.Struct | bytes | str, *, client: bool = False
    ) -> msgspec.Struct:
        """Validate a partial update; omitted fields stay ``UNSET`` ("leave it").

        With ``client=True`` it is checked against ``client_update_type`` (a client cannot set
        ``deleted_at``, ``modified_at``, read-only or hidden columns); the result is an
        ``update_type`` instance either way.
        """
        if not client:
            return self._convert(data, self.update_type, "update")
        body = self._convert(data, self.client_update_type, "client update")
        return self.update_type(**_given(body))

    def validate_row(self, data: Mapping[str, Any] | msgspec.Struct | bytes | str) -> T:
        """Validate a full row against the row type."""
        return self._convert(data, self.row_type, "row")  # type: ignore[return-value]

    def _convert(self, data: Any, target: type[msgspec.Struct], kind: _Kind) -> msgspec.Struct:
        try:
            if isinstance(data, bytes | bytearray | memoryview | str):
                validated = msgspec.json.decode(data, type=target)
            else:
                if isinstance(data, msgspec.Struct):
                    data = _given(data)
                validated = msgspec.convert(data, target)
        except msgspec.ValidationError as exc:
            raise self.validation_error(str(exc), kind) from exc
        except msgspec.DecodeError as exc:
            raise ValidationError(f"malformed JSON: {exc}", table=self.qualified_name) from exc
        except UnicodeError:
            raise ValidationError(
                "the data is not valid UTF-8 text", table=self.qualified_name
            ) from None
        except RecursionError:
            raise ValidationError(
                "the data is nested too deeply", table=self.qualified_name
            ) from None
        except (ValueError, TypeError, OverflowError) as exc:  # hostile values msgspec lets by
            raise ValidationError(
                f"cannot read the data: {exc}", table=self.qualified_name
            ) from None
        if kind != "row":
            self.check_values(validated)
        return validated

    def check_values(self, validated: msgspec.Struct, *, position: int | None = None) -> None:
        """What msgspec's types cannot express, on a validated insert or update: text PostgreSQL
        cannot store, numbers a ``numeric(p, s)`` would overflow or round, NaN and Infinity.
        `ValidationError` naming the field (and the row's `position` in a batch)."""
        for field, check in self._value_checks:
            value = getattr(validated, field, None)
            if value is None or value is msgspec.UNSET:
                continue
            problem = check(value)
            if problem is not None:
                at = (
                    f" - at `$[{position}].{field}`"
                    if position is not None
                    else f" - at `$.{field}`"
                )
                raise ValidationError(problem + at, table=self.qualified_name, field=field)

    def check_column(self, field: str, values: Sequence[Any], start: int = 0) -> None:
        """`check_values` for one field of many rows (``values[i]`` is row ``start + i``).

        Text columns are checked in one pass over the joined text; a problem is then located
        row by row.
        """
        check = dict(self._value_checks).get(field)
        if check is None:
            return
        column = self.by_field[field]
        if column.kind == "scalar" and column.python_type is str:
            joined = "".join(filter(None, values))
            if text_problem(joined) is None:
                return
        elif column.kind == "scalar" and column.python_type is Decimal:
            present = [v for v in values if v is not None and v is not msgspec.UNSET]
            if decimals_fit(present, numeric_bounds(column.sql_type.partition("[")[0])):
                return
        for index, value in enumerate(values):
            if value is None or value is msgspec.UNSET:
                continue
            problem = check(value)
            if problem is not None:
                raise ValidationError(
                    f"{problem} - at `$[{start + index}].{field}`",
                    table=self.qualified_name,
                    field=field,
                )

    def validation_error(self, message: str, kind: _Kind = "insert") -> ValidationError:
        """msgspec's `message` about `kind` data (``insert``, ``update`` or ``row``) of this table
        as a `ValidationError` naming the column: the first key of the path (``$.meta.tier`` →
        ``meta``; ``$[41].price`` → ``price`` for a list of rows), else the field the object at
        the root lacks or has in excess. A column that exists but cannot be set here is said so
        (``field `id` cannot be updated (primary key)``) instead of being called unknown.

        >>> table.validation_error("Expected `int`, got `str` - at `$[41].qty`").field
        'qty'
        """
        reason, path = _split_path(message)
        head = _PATH_HEAD.match(path or "")
        if head is not None and head.group(1):
            return ValidationError(message, table=self.qualified_name, field=head.group(1))
        root = _ROOT_FIELD.fullmatch(reason)
        if root is None:
            return ValidationError(message, table=self.qualified_name)
        field = root.group(2)
        if root.group(1) == "contains unknown":
            reason = self._not_settable(field, kind)
            message = reason if path is None else f"{reason} - at `${path}`"
        return ValidationError(message, table=self.qualified_name, field=field)

    def _not_settable(self, name: str, kind: _Kind) -> str:
        """Why `name` is refused in `kind` data: a column that cannot be set there, or unknown
        (with the nearest field when one is close)."""
        target: type[Any] = {
            "insert": self.insert_type,
            "update": self.update_type,
            "row": self.row_type,
            "client insert": self.client_insert_type,
            "client update": self.client_update_type,
        }[kind]
        fields: tuple[str, ...] = target.__struct_fields__
        column = self.by_field.get(name) or self.by_name.get(name)
        if kind.startswith("client") and column is not None and column.field not in fields:
            if column.hidden:  # the same answer as for a column that does not exist: no oracle
                column = None
            elif column.server_managed:
                return f"field `{name}` is managed by the server and cannot be set by a client"
        if column is not None and column.field not in fields:
            if kind == "insert":  # only identity-always columns are left out of inserts
                generated = f"generated (identity {column.identity})"
                return f"field `{name}` is {generated} and cannot be inserted"
            if column.primary_key:
                why = "primary key"
            elif column.identity:
                why = f"identity {column.identity}"
            elif column.options.immutable:
                why = "immutable"
            elif column.options.on_update:
                why = f"set to {column.options.on_update} by every update"
            else:
                why = "not updatable"
            return f"field `{name}` cannot be updated ({why})"
        unknown = f"Object contains unknown field `{clip(name)}`"
        if column is not None:  # the SQL name of a column whose field is spelled otherwise
            return f"{unknown} (did you mean `{column.field}`?)"
        close = difflib.get_close_matches(name[:100], fields, n=1, cutoff=0.7)
        return f"{unknown} (did you mean `{close[0]}`?)" if close else unknown


_Kind = Literal["insert", "update", "row", "client insert", "client update"]


def _given(struct: msgspec.Struct) -> dict[str, Any]:
    """The fields of a Struct that are set (not UNSET), as keywords."""
    return {
        f: value
        for f in struct.__struct_fields__
        if (value := getattr(struct, f)) is not msgspec.UNSET
    }


def _value_check(column: ColumnDef) -> Callable[[Any], str | None] | None:
    """The strict check (see `Table.check_values`) of one column's values, or None."""
    tp = column.python_type
    if column.kind == "array":
        (item,) = typing.get_args(tp) or (Any,)
        item_check = _scalar_check(typing.get_args(item)[0] if _is_optional(item) else item, column)
        if item_check is None:
            return None

        def check_items(values: Any) -> str | None:
            for value in values:
                if value is not None and (problem := item_check(value)) is not None:
                    return problem
            return None

        return check_items
    if column.kind == "scalar":
        return _scalar_check(tp, column)
    return None


def _is_optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _scalar_check(tp: Any, column: ColumnDef) -> Callable[[Any], str | None] | None:
    if tp is str:
        return text_problem
    from decimal import Decimal

    if tp is Decimal:
        bounds = numeric_bounds(column.sql_type.partition("[")[0])
        return lambda value: decimal_problem(value, bounds)
    return None


# msgspec's messages: "<reason> - at `$<path>`", the path left out at the root.
_AT = " - at `$"
_PATH_HEAD = re.compile(r"(?:\[\d+\])?(?:\.([^\W\d]\w*))?")  # [row of a list].column
_ROOT_FIELD = re.compile(r"Object (missing required|contains unknown) field `(.*)`", re.DOTALL)


def _split_path(message: str) -> tuple[str, str | None]:
    """msgspec's message → (reason, path after ``$``), the path None when the error is at the
    root. The last " - at `$" is the path's: a reason may quote a key containing anything."""
    reason, at, path = message.rpartition(_AT)
    if not at or not path.endswith("`") or path[:1] not in (".", "["):
        return message, None  # msgspec leaves the root out: "`$`" is a quoted key's
    return reason, path[:-1]


def _marker_as_default(field: str, annotation: Any, marker: Column | msgspec.Meta) -> str:
    """The fix for ``x: str = nx.Column(...)``: markers go in the annotation, not the default."""
    if isinstance(marker, Column):
        what, written = "a Column", f"nx.{marker!r}"
    else:
        what, written = "a msgspec.Meta", repr(marker)
    shown = annotation.__name__ if isinstance(annotation, type) else repr(annotation)
    shown = shown.replace("typing.", "")
    fix = f"`{field}: Annotated[{shown}, {written}]`"
    return f"{what} goes in the annotation, not the default: {fix}"


def _resolve_table_ref(ref: Any, source: Table[Any]) -> Table[Any]:
    if isinstance(ref, Table):
        return ref
    if isinstance(ref, type):
        return table_of(ref)
    if isinstance(ref, str):
        schema_name, _, table_name = ref.rpartition(".")
        if not schema_name or schema_name == source.schema.name:
            found = source.schema.tables.get(table_name)
            if found is not None:
                return found
        schema = _SCHEMAS.get(schema_name or source.schema.name)
        if schema is not None and table_name in schema.tables:
            return schema.tables[table_name]
        raise DeclarationError(f"foreign key references unknown table {ref!r}", table=source.name)
    raise DeclarationError(f"foreign key target {ref!r} is not a table", table=source.name)


def _unique_names(items: Iterable[Any], what: str, table: str) -> tuple[Any, ...]:
    out = tuple(items)
    names = [i.name for i in out]
    for name in names:
        if names.count(name) > 1:
            raise DeclarationError(f"{what} {name!r} is declared twice", table=table)
    return out


def _field_docstrings(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right under a field) of `cls` and its bases, read
    from their source; {} where there is no source (a REPL, a frozen app)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not issubclass(klass, msgspec.Struct) or klass is msgspec.Struct:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
            tree = ast.parse(source)
        except (OSError, TypeError, SyntaxError):
            continue
        body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef)), [])
        for node, following in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                out[node.target.id] = inspect.cleandoc(following.value.value)
    return out
