"""What migra does not compare, compared from PostgreSQL's catalogs, and which objects a diff may
drop.

- **comments** on tables, columns (of views too), views, materialized views, functions,
  procedures, sequences, indexes, constraints, triggers, policies, enum and composite types
  and the schema itself (migra compares none);
- **sequence options** (``ALTER SEQUENCE``: migra only creates and drops sequences) and
  ``OWNED BY``; an identity column's sequence options (``ALTER TABLE ... ALTER COLUMN ...
  SET INCREMENT BY ...``: migra compares only whether a column is an identity);
- ``FORCE ROW LEVEL SECURITY`` (migra only enables and disables it);
- **privileges** on tables, views, sequences, functions, the schema itself and columns, with
  their grant option, from the objects' ACLs (migra's optional privileges cover tables only);
- **ownership**: which objects in the target the declarations own (the throwaway database has
  them) or a generated migration created (the migrations folder says so); a drop of anything
  else is an ``drops-object`` hazard, and objects matching an `Unmanaged` pattern are left alone.

Identities are ``schema.name`` (indexes, views, functions, sequences) or ``schema.Table.name``
(constraints, triggers, policies), as `nxdata.objects.Unmanaged` patterns name them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ..objects import Unmanaged, quote_ident, sql_string
from ._extras import missing_extras

try:
    from pglast import parse_sql
    from pglast.enums.parsenodes import AlterTableType, ObjectType
    from pglast.parser import ParseError
except ImportError as exc:
    raise missing_extras(exc) from None

__all__ = [
    "ObjectKey",
    "Ownership",
    "comment_statements",
    "dropped_objects",
    "privilege_statements",
    "rls_force_statements",
    "sequence_statements",
]

ObjectKey = tuple[str, str]
"""(kind, identity): ``("index", "sale.idx_custom")``, ``("trigger", "sale.SaleOrder.audit")``."""

_COMMENTED = """
SELECT 'TABLE', quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       n.nspname || '.' || c.relname, d.description
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
   AND d.objsubid = 0
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'SEQUENCE' END,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname || '.' || c.relname,
       d.description
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
   AND d.objsubid = 0
 WHERE n.nspname = %(schema)s AND c.relkind IN ('v', 'm', 'S')
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = c.oid AND e.deptype IN ('e', 'i', 'a'))
UNION ALL
SELECT 'COLUMN', quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.'
       || quote_ident(a.attname), n.nspname || '.' || c.relname, d.description
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
   AND d.objsubid = a.attnum
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0
   AND NOT a.attisdropped
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = c.oid AND e.deptype = 'e')
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
       p.oid::regprocedure::text, n.nspname || '.' || p.proname, d.description
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
 WHERE n.nspname = %(schema)s AND p.prokind IN ('f', 'p')
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
UNION ALL
SELECT 'INDEX', quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       n.nspname || '.' || c.relname, d.description
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
   AND d.objsubid = 0
 WHERE n.nspname = %(schema)s AND c.relkind IN ('i', 'I')
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = c.oid AND e.deptype = 'e')
UNION ALL
SELECT 'CONSTRAINT', quote_ident(k.conname) || ' ON ' || quote_ident(n.nspname) || '.'
       || quote_ident(t.relname), n.nspname || '.' || t.relname || '.' || k.conname,
       d.description
  FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_description d ON d.objoid = k.oid AND d.classoid = 'pg_constraint'::regclass
 WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'TRIGGER', quote_ident(g.tgname) || ' ON ' || quote_ident(n.nspname) || '.'
       || quote_ident(t.relname), n.nspname || '.' || t.relname || '.' || g.tgname,
       d.description
  FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_description d ON d.objoid = g.oid AND d.classoid = 'pg_trigger'::regclass
 WHERE n.nspname = %(schema)s AND NOT g.tgisinternal
UNION ALL
SELECT 'POLICY', quote_ident(p.polname) || ' ON ' || quote_ident(n.nspname) || '.'
       || quote_ident(t.relname), n.nspname || '.' || t.relname || '.' || p.polname,
       d.description
  FROM pg_policy p JOIN pg_class t ON t.oid = p.polrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_policy'::regclass
 WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'TYPE', quote_ident(n.nspname) || '.' || quote_ident(y.typname),
       n.nspname || '.' || y.typname, d.description
  FROM pg_type y JOIN pg_namespace n ON n.oid = y.typnamespace
  LEFT JOIN pg_description d ON d.objoid = y.oid AND d.classoid = 'pg_type'::regclass
 WHERE n.nspname = %(schema)s AND (y.typtype = 'e'
       OR (y.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = y.typrelid) = 'c'))
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = y.oid AND e.deptype = 'e')
UNION ALL
SELECT 'SCHEMA', quote_ident(n.nspname), n.nspname, d.description
  FROM pg_namespace n
  LEFT JOIN pg_description d ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass
 WHERE n.nspname = %(schema)s
