"""Declaring what a schema holds besides tables: views, functions, triggers, sequences, row-level
security policies, grants, roles, and the objects nxdata must leave alone.

Declared next to the tables, they are built in the throwaway database like tables, so
``nxdata diff`` creates, replaces and drops them, and ``nxdata check`` reports their drift::

    import nxdata as nx

    finance = nx.Schema("finance")
    tenant = nx.Role("tenant_user")

    refuse_change = finance.function(
        "refuse_change",
        returns="trigger",
        body="BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END",
    )

    @finance.table(
        "Entry",
        triggers=[nx.Trigger("immutable", refuse_change, timing="before",
                             events=("update", "delete"))],
        row_level_security=True,
        policies=[nx.Policy("tenant", to=tenant,
                            using="merchant_id = current_setting('app.merchant_id', true)")],
        grants=[nx.Grant("select", to=tenant)],
    )
    class Entry(nx.CommonColumns): ...

    finance.view("EntryTotal", 'SELECT merchant_id, sum(amount) AS total FROM finance."Entry" '
                 "GROUP BY merchant_id")
    finance.grant("usage", to=tenant)                     # on the schema itself
    finance.unmanaged("index idx_*", "trigger Entry.audit_*")   # made by hand: leave them alone

Every object is immutable once declared; names follow PostgreSQL's rules (63 bytes at most).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import DeclarationError

if TYPE_CHECKING:
    from .table import Index, Schema, Table

__all__ = [
    "UNMANAGED_KINDS",
    "Function",
    "Grant",
    "Policy",
    "Role",
    "Sequence",
    "Trigger",
    "Unmanaged",
    "View",
    "quote_ident",
    "sql_string",
]

MAX_IDENTIFIER = 63
_ORDER = itertools.count()  # declaration order: a view is created after the views declared first

TriggerTiming = Literal["before", "after", "instead of"]
TriggerEvent = Literal["insert", "update", "delete", "truncate"]
PolicyCommand = Literal["all", "select", "insert", "update", "delete"]
Volatility = Literal["volatile", "stable", "immutable"]

UNMANAGED_KINDS = (
    "index",
    "constraint",
    "view",
    "function",
    "trigger",
    "policy",
    "sequence",
    "grant",
)
"""What an `Unmanaged` pattern can name."""

PRIVILEGES: dict[str, tuple[str, ...]] = {
    "table": ("select", "insert", "update", "delete", "truncate", "references", "trigger"),
    "view": ("select", "insert", "update", "delete", "truncate", "references", "trigger"),
    "sequence": ("usage", "select", "update"),
    "function": ("execute",),
    "schema": ("usage", "create"),
}
"""The privileges each kind of object takes (``all`` stands for every one of them)."""


def quote_ident(identifier: str) -> str:
    """``"identifier"``, with inner quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    """``'text'``, with inner quotes doubled: a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise DeclarationError(f"a {what} needs a name")
    if len(name.encode()) > MAX_IDENTIFIER:
        raise DeclarationError(f"{what} name {name!r} is longer than 63 bytes")
    return name


def _words(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(dict.fromkeys(" ".join(str(i).lower().split()) for i in items if str(i).strip()))
    if not out:
        raise DeclarationError(f"{what} is empty")
    return out


@dataclass(frozen=True, slots=True)
class Role:
    """A database role that grants and policies name: ``nx.Role("tenant_user")``.

    Roles belong to the server, not to a schema. A declared role is created (``NOLOGIN`` unless
    ``login=True``, never with a password) when missing — by ``nxdata diff`` on the server it
    diffs against, since the throwaway database's grants need it, and by every migration file
    that grants to it or names it in a policy. Roles are never dropped or altered. A role given
    as a plain string must already exist.
    """

    name: str
    login: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name, "role")
        if self.name.lower() in ("public", "current_user", "session_user", "current_role"):
            raise DeclarationError(f"{self.name!r} is not a role to declare")

    def create_statement(self) -> str:
        """A ``DO`` block that creates the role when it does not exist (idempotent)."""
        login = "LOGIN" if self.login else "NOLOGIN"
        return (
            "DO $role$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = "
            f"{sql_string(self.name)}) THEN CREATE ROLE {quote_ident(self.name)} {login}; "
            "END IF; END $role$;"
        )


RoleLike = Role | str


def _role_names(to: RoleLike | Iterable[RoleLike], what: str) -> tuple[str, ...]:
    items: list[RoleLike] = [to] if isinstance(to, Role | str) else list(to)
    if not items:
        raise DeclarationError(f"{what} names no role")
    out = []
    for item in items:
        name = item.name if isinstance(item, Role) else str(item)
        out.append("public" if name.lower() == "public" else _check_name(name, "role"))
    return tuple(dict.fromkeys(out))


def _declared_roles(to: RoleLike | Iterable[RoleLike]) -> tuple[Role, ...]:
    items = [to] if isinstance(to, Role | str) else list(to)
    return tuple(i for i in items if isinstance(i, Role))


def _role_sql(name: str) -> str:
    return "PUBLIC" if name == "public" else quote_ident(name)


# -- schema-level objects --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class View:
    """A view (or, with ``materialized=True``, a materialized view) of a schema.

    Declare it with `Schema.view` / `Schema.materialized_view`. ``query`` is the ``SELECT``, with
    every table schema-qualified (``FROM sale."SaleOrder"``): the view is created with only
    ``pg_catalog`` on the search path. A view is created after the tables and after the views
    declared before it, so declare views in the order they select from each other.
    ``security_invoker`` (PostgreSQL 15+) makes the view check the caller's privileges and
    row-level security rather than its owner's. A materialized view may have ``indexes`` (a
    unique one allows ``REFRESH MATERIALIZED VIEW CONCURRENTLY``).
    """

    schema: Schema
    name: str
    query: str
    materialized: bool = False
    indexes: tuple[Index, ...] = ()
    comment: str | None = None
    security_invoker: bool = False
    order: int = field(default_factory=lambda: next(_ORDER))

    @property
    def sql_name(self) -> str:
        """``"schema"."name"``."""
        return f"{quote_ident(self.schema.name)}.{quote_ident(self.name)}"

    @property
    def qualified_name(self) -> str:
        """``schema.name``."""
        return f"{self.schema.name}.{self.name}"

    @property
    def kind(self) -> str:
        """``view`` or ``materialized view``."""
        return "materialized view" if self.materialized else "view"

    def create_statements(self) -> list[str]:
        """``CREATE [MATERIALIZED] VIEW``, its indexes and its comment."""
        query = self.query.strip().rstrip(";").strip()
        options = " WITH (security_invoker = true)" if self.security_invoker else ""
        out = [f"CREATE {self.kind.upper()} {self.sql_name}{options} AS\n{query}"]
        for index in self.indexes:
            unique = "UNIQUE " if index.unique else ""
            using = f" USING {index.method}" if index.method else ""
            where = f" WHERE {index.where}" if index.where else ""
            columns = index.expression or ", ".join(quote_ident(c) for c in index.columns)
            out.append(
                f"CREATE {unique}INDEX {quote_ident(index.name or '')} ON {self.sql_name}"
                f"{using} ({columns}){where}"
            )
        if self.comment is not None:
            out.append(
                f"COMMENT ON {self.kind.upper()} {self.sql_name} IS {sql_string(self.comment)}"
            )
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Function:
    """A function (or, with ``procedure=True``, a procedure) of a schema; declare it with
    `Schema.function` / `Schema.procedure`.

    ``args`` is the argument list as SQL writes it (``"p_merchant text, p_day date"``);
    ``returns`` the return type (``"trigger"`` for a trigger function, ``"void"``,
    ``"SETOF sale.\\"SaleOrder\\""``...); ``body`` the code, put between dollar quotes;
    ``language`` ``plpgsql`` (default) or ``sql``. ``volatility``, ``strict``,
    ``security_definer`` and ``search_path`` (a ``SET search_path`` for the function, advisable
    with ``security_definer``) are written as given. A function is created before the tables, so
    CHECKs and defaults may call it; its body is not checked then (``check_function_bodies``
    off), so it may name tables declared later. Every role may call a new function
    (PostgreSQL grants EXECUTE to PUBLIC): ``public_execute=False`` takes that back, as a
    ``security_definer`` function should, so only the roles granted EXECUTE may call it.
    """

    schema: Schema
    name: str
    body: str
    args: str = ""
    returns: str | None = "trigger"
    language: str = "plpgsql"
    volatility: Volatility = "volatile"
    strict: bool = False
    security_definer: bool = False
    search_path: str | None = None
    procedure: bool = False
    comment: str | None = None
    public_execute: bool = True

    @property
    def sql_name(self) -> str:
        """``"schema"."name"``."""
        return f"{quote_ident(self.schema.name)}.{quote_ident(self.name)}"

    @property
    def qualified_name(self) -> str:
        """``schema.name``."""
        return f"{self.schema.name}.{self.name}"

    @property
    def kind(self) -> str:
        """``function`` or ``procedure``."""
        return "procedure" if self.procedure else "function"

    @property
    def signature(self) -> str:
        """``"schema"."name"(args)``: how GRANT, COMMENT and DROP name it."""
        return f"{self.sql_name}({self.args.strip()})"

    def create_statements(self) -> list[str]:
        """``CREATE FUNCTION`` (or ``PROCEDURE``) and its comment."""
        tag = "$function$"
        while tag in self.body:
            tag = tag[:-1] + "_$"
        head = f"CREATE {self.kind.upper()} {self.signature}"
        if not self.procedure:
            head += f"\n RETURNS {self.returns}"
        head += f"\n LANGUAGE {self.language}"
        if not self.procedure:
            if self.volatility != "volatile":
                head += f"\n {self.volatility.upper()}"
            if self.strict:
                head += "\n STRICT"
        if self.security_definer:
            head += "\n SECURITY DEFINER"
        if self.search_path is not None:
            head += f"\n SET search_path TO {self.search_path}"
        out = [f"{head}\nAS {tag}{self.body}{tag}"]
        if not self.public_execute:
            out.append(f"REVOKE EXECUTE ON ROUTINE {self.signature} FROM PUBLIC")
        if self.comment is not None:
            out.append(
                f"COMMENT ON {self.kind.upper()} {self.signature} IS {sql_string(self.comment)}"
            )
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Sequence:
    """A sequence of a schema (declare it with `Schema.sequence`): invoice numbers and the like.

    ``owned_by`` (``"Table.column"``) drops the sequence with that column. A column takes its
    values with ``Column(server_default="nextval('sale.invoice_number')")``.
    """

    schema: Schema
    name: str
    data_type: Literal["smallint", "integer", "bigint"] = "bigint"
    start: int = 1
    increment: int = 1
    min_value: int | None = None
    max_value: int | None = None
    cache: int = 1
    cycle: bool = False
    owned_by: str | None = None
    comment: str | None = None

    @property
    def sql_name(self) -> str:
        """``"schema"."name"``."""
        return f"{quote_ident(self.schema.name)}.{quote_ident(self.name)}"

    @property
    def qualified_name(self) -> str:
        """``schema.name``."""
        return f"{self.schema.name}.{self.name}"

    def options_sql(self) -> str:
        """The options as ``CREATE SEQUENCE`` / ``ALTER SEQUENCE`` write them."""
        parts = [f"AS {self.data_type}", f"INCREMENT BY {self.increment}"]
        parts.append(f"MINVALUE {self.min_value}" if self.min_value is not None else "NO MINVALUE")
        parts.append(f"MAXVALUE {self.max_value}" if self.max_value is not None else "NO MAXVALUE")
        parts += [f"START WITH {self.start}", f"CACHE {self.cache}"]
        parts.append("CYCLE" if self.cycle else "NO CYCLE")
        return " ".join(parts)

    def owner_sql(self) -> str | None:
        """``"schema"."Table"."column"`` of ``owned_by``, or None."""
        if self.owned_by is None:
            return None
        table, _, column = self.owned_by.partition(".")
        return f"{quote_ident(self.schema.name)}.{quote_ident(table)}.{quote_ident(column)}"

    def create_statements(self) -> list[str]:
        """``CREATE SEQUENCE`` and its comment (``OWNED BY`` comes after the tables)."""
        out = [f"CREATE SEQUENCE {self.sql_name} {self.options_sql()}"]
        if self.comment is not None:
            out.append(f"COMMENT ON SEQUENCE {self.sql_name} IS {sql_string(self.comment)}")
        return out


# -- table-level objects ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    """A trigger on a table, declared in ``@schema.table(..., triggers=[...])``.

    ``Trigger("immutable", refuse_change, timing="before", events=("update", "delete"))``:
    ``function`` is a declared trigger `Function` or ``"schema.name"``; ``for_each`` ``row``
    (default) or ``statement``; ``when`` a condition (``"OLD.status IS DISTINCT FROM
    NEW.status"``); ``update_of`` columns for ``UPDATE OF``; ``args`` literal arguments.
    """

    name: str
    function: Function | str
    timing: TriggerTiming = "before"
    events: tuple[TriggerEvent, ...] = ("insert", "update")
    for_each: Literal["row", "statement"] = "row"
    when: str | None = None
    update_of: tuple[str, ...] = ()
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.name, "trigger")
        if self.timing not in ("before", "after", "instead of"):
            raise DeclarationError(
                f"trigger {self.name}: timing {self.timing!r} is not before, after or instead of"
            )
        events = tuple(self.events) if not isinstance(self.events, str) else (self.events,)
        if not events or any(e not in ("insert", "update", "delete", "truncate") for e in events):
            raise DeclarationError(
                f"trigger {self.name}: events must be insert, update, delete or truncate"
            )
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "update_of", tuple(self.update_of))
        object.__setattr__(self, "args", tuple(self.args))
        if self.for_each not in ("row", "statement"):
            raise DeclarationError(f"trigger {self.name}: for_each is row or statement")
        if self.update_of and "update" not in events:
            raise DeclarationError(f"trigger {self.name}: update_of needs the update event")

    def function_sql(self) -> str:
        """The function as the trigger calls it: ``"schema"."name"``."""
        if isinstance(self.function, Function):
            return self.function.sql_name
        schema, dot, name = str(self.function).partition(".")
        if not dot:
            raise DeclarationError(f"trigger {self.name}: name its function as 'schema.name'")
        return f"{quote_ident(schema)}.{quote_ident(name)}"

    def create_statement(self, table: Table[Any]) -> str:
        """``CREATE TRIGGER`` on `table`."""
        events = []
        for event in self.events:
            if event == "update" and self.update_of:
                cols = ", ".join(quote_ident(table.column(c).name) for c in self.update_of)
                events.append(f"UPDATE OF {cols}")
            else:
                events.append(event.upper())
        sql = (
            f"CREATE TRIGGER {quote_ident(self.name)} {self.timing.upper()} {' OR '.join(events)}"
            f" ON {table.sql_name} FOR EACH {self.for_each.upper()}"
        )
        if self.when:
            sql += f" WHEN ({self.when})"
        args = ", ".join(sql_string(a) for a in self.args)
        return sql + f" EXECUTE FUNCTION {self.function_sql()}({args})"


@dataclass(frozen=True, slots=True)
class Policy:
    """A row-level security policy, declared in ``@schema.table(..., policies=[...])`` together
    with ``row_level_security=True`` (or ``"force"``, which applies it to the table's owner too).

    ``Policy("tenant", to=tenant_role, using="merchant_id = current_setting('app.merchant_id',
    true)")``: ``command`` ``all`` (default), ``select``, ``insert``, ``update`` or ``delete``;
    ``using`` filters the rows a command sees, ``with_check`` the rows it may write (default:
    ``using``); ``permissive=False`` makes a restrictive policy. Set the value per transaction
    with ``db.transaction(settings={"app.merchant_id": ...})``.
    """

    name: str
    to: RoleLike | tuple[RoleLike, ...] = "public"
    command: PolicyCommand = "all"
    using: str | None = None
    with_check: str | None = None
    permissive: bool = True

    def __post_init__(self) -> None:
        _check_name(self.name, "policy")
        if self.command not in ("all", "select", "insert", "update", "delete"):
            raise DeclarationError(
                f"policy {self.name}: command {self.command!r} is not all, select, insert, "
                "update or delete"
            )
        if self.using is None and self.with_check is None:
            raise DeclarationError(f"policy {self.name}: give using= and/or with_check=")
        if self.command == "insert" and self.using is not None:
            raise DeclarationError(
                f"policy {self.name}: an insert policy takes with_check=, not using="
            )
        if self.command in ("select", "delete") and self.with_check is not None:
            raise DeclarationError(
                f"policy {self.name}: a {self.command} policy takes using=, not with_check="
            )
        if not isinstance(self.to, Role | str):
            object.__setattr__(self, "to", tuple(self.to))

    @property
    def roles(self) -> tuple[str, ...]:
        """The role names the policy applies to."""
        return _role_names(self.to, f"policy {self.name}")

    @property
    def declared_roles(self) -> tuple[Role, ...]:
        """The `Role` objects among ``to``."""
        return _declared_roles(self.to)

    def create_statement(self, table: Table[Any]) -> str:
        """``CREATE POLICY`` on `table`."""
        sql = (
            f"CREATE POLICY {quote_ident(self.name)} ON {table.sql_name}"
            f" AS {'PERMISSIVE' if self.permissive else 'RESTRICTIVE'}"
            f" FOR {self.command.upper()} TO {', '.join(_role_sql(r) for r in self.roles)}"
        )
        if self.using is not None:
            sql += f" USING ({self.using})"
        if self.with_check is not None:
            sql += f" WITH CHECK ({self.with_check})"
        return sql


GrantTarget = (
    Any  # a row class, Table, View, Function, Sequence, or a "Table" / "schema.Table" name
)


@dataclass(frozen=True, slots=True)
class Grant:
    """Privileges granted to roles: ``nx.Grant("select, insert", to=tenant_role)``.

    In ``@schema.table(..., grants=[...])`` it is on that table; `Schema.grant` puts it on the
    schema itself (``usage``) or on ``on=`` objects (a view, a function, a sequence, a table).
    ``"all"`` stands for every privilege of the object's kind. Privileges a declaration does not
    grant are revoked by the next diff — with the objects made outside the declarations, only
    with ``--unsafe`` (see `Unmanaged` to leave them alone).
    """

    privileges: tuple[str, ...]
    to: tuple[RoleLike, ...]
    on: tuple[GrantTarget, ...] = ()

    def __init__(
        self,
        privileges: str | Iterable[str],
        *,
        to: RoleLike | Iterable[RoleLike],
        on: GrantTarget | Iterable[GrantTarget] = (),
    ) -> None:
        object.__setattr__(self, "privileges", _words(privileges, "a grant's privileges"))
        roles = (to,) if isinstance(to, Role | str) else tuple(to)
        _role_names(roles, "a grant")
        object.__setattr__(self, "to", roles)
        targets = on if isinstance(on, list | tuple | set | frozenset) else (on,)
        object.__setattr__(self, "on", tuple(targets))

    @property
    def roles(self) -> tuple[str, ...]:
        """The role names."""
        return _role_names(self.to, "a grant")

    @property
    def declared_roles(self) -> tuple[Role, ...]:
        """The `Role` objects among ``to``."""
        return _declared_roles(self.to)


@dataclass(frozen=True, slots=True)
class ResolvedGrant:
    """One privilege on one object to one role: what the catalogs hold."""

    kind: str  # table, view, sequence, function, schema
    target: str  # the object's SQL name (a function's signature)
    identity: str  # schema.name (schema for a schema), for matching and messages
    privilege: str
    role: str

    def statement(self, *, revoke: bool = False) -> str:
        """``GRANT ... TO ...`` (or ``REVOKE ... FROM ...``)."""
        on = {"table": "TABLE", "view": "TABLE", "sequence": "SEQUENCE", "schema": "SCHEMA"}.get(
            self.kind, "FUNCTION"
        )
        verb, direction = ("REVOKE", "FROM") if revoke else ("GRANT", "TO")
        role = _role_sql(self.role)
        return f"{verb} {self.privilege.upper()} ON {on} {self.target} {direction} {role};"


def expand_privileges(privileges: Seq[str], kind: str, where: str) -> tuple[str, ...]:
    """``all`` spelled out for `kind`; `DeclarationError` for a privilege `kind` does not take."""
    allowed = PRIVILEGES[kind]
    out: list[str] = []
    for privilege in privileges:
        if privilege in ("all", "all privileges"):
            out += allowed
        elif privilege in allowed:
            out.append(privilege)
        else:
            raise DeclarationError(
                f"{where}: a {kind} takes {', '.join(allowed)} or all, not {privilege!r}"
            )
    return tuple(dict.fromkeys(out))


# -- objects to leave alone ------------------------------------------------------------------------

_PATTERN = re.compile(r"^\s*(\w+)\s+(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class Unmanaged:
    """Objects made outside the declarations that ``nxdata diff`` and ``check`` leave alone.

    ``Unmanaged("index", "sale.idx_*")``: ``kind`` one of `UNMANAGED_KINDS`; ``pattern`` a
    shell-style pattern on ``schema.name`` (indexes, views, functions, sequences),
    ``schema.Table.name`` (triggers, policies, constraints) or, for grants, the role
    (``grant reporting_*``). `Schema.unmanaged` takes ``"kind pattern"`` strings relative to
    the schema; ``[tool.nxdata] unmanaged`` takes them with the schema.
    """

    kind: str
    pattern: str

    def __post_init__(self) -> None:
        if self.kind not in UNMANAGED_KINDS:
            raise DeclarationError(
                f"unmanaged kind {self.kind!r} is not one of {', '.join(UNMANAGED_KINDS)}"
            )

    @classmethod
    def parse(cls, text: str, *, schema: str | None = None) -> Unmanaged:
        """``"index sale.idx_*"`` (or ``"index idx_*"`` with `schema`); `DeclarationError`
        naming the text when it is not ``kind pattern``."""
        match = _PATTERN.match(text)
        if match is None:
            raise DeclarationError(
                f"unmanaged {text!r}: write 'kind pattern', e.g. 'index sale.idx_*' "
                f"(kinds: {', '.join(UNMANAGED_KINDS)})"
            )
        kind, pattern = match.group(1).lower(), match.group(2)
        if schema is not None and kind != "grant":
            pattern = f"{schema}.{pattern}"
        return cls(kind, pattern)

    def matches(self, kind: str, identity: str) -> bool:
        """Whether an object of `kind` named `identity` is left alone."""
        if kind == "materialized view":
            kind = "view"
        if kind == "procedure":
            kind = "function"
        return kind == self.kind and fnmatch.fnmatchcase(identity, self.pattern)
