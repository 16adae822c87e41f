"""Citus-ready declarations: tables distributed by a column, reference tables, checked the way
Citus requires, and the SQL that distributes them.

Two table options::

    import msgspec
    import nxdata as nx

    saas = nx.Schema("saas")

    @saas.table("Plan", reference_table=True)      # a copy on every node: joins stay local
    class Plan(nx.IdColumns):
        name: str

    @saas.table(
        "Invoice",
        distributed_by="tenant_id",                 # rows live on the shard of their tenant
        uniques=[nx.Unique("tenant_id", "number")],
        foreign_keys=[nx.ForeignKey("plan_id", Plan)],
    )
    class Invoice(msgspec.Struct, kw_only=True):
        tenant_id: Annotated[str, nx.Column(primary_key=True)]
        id: Annotated[str, nx.Column(primary_key=True, default_factory=nx.new_id)]
        number: int
        plan_id: str

What Citus requires is checked when the table is declared (its own keys) and when its foreign
keys are resolved (the tables they point at may be declared later), each with a
`DeclarationError` naming the table, the constraint and the column:

- the distribution column exists, is ``NOT NULL`` (Citus routes every row by it) and is a
  plain scalar; the primary key, every unique constraint and unique index include it;
- identity columns of distributed and reference tables are ``bigint`` (Citus 11.2+);
- a foreign key between distributed tables includes both distribution columns, at the same
  position (the tables are co-located: the join is on one shard);
- a distributed or reference table may reference a reference table; a distributed table may
  not reference a local table; a reference table may not reference a distributed table; a local
  table may not reference a distributed one (local and reference tables may reference each
  other: Citus makes the local one a "Citus local table");
- a reference table is not partitioned (a distributed one may be: both columns then belong in
  its keys).

``nxdata diff`` writes, after the tables, indexes and keys of a migration and before its foreign
keys, one statement per newly created (or, on a server with Citus, not yet distributed) table —
see `distribution_statement`. On a server without the ``citus`` extension it does nothing but
say so (a NOTICE): the same declarations and migrations run on plain PostgreSQL, tables staying
local; on Citus they distribute the tables. The throwaway database that ``nxdata diff`` builds
never runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import DeclarationError

if TYPE_CHECKING:
    from .table import ResolvedForeignKey, Table

__all__ = ["check_distribution", "check_foreign_key", "distribution_statement"]


def check_distribution(
    table: Table[Any], distributed_by: str | None, reference: bool
) -> str | None:
    """Check a table's own Citus options (see the module docstring); returns the distribution
    column's SQL name (None for a reference or local table)."""
    where = table.qualified_name
    if reference not in (True, False):
        raise DeclarationError("reference_table is True or False", table=where)
    if distributed_by is None and not reference:
        return None
    if distributed_by is not None and reference:
        raise DeclarationError(
            "a table is either distributed (distributed_by=) or a reference table "
            "(reference_table=True), not both",
            table=where,
        )
    for each in table.columns:
        if each.identity and each.sql_type.lower() not in ("bigint", "int8"):
            kind = "distributed" if distributed_by is not None else "reference"
            raise DeclarationError(
                f"identity column of a {kind} table must be bigint, not {each.sql_type} "
                "(Citus supports bigint identities only): use nx.BigIntIdentity",
                table=where,
                column=each.name,
            )
    if reference:
        if table.partitioning is not None:
            raise DeclarationError(
                "a reference table cannot be partitioned (Citus distributes partitioned "
                "tables by hash only): use distributed_by=, or drop partition_by",
                table=where,
            )
        return None
    if not isinstance(distributed_by, str) or not distributed_by:
        raise DeclarationError("distributed_by names a column", table=where)
    column = table.by_field.get(distributed_by) or table.by_name.get(distributed_by)
    if column is None:
        raise DeclarationError(
            f"distributed_by names unknown column {distributed_by!r} "
            f"(columns: {', '.join(table.by_name)})",
            table=where,
            column=distributed_by,
        )
    if column.nullable:
        raise DeclarationError(
            "the distribution column must be NOT NULL (Citus routes every row by it): "
            "drop the `| None`",
            table=where,
            column=column.name,
        )
    if column.kind not in ("scalar", "enum"):
        raise DeclarationError(
            f"cannot distribute by a {column.sql_type} column: use a scalar column "
            "(text, uuid, integer, bigint...)",
            table=where,
            column=column.name,
        )
    from .partitioning import _check_keys_include

    _check_keys_include(table, column.name, "distribution column", "distributed_by")
    return column.name