"""

_SEQUENCES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), format_type(s.seqtypid, NULL),
       s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, s.seqcycle,
       (SELECT quote_ident(tn.nspname) || '.' || quote_ident(t.relname) || '.'
               || quote_ident(a.attname)
          FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
          JOIN pg_namespace tn ON tn.oid = t.relnamespace
          JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
         WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'a')
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = c.oid AND e.deptype IN ('e', 'i'))
"""

# Identity columns and the options of their sequences.
_IDENTITIES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(t.relname), a.attname,
       format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart,
       s.seqcache, s.seqcycle
  FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_depend d ON d.refobjid = t.oid AND d.refobjsubid = a.attnum AND d.deptype = 'i'
   AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  JOIN pg_sequence s ON s.seqrelid = d.objid
 WHERE n.nspname = %(schema)s AND a.attidentity <> '' AND NOT a.attisdropped
"""

_RLS = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relforcerowsecurity
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
"""

# Privileges other roles than the owner hold (the owner's are implicit), from the ACL or, when
# it was never changed, from the default ACL (functions: EXECUTE to PUBLIC); then whether it
# was given WITH GRANT OPTION, and the column of a column privilege ('' for the others).
_PRIVILEGES = """
SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view'
       ELSE 'table' END,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname || '.' || c.relname,
       lower(a.privilege_type),
       CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee) END,
       c.relacl IS NULL, a.is_grantable, ''
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
       aclexplode(coalesce(c.relacl, acldefault(
           CASE c.relkind WHEN 'S' THEN 's'::"char" ELSE 'r'::"char" END, c.relowner))) a
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND a.grantee <> c.relowner
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = c.oid AND e.deptype IN ('e', 'i'))
UNION ALL
SELECT 'function', p.oid::regprocedure::text, n.nspname || '.' || p.proname,
       lower(a.privilege_type),
       CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee) END,
       p.proacl IS NULL, a.is_grantable, ''
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
       aclexplode(coalesce(p.proacl, acldefault('f'::"char", p.proowner))) a
 WHERE n.nspname = %(schema)s AND p.prokind IN ('f', 'p') AND a.grantee <> p.proowner
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
UNION ALL
SELECT 'schema', quote_ident(n.nspname), n.nspname, lower(a.privilege_type),
       CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee) END,
       n.nspacl IS NULL, a.is_grantable, ''
  FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n'::"char", n.nspowner))) a
 WHERE n.nspname = %(schema)s AND a.grantee <> n.nspowner
UNION ALL
SELECT 'column', quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       n.nspname || '.' || c.relname, lower(a.privilege_type),
       CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee) END,
       false, a.is_grantable, t.attname
  FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(t.attacl) a
 WHERE n.nspname = %(schema)s AND t.attacl IS NOT NULL AND t.attnum > 0 AND NOT t.attisdropped
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.grantee <> c.relowner
"""

# What the declarations own, read from the throwaway database.
_OBJECTS = """
SELECT 'index', n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('i', 'I')
UNION ALL
SELECT 'constraint', n.nspname || '.' || t.relname || '.' || k.conname FROM pg_constraint k
  JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'view', n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('v', 'm')
UNION ALL
SELECT 'sequence', n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind = 'S'
UNION ALL
SELECT 'function', n.nspname || '.' || p.proname FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'trigger', n.nspname || '.' || t.relname || '.' || g.tgname FROM pg_trigger g
  JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %(schema)s AND NOT g.tgisinternal
UNION ALL
SELECT 'policy', n.nspname || '.' || t.relname || '.' || p.polname FROM pg_policy p
  JOIN pg_class t ON t.oid = p.polrelid JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'row level security', n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relrowsecurity
"""


def _query(conn: psycopg.Connection[Any], query: str, params: Any) -> list[tuple[Any, ...]]:
    """The rows of a catalog query run with only ``pg_catalog`` on the search path: the names
    PostgreSQL prints (``regprocedure``, ``pg_get_viewdef``, ``pg_get_triggerdef``,
    ``pg_get_expr``) are then schema-qualified, as in migra's statements, and the SQL made from
    them runs whatever the search path of whoever applies it (``public.f(integer)``, not
    ``f(integer)``)."""
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', 'pg_catalog', true)")
        return conn.execute(query, params).fetchall()


def _rows(conn: psycopg.Connection[Any], query: str, schema: str) -> list[tuple[Any, ...]]:
    return _query(conn, query, {"schema": schema})


# -- comments, sequences, FORCE RLS, privileges ----------------------------------------------------


def comment_statements(
    target: psycopg.Connection[Any],
    declared: psycopg.Connection[Any],
    schema: str,
    *,
    recreated: Iterable[str] = (),
) -> list[str]:
    """``COMMENT ON`` for every table, column, view, function and sequence whose comment differs
    (``IS NULL`` for one the declarations do not give). Objects only in the target are being
    dropped; `recreated` objects (``schema.name``) lost their comments with the drop."""
    gone = set(recreated)
    current = {
        (k, n): c for k, n, owner, c in _rows(target, _COMMENTED, schema) if owner not in gone
    }
    out = []
    for kind, name, _, comment in sorted(_rows(declared, _COMMENTED, schema)):
        before = current.get((kind, name))
        if comment != before:
            text = "NULL" if comment is None else sql_string(comment)
            out.append(f"COMMENT ON {kind} {name} IS {text};")
    return out


def sequence_statements(
    target: psycopg.Connection[Any], declared: psycopg.Connection[Any], schema: str
) -> list[str]:
    """``ALTER SEQUENCE`` for sequences whose options or ``OWNED BY`` differ; a sequence only
    in the declarations is created (with its options) by migra, then owned here."""
    current = {r[0]: r[1:] for r in _rows(target, _SEQUENCES, schema)}
    out = []
    for row in sorted(_rows(declared, _SEQUENCES, schema)):
        name, data_type, increment, low, high, start, cache, cycle, owner = row
        before = current.get(name)
        # migra creates a sequence bare (`create sequence x;`): its options come from here.
        if before is None or before[:7] != (data_type, increment, low, high, start, cache, cycle):
            out.append(
                f"ALTER SEQUENCE {name} AS {data_type} INCREMENT BY {increment} MINVALUE {low}"
                f" MAXVALUE {high} START WITH {start} CACHE {cache}"
                f" {'CYCLE' if cycle else 'NO CYCLE'}{' RESTART' if before is None else ''};"
            )
        if (before[7] if before is not None else None) != owner:
            out.append(f"ALTER SEQUENCE {name} OWNED BY {owner or 'NONE'};")
    return out


_INTEGER_BOUNDS = {
    "smallint": (-32768, 32767),
    "integer": (-2147483648, 2147483647),
    "bigint": (-9223372036854775808, 9223372036854775807),
}


def identity_options(
    data_type: str, increment: int, low: int, high: int, start: int, cache: int, cycle: bool
) -> str:
    """The sequence options of an identity column that differ from what PostgreSQL gives one
    of its type (``start with 100 increment by 5``); '' when none do."""
    type_low, type_high = _INTEGER_BOUNDS.get(data_type, _INTEGER_BOUNDS["bigint"])
    ascending = increment > 0
    parts = []
    if start != (low if ascending else high):
        parts.append(f"start with {start}")
    if increment != 1:
        parts.append(f"increment by {increment}")
    if low != (1 if ascending else type_low):
        parts.append(f"minvalue {low}")
    if high != (type_high if ascending else -1):
        parts.append(f"maxvalue {high}")
    if cache != 1:
        parts.append(f"cache {cache}")
    if cycle:
        parts.append("cycle")
    return " ".join(parts)


def identity_statements(
    target: psycopg.Connection[Any], declared: psycopg.Connection[Any], schema: str
) -> list[str]:
    """``ALTER TABLE ... ALTER COLUMN ... SET ...`` for identity columns (in both databases)
    whose sequence options differ; a column that becomes an identity gets its options where
    it is added (see `migra_text`)."""
    current = {(r[0], r[1]): identity_options(*r[2:]) for r in _rows(target, _IDENTITIES, schema)}
    out = []
    for table, column, *options in sorted(_rows(declared, _IDENTITIES, schema)):
        before = current.get((table, column))
        if before is None or before == identity_options(*options):
            continue
        _, increment, low, high, start, cache, cycle = options
        out.append(
            f"ALTER TABLE {table} ALTER COLUMN {quote_ident(column)} SET INCREMENT BY "
            f"{increment} SET MINVALUE {low} SET MAXVALUE {high} SET START WITH {start} "
            f"SET CACHE {cache} SET {'CYCLE' if cycle else 'NO CYCLE'};"
        )
    return out


# What CREATE OR REPLACE cannot change in a function: its kind, its result (OUT parameters
# included), its input parameters' names, and the number of its defaults (it can add some).
_ROUTINES = """
SELECT p.oid::regprocedure::text, n.nspname || '.' || p.proname, p.prokind,
       pg_get_function_result(p.oid), pg_get_function_identity_arguments(p.oid),
       p.pronargdefaults
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = %(schema)s AND p.prokind IN ('f', 'p')
   AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
"""