def _kind(table: Table[Any]) -> str:
    if table.distributed_by is not None:
        return "distributed"
    return "reference" if table.reference_table else "local"


def check_foreign_key(table: Table[Any], fk: ResolvedForeignKey) -> None:
    """Citus's rules for a foreign key from `table` (see the module docstring)."""
    source, target = _kind(table), _kind(fk.target)
    where = table.qualified_name
    about = f"foreign key {fk.name} to {fk.target.qualified_name}"
    if target == "reference" or (source != "distributed" and target == "local"):
        return  # to a reference table; between local and reference or local tables
    if source == "distributed" and target == "local":
        raise DeclarationError(
            f"{about}: a distributed table cannot reference a local table: declare "
            f"{fk.target.qualified_name} reference_table=True (small, shared rows) or "
            "distributed_by= the same column",
            table=where,
        )
    if source == "reference":
        raise DeclarationError(
            f"{about}: a reference table cannot reference a distributed table (its rows are on "
            "every node, the referenced ones on one shard)",
            table=where,
        )
    if source == "local":
        raise DeclarationError(
            f"{about}: a local table cannot reference a distributed table: distribute "
            f"{table.qualified_name} by the same column, or drop the foreign key",
            table=where,
        )
    # distributed -> distributed: co-located on the distribution column.
    mine, theirs = table.distributed_by, fk.target.distributed_by
    pairs = list(zip(fk.columns, fk.ref_columns, strict=True))
    if (mine, theirs) not in pairs:
        raise DeclarationError(
            f"{about}: a foreign key between distributed tables must include both distribution "
            f"columns, {mine!r} -> {theirs!r} (it has {', '.join(fk.columns)} -> "
            f"{', '.join(fk.ref_columns)}): reference ({mine}, ...) -> ({theirs}, ...), "
            f"with a key of {fk.target.name} that includes {theirs!r}",
            table=where,
            column=mine,
        )


def distribution_statement(table: Table[Any]) -> str | None:
    """The statement that makes `table` distributed (``create_distributed_table``) or a
    reference table (``create_reference_table``); None for a local table.

    It is idempotent (a table ``pg_dist_partition`` already has as declared is left as it is)
    and harmless without Citus: on a server without the ``citus`` extension it only raises a
    NOTICE, and the table stays local.
    """
    if table.distributed_by is not None:
        call = (
            f"create_distributed_table({_string(table.sql_name)}, {_string(table.distributed_by)})"
        )
        what = f"distributed by {table.distributed_by}"
    elif table.reference_table:
        call = f"create_reference_table({_string(table.sql_name)})"
        what = "a reference table"
    else:
        return None
    regclass = f"{_string(table.sql_name)}::regclass"
    # A Citus local table (in pg_dist_partition too, partmethod 'n') is distributed all the same.
    done = "partmethod = 'h'" if table.distributed_by is not None else "repmodel = 't'"
    notice = _string(
        f"nxdata: citus is not installed: {table.qualified_name} stays a local table "
        f"(declared {what})"
    ).replace("%", "%%")
    return (
        "DO $nxdata_citus$\n"
        "BEGIN\n"
        "    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN\n"
        f"        RAISE NOTICE {notice};\n"
        "    ELSIF NOT EXISTS (SELECT FROM pg_dist_partition\n"
        f"                      WHERE logicalrelid = {regclass} AND {done}) THEN\n"
        f"        PERFORM {call};\n"
        "    END IF;\n"
        "END\n"
        "$nxdata_citus$"
    )


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