def replaced_routines(
    target: psycopg.Connection[Any], declared: psycopg.Connection[Any], schema: str
) -> dict[str, list[str]]:
    """``schema.name`` → ``DROP FUNCTION`` (or ``PROCEDURE``) of the functions that migra
    replaces with ``CREATE OR REPLACE`` but PostgreSQL refuses to (``cannot change return type
    of existing function``): a changed result, input parameter names, kind, or defaults
    removed. Each must be dropped just before it is created again."""
    wanted = {r[0]: r[2:] for r in _rows(declared, _ROUTINES, schema)}
    out: dict[str, list[str]] = {}
    for signature, name, kind, result, arguments, defaults in sorted(
        _rows(target, _ROUTINES, schema)
    ):
        new = wanted.get(signature)
        if new is None or (new[:3] == (kind, result, arguments) and new[3] >= defaults):
            continue
        what = "PROCEDURE" if kind == "p" else "FUNCTION"
        out.setdefault(name, []).append(f"DROP {what} IF EXISTS {signature};")
    return out


def rls_force_statements(
    target: psycopg.Connection[Any], declared: psycopg.Connection[Any], schema: str
) -> list[str]:
    """``ALTER TABLE ... [NO] FORCE ROW LEVEL SECURITY`` where it differs."""
    current = dict(_rows(target, _RLS, schema))
    out = []
    for name, force in sorted(_rows(declared, _RLS, schema)):
        if current.get(name, False) != force:
            out.append(f"ALTER TABLE {name} {'' if force else 'NO '}FORCE ROW LEVEL SECURITY;")
    return out


_COLUMN_DEPENDENTS = """
SELECT 'trigger', g.tgname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       n.nspname || '.' || c.relname || '.' || g.tgname
  FROM pg_depend d JOIN pg_trigger g ON d.classid = 'pg_trigger'::regclass AND g.oid = d.objid
  JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
 WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND a.attname = %(column)s
UNION
SELECT 'policy', p.polname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       n.nspname || '.' || c.relname || '.' || p.polname
  FROM pg_depend d JOIN pg_policy p ON d.classid = 'pg_policy'::regclass AND p.oid = d.objid
  JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
 WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND a.attname = %(column)s
"""

_TRIGGER_DEF = """
SELECT pg_get_triggerdef(g.oid) || ';' FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname || '.' || c.relname || '.' || g.tgname = %(identity)s
"""

_POLICY_DEF = """
SELECT 'CREATE POLICY ' || quote_ident(p.polname) || ' ON ' || quote_ident(n.nspname) || '.'
       || quote_ident(c.relname) || ' AS '
       || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END || ' FOR '
       || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                        WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
       || ' TO ' || (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC'
                                            ELSE quote_ident(pg_get_userbyid(r)) END, ', ')
                       FROM unnest(p.polroles) r)
       || coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', '')
       || coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '') || ';'
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname || '.' || c.relname || '.' || p.polname = %(identity)s
"""


# Views and materialized views that depend on a column, directly or through other views, with
# their depth (1: on the table itself).
_DEPENDENT_VIEWS = """
WITH RECURSIVE deps(oid, depth) AS (
    SELECT DISTINCT r.ev_class, 1
      FROM pg_depend d JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
      JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace
      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
     WHERE n.nspname = %(schema)s AND t.relname = %(table)s AND a.attname = %(column)s
       AND r.ev_class <> t.oid
    UNION
    SELECT r.ev_class, deps.depth + 1
      FROM deps JOIN pg_depend d ON d.refobjid = deps.oid AND d.classid = 'pg_rewrite'::regclass
      JOIN pg_rewrite r ON r.oid = d.objid
     WHERE r.ev_class <> deps.oid AND deps.depth < 20
)
SELECT max(depth), c.relkind, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       n.nspname || '.' || c.relname
  FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
 GROUP BY 2, 3, 4
"""

_VIEW_DEF = """
SELECT c.relkind, pg_get_viewdef(c.oid) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname || '.' || c.relname = %(identity)s AND c.relkind IN ('v', 'm')
"""


def column_dependents(
    target: psycopg.Connection[Any],
    declared: psycopg.Connection[Any],
    schema: str,
    statements: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Views, triggers (``UPDATE OF`` the column, a ``WHEN`` on it) and policies that depend on
    a column whose type the statements change: PostgreSQL refuses the change while they exist
    ("cannot alter type of a column used by a view or rule"). migra drops and creates again the
    views when the base type changes, not when only its size does (``varchar(10)`` →
    ``varchar(20)``), and never the triggers and policies. Returns the statements that drop them
    before the change (the deepest views first) and create them, as declared, after it."""
    before: list[str] = []
    after: list[str] = []
    seen: set[str] = set()
    text = "\n".join(statements).lower()
    views: dict[str, tuple[int, str, str]] = {}
    retyped = _retyped_columns(statements)
    for table, column in retyped:
        rows = _query(
            target, _DEPENDENT_VIEWS, {"schema": schema, "table": table, "column": column}
        )
        for depth, relkind, sql_name, identity in rows:
            known = views.get(identity)
            if known is None or known[0] < depth:
                views[identity] = (depth, relkind, sql_name)
    for identity, (_, relkind, sql_name) in sorted(views.items(), key=lambda v: -v[1][0]):
        kind = "materialized view" if relkind == "m" else "view"
        if f"drop {kind} if exists {sql_name.lower()}" not in text and (
            f"drop {kind} if exists {_quoted_both(identity)}" not in text
        ):
            before.append(f"DROP {kind.upper()} IF EXISTS {sql_name};")
    for identity, (_, _relkind, sql_name) in sorted(views.items(), key=lambda v: v[1][0]):
        found = next(iter(_query(declared, _VIEW_DEF, {"identity": identity})), None)
        created = f"create or replace view {_quoted_both(identity)}" in text or (
            f"create materialized view {_quoted_both(identity)}" in text
        )
        if found is not None and not created:
            kind = "MATERIALIZED VIEW" if found[0] == "m" else "VIEW"
            after.append(f"CREATE {kind} {sql_name} AS\n{found[1].strip().rstrip(';')};")
    for table, column in retyped:
        rows = _query(
            target, _COLUMN_DEPENDENTS, {"schema": schema, "table": table, "column": column}
        )
        for kind, name, table_sql, identity in rows:
            if identity in seen:
                continue
            seen.add(identity)
            drop = f"DROP {kind.upper()} IF EXISTS {quote_ident(name)} ON {table_sql};"
            if f"drop {kind} if exists {quote_ident(name).lower()} on" not in text:
                before.append(drop)
            query = _TRIGGER_DEF if kind == "trigger" else _POLICY_DEF
            found = next(iter(_query(declared, query, {"identity": identity})), None)
            if found is not None and f"create {kind} {quote_ident(name).lower()}" not in text:
                after.append(found[0])
    return before, after


_VIEW_COLUMNS = """
SELECT n.nspname || '.' || c.relname, array_agg(a.attname::text ORDER BY a.attnum)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = %(schema)s AND c.relkind IN ('v', 'm')
 GROUP BY 1
"""


def lost_view_columns(
    target: psycopg.Connection[Any], declared: psycopg.Connection[Any], schema: str
) -> dict[str, list[str]]:
    """``schema.view`` → the columns a view (or materialized view) had and its declaration no
    longer has: code that reads them breaks when the view is replaced."""
    before = dict(_rows(target, _VIEW_COLUMNS, schema))
    after = dict(_rows(declared, _VIEW_COLUMNS, schema))
    return {
        view: [c for c in columns if c not in after[view]]
        for view, columns in sorted(before.items())
        if view in after and any(c not in after[view] for c in columns)
    }


def _quoted_both(identity: str) -> str:
    """``"schema"."name"`` in lower case, as migra writes (and this module searches) names."""
    schema, _, name = identity.partition(".")
    return f"{quote_ident(schema)}.{quote_ident(name)}".lower()


def _retyped_columns(statements: Sequence[str]) -> list[tuple[str, str]]:
    """(table, column) of every ``ALTER COLUMN ... TYPE`` in `statements`."""
    out = []
    for statement in statements:
        try:
            parsed = parse_sql(statement)
        except ParseError:
            continue
        for raw in parsed:
            stmt: Any = raw.stmt
            if type(stmt).__name__ != "AlterTableStmt":
                continue
            for cmd in stmt.cmds or ():
                if cmd.subtype == AlterTableType.AT_AlterColumnType:
                    out.append((stmt.relation.relname, cmd.name))
    return out


_VIEW_OPTIONS = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname || '.' || c.relname,
       coalesce(c.reloptions, '{}')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind = 'v'
"""


def view_option_statements(
    target: psycopg.Connection[Any],
    declared: psycopg.Connection[Any],
    schema: str,
    statements: Sequence[str],
) -> list[str]:
    """``ALTER VIEW ... SET (security_invoker = true)`` and the like: migra writes views without
    their options, and a view that loses ``security_invoker`` runs with its owner's rights,
    past row-level security. Every view the statements create or replace gets its options
    again; others where they differ."""
    current = {sql: options for sql, _, options in _rows(target, _VIEW_OPTIONS, schema)}
    touched = {identity for statement in statements for identity in _views_created(statement)}
    out = []
    for sql, identity, options in sorted(_rows(declared, _VIEW_OPTIONS, schema)):
        before = [] if identity in touched else current.get(sql, [])
        if sorted(options) == sorted(before) and identity not in touched:
            continue
        if options:
            out.append(f"ALTER VIEW {sql} SET ({', '.join(sorted(options))});")
        names = {o.partition("=")[0] for o in current.get(sql, [])} - {
            o.partition("=")[0] for o in options
        }
        if names and sql in current:
            out.append(f"ALTER VIEW {sql} RESET ({', '.join(sorted(names))});")
    return out


_TABLE_OPTIONS = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname || '.' || c.relname,
       c.relkind, coalesce(c.reloptions, '{}')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'm')
"""


def table_option_statements(
    target: psycopg.Connection[Any],
    declared: psycopg.Connection[Any],
    schema: str,
    *,
    recreated: Iterable[str] = (),
) -> list[str]:
    """``ALTER TABLE ... SET (fillfactor=70)`` (and ``RESET``) for tables and materialized
    views whose storage parameters differ: migra compares none, and creates tables without
    them. `recreated` materialized views lost theirs."""
    gone = set(recreated)
    current = {
        sql: options
        for sql, identity, _, options in _rows(target, _TABLE_OPTIONS, schema)
        if identity not in gone
    }
    out = []
    for sql, _, relkind, options in sorted(_rows(declared, _TABLE_OPTIONS, schema)):
        before = current.get(sql, [])
        if sorted(options) == sorted(before):
            continue
        kind = "MATERIALIZED VIEW" if relkind == "m" else "TABLE"
        if options:
            out.append(f"ALTER {kind} {sql} SET ({', '.join(sorted(options))});")
        names = {o.partition("=")[0] for o in before} - {o.partition("=")[0] for o in options}
        if names:
            out.append(f"ALTER {kind} {sql} RESET ({', '.join(sorted(names))});")
    return out


def _views_created(statement: str) -> list[str]:
    try:
        parsed = parse_sql(statement)
    except ParseError:
        return []
    nodes: list[Any] = [raw.stmt for raw in parsed]
    return [_relation(node.view) for node in nodes if type(node).__name__ == "ViewStmt"]


@dataclass(frozen=True, slots=True, order=True)
class Privilege:
    """One privilege on one object to one role, as the catalogs hold it."""

    kind: str  # table, view, sequence, function, schema, or column (of a table or view)
    target: str  # SQL name (a function's regprocedure)
    identity: str  # schema.name
    privilege: str
    role: str
    grantable: bool = False  # WITH GRANT OPTION
    column: str = ""  # a column privilege's column

    @property
    def what(self) -> str:
        """The privilege, with its column: ``select``, ``select ("email")``."""
        return f"{self.privilege} ({quote_ident(self.column)})" if self.column else self.privilege

    def statement(self, *, revoke: bool = False) -> str:
        """``GRANT`` (or ``REVOKE``) of this privilege."""
        # ROUTINE covers functions and procedures alike.
        on = {"sequence": "SEQUENCE", "schema": "SCHEMA", "function": "ROUTINE"}.get(
            self.kind, "TABLE"
        )
        role = "PUBLIC" if self.role == "public" else quote_ident(self.role)
        verb, direction = ("REVOKE", "FROM") if revoke else ("GRANT", "TO")
        option = " WITH GRANT OPTION" if self.grantable and not revoke else ""
        privilege = self.privilege.upper()
        if self.column:
            privilege += f" ({quote_ident(self.column)})"
        return f"{verb} {privilege} ON {on} {self.target} {direction} {role}{option};"


def privileges(
    conn: psycopg.Connection[Any], schema: str, *, defaults: bool = True
) -> set[Privilege]:
    """The privileges held on the schema and its objects by roles other than their owners;
    without `defaults`, not those an object has by default (EXECUTE on a function to PUBLIC)
    while its privileges were never changed."""
    return {
        Privilege(row[0], row[1], row[2], row[3], row[4], grantable=row[6], column=row[7])
        for row in _rows(conn, _PRIVILEGES, schema)
        if defaults or not row[5]
    }


def privilege_statements(
    target: psycopg.Connection[Any],
    declared: psycopg.Connection[Any],
    schema: str,
    *,
    recreated: Iterable[str] = (),
) -> tuple[list[str], list[Privilege]]:
    """``GRANT`` what the declarations hold and the target lacks, ``REVOKE`` what the target
    holds on declared objects and the declarations do not (returned apart too: revoking a
    privilege nothing declared is an ``drops-object`` hazard). `recreated` objects lost theirs."""
    gone = set(recreated)
    current = {p for p in privileges(target, schema) if p.identity not in gone}
    wanted = privileges(declared, schema)
    # An object created by this diff starts with its default privileges: no GRANT for those.
    existing = {sql for sql, identity in _targets(target, schema).items() if identity not in gone}
    implicit = wanted - privileges(declared, schema, defaults=False)
    objects = {p.target for p in wanted} | set(_targets(declared, schema))
    grants = sorted(
        p
        for p in wanted - current
        if p.target in existing or (p not in implicit and not _by_default(p))
    )
    revokes = sorted(p for p in current - wanted if p.target in objects)
    # A new function starts with EXECUTE for PUBLIC: take it back where the declaration does
    # (public_execute=False).
    for function in sorted(_functions(declared, schema) - existing):
        default = Privilege("function", function, "", "execute", "public")
        if not any(p.target == function and _by_default(p) for p in wanted):
            revokes.append(default)
    statements = [p.statement(revoke=True) for p in revokes] + [p.statement() for p in grants]
    # Revoking a default privilege is what a declaration says (public_execute=False); any other
    # revoke takes away what someone granted: the caller judges those.
    return statements, [p for p in revokes if not _by_default(p)]


def _by_default(privilege: Privilege) -> bool:
    """Whether every new object of its kind has this privilege (EXECUTE on a function for
    PUBLIC), unless it is revoked."""
    return (privilege.kind, privilege.privilege, privilege.role) == (
        "function",
        "execute",
        "public",
    )


def _functions(conn: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = _query(
        conn,
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n"
        " ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s AND p.prokind IN ('f', 'p')"
        " AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')",
        {"schema": schema},
    )
    return {r[0] for r in rows}


def _targets(conn: psycopg.Connection[Any], schema: str) -> dict[str, str]:
    """SQL name → ``schema.name`` of every object of the schema that can hold privileges."""
    rows = _query(
        conn,
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
        " n.nspname || '.' || c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        " UNION ALL SELECT p.oid::regprocedure::text, n.nspname || '.' || p.proname"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %(schema)s"
        " UNION ALL SELECT quote_ident(n.nspname), n.nspname FROM pg_namespace n"
        " WHERE n.nspname = %(schema)s",
        {"schema": schema},
    )
    return {r[0]: r[1] for r in rows}


def recreated_index_statements(
    declared: psycopg.Connection[Any], recreated: Iterable[str], statements: Sequence[str]
) -> list[str]:
    """The indexes of materialized views the diff drops and creates again: migra sees the
    indexes unchanged and leaves them out, but the drop took them away."""
    wanted = sorted(set(recreated))
    if not wanted:
        return []
    rows = _query(
        declared,
        "SELECT pg_get_indexdef(i.indexrelid) || ';' FROM pg_index i"
        " JOIN pg_class m ON m.oid = i.indrelid JOIN pg_namespace n ON n.oid = m.relnamespace"
        " JOIN pg_class x ON x.oid = i.indexrelid"
        " WHERE m.relkind = 'm' AND n.nspname || '.' || m.relname = ANY(%s)"
        " ORDER BY n.nspname, m.relname, x.relname",
        [wanted],
    )
    present = {" ".join(s.split()).lower() for s in statements}
    return [r[0] for r in rows if " ".join(r[0].split()).lower() not in present]


# -- ownership -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Ownership:
    """Which objects a diff may drop without ``--unsafe``: those the declarations hold
    (`declared`, a re-create), those a generated migration created (`generated`: a declaration
    removed since), and never those `unmanaged` patterns match (left alone altogether)."""

    declared: set[ObjectKey] = field(default_factory=set)
    generated: set[ObjectKey] = field(default_factory=set)
    unmanaged: tuple[Unmanaged, ...] = ()

    def owns(self, key: ObjectKey) -> bool:
        """True when dropping this object is the declarations' doing."""
        return key in self.declared or key in self.generated

    def leaves_alone(self, key: ObjectKey) -> bool:
        """True when an `Unmanaged` pattern matches the object."""
        kind, identity = key
        if kind == "row level security":
            kind, identity = "policy", identity
        return any(u.matches(kind, identity) for u in self.unmanaged)


def declared_objects(conn: psycopg.Connection[Any], schema: str) -> set[ObjectKey]:
    """The objects of `schema` in the declared (throwaway) database."""
    return {(kind, identity) for kind, identity in _rows(conn, _OBJECTS, schema)}


def generated_objects(root: Path | None) -> set[ObjectKey]:
    """Objects that migrations written by ``nxdata diff`` created (a hand-written or baseline
    file does not count: what it made was not declared)."""
    out: set[ObjectKey] = set()
    if root is None or not root.is_dir():
        return out
    for path in sorted(root.glob("*/*.sql")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "generated by `nxdata diff`" not in text.split("\n", 1)[0]:
            continue
        try:
            statements = parse_sql(text)
        except ParseError:
            continue
        for raw in statements:
            out.update(_created(raw.stmt))
    return out


def _relation(relation: Any) -> str:
    return f"{relation.schemaname or 'public'}.{relation.relname}"


def _names(node: Any) -> list[str]:
    return [str(getattr(p, "sval", "")) for p in node]


def _created(stmt: Any) -> list[ObjectKey]:
    """What a statement creates, as (kind, identity)."""
    kind = type(stmt).__name__
    if kind == "IndexStmt" and stmt.idxname:
        return [("index", f"{stmt.relation.schemaname or 'public'}.{stmt.idxname}")]
    if kind == "CreateStmt":
        table = _relation(stmt.relation)
        return [
            ("constraint", f"{table}.{element.conname}")
            for element in stmt.tableElts or ()
            if type(element).__name__ == "Constraint" and element.conname
        ]
    if kind == "AlterTableStmt":
        table = _relation(stmt.relation)
        out: list[ObjectKey] = []
        for cmd in stmt.cmds or ():
            if cmd.subtype == AlterTableType.AT_AddConstraint and getattr(
                cmd.def_, "conname", None
            ):
                out.append(("constraint", f"{table}.{cmd.def_.conname}"))
            elif cmd.subtype in (
                AlterTableType.AT_EnableRowSecurity,
                AlterTableType.AT_ForceRowSecurity,
            ):
                out.append(("row level security", table))
        return out
    if kind == "ViewStmt":
        return [("view", _relation(stmt.view))]
    if kind == "CreateTableAsStmt":
        return [("view", _relation(stmt.into.rel))]
    if kind == "CreateFunctionStmt":
        names = _names(stmt.funcname)
        return [("function", ".".join(names[-2:]) if len(names) > 1 else f"public.{names[0]}")]
    if kind == "CreateTrigStmt":
        return [("trigger", f"{_relation(stmt.relation)}.{stmt.trigname}")]
    if kind == "CreatePolicyStmt":
        return [("policy", f"{_relation(stmt.table)}.{stmt.policy_name}")]
    if kind == "CreateSeqStmt":
        return [("sequence", _relation(stmt.sequence))]
    if kind == "GrantStmt" and stmt.is_grant:
        return _granted(stmt)
    return []


def _granted(stmt: Any) -> list[ObjectKey]:
    """(``grant``, ``"schema.name privilege role"``) for each privilege a GRANT gives."""
    identities = []
    for obj in stmt.objects or ():
        kind = type(obj).__name__
        if kind == "RangeVar":
            identities.append(_relation(obj))
        elif kind == "ObjectWithArgs":
            names = _names(obj.objname)
            identities.append(".".join(names) if len(names) > 1 else f"public.{names[0]}")
        elif hasattr(obj, "sval"):
            identities.append(str(obj.sval))
    privileges = [p.priv_name.lower() for p in stmt.privileges or ()] or ["all"]
    roles = [
        spec.rolename if getattr(spec, "rolename", None) else "public"
        for spec in stmt.grantees or ()
    ]
    return [
        ("grant", f"{identity} {privilege} {role}")
        for identity in identities
        for privilege in privileges
        for role in roles
    ]


def dropped_objects(statement: str) -> list[ObjectKey]:
    """What a statement drops (or, for row-level security, switches off), as (kind, identity)."""
    try:
        parsed = parse_sql(statement)
    except ParseError:
        return []
    out: list[ObjectKey] = []
    for raw in parsed:
        stmt: Any = raw.stmt
        kind = type(stmt).__name__
        if kind == "DropStmt":
            what = {
                ObjectType.OBJECT_INDEX: "index",
                ObjectType.OBJECT_VIEW: "view",
                ObjectType.OBJECT_MATVIEW: "view",
                ObjectType.OBJECT_FUNCTION: "function",
                ObjectType.OBJECT_PROCEDURE: "function",
                ObjectType.OBJECT_TRIGGER: "trigger",
                ObjectType.OBJECT_POLICY: "policy",
                ObjectType.OBJECT_SEQUENCE: "sequence",
            }.get(stmt.removeType)
            if what is None:
                continue
            for obj in stmt.objects or ():
                names = _names(getattr(obj, "objname", None) or obj)
                table_scoped = what in ("trigger", "policy")
                if len(names) == (2 if table_scoped else 1):
                    names = ["public", *names]  # unqualified: the search path's first schema
                out.append((what, ".".join(names)))
        elif kind == "AlterTableStmt":
            table = _relation(stmt.relation)
            for cmd in stmt.cmds or ():
                if cmd.subtype == AlterTableType.AT_DropConstraint:
                    out.append(("constraint", f"{table}.{cmd.name}"))
                elif cmd.subtype in (
                    AlterTableType.AT_DisableRowSecurity,
                    AlterTableType.AT_NoForceRowSecurity,
                ):
                    out.append(("row level security", table))
    return out


def recreated_objects(statements: Sequence[str]) -> set[str]:
    """``schema.name`` of the views, materialized views, functions, sequences and indexes, and
    ``schema.Table.name`` of the constraints, triggers and policies, a statement list drops
    (migra drops and creates again the views that depend on a changed column, an index whose
    definition changes...): what the target held on them — grants, comments — is gone, and
    must be given again."""
    out = {
        identity
        for statement in statements
        for kind, identity in dropped_objects(statement)
        if kind != "row level security"
    }
    for statement in statements:  # an enum migra creates again renames the old one away
        if statement.lower().startswith("alter type "):
            try:
                parsed = parse_sql(statement)
            except ParseError:
                continue
            for raw in parsed:
                stmt: Any = raw.stmt
                if (
                    type(stmt).__name__ == "RenameStmt"
                    and stmt.renameType == ObjectType.OBJECT_TYPE
                ):
                    names = _names(stmt.object)
                    out.add(".".join(names) if len(names) > 1 else f"public.{names[0]}")
    return out
