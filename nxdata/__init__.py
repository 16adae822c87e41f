"""nxdata: a small, fast, ORM-less PostgreSQL data-access library.

Tables are msgspec Structs; filters compile to parameterized SQL; migrations come from a diff.
"""

from __future__ import annotations

from .ambient import AUTOCOMMIT
from .batch import Deferred, DeferredReads
from .columns import (
    BigInt,
    BigIntIdColumns,
    BigIntIdentity,
    Citext,
    Column,
    CommonColumns,
    CreatedAt,
    DeletedAt,
    EventColumns,
    Id,
    Id7,
    IdColumns,
    IntIdColumns,
    IntIdentity,
    ModifiedAt,
    Money,
    Real,
    SmallInt,
    ValueColumns,
    common_columns,
    compose,
    id_columns,
    new_id,
    new_uuid7,
    timestamp_columns,
    value_columns,
)
from .compiler import CompiledQuery
from .database import Database
from .database_async import AsyncDatabase
from .ddl import create_sql, create_statements
from .embedded import EmbeddedPostgres
from .errors import NotFoundError, NxdataError, ValidationError
from .filters import Condition, Filter, FilterDict, WhereDict
from .locks import Lock
from .objects import Grant, Policy, Role, Trigger
from .paging import Page
from .partitioning import (
    Partition,
    PartitionBy,
    create_partitions_ahead,
    monthly_partitions,
    partitions_ahead,
)
from .policy import OPERATORS, TRUSTED, FilterPolicy
from .relations import rows_as
from .replicas import ReplicaState
from .repository import Repository, SoftDeletableRepository
from .repository_async import AsyncRepository, AsyncSoftDeletableRepository
from .table import Check, ForeignKey, Index, Schema, Table, Unique, live_unique, table_of
from .transaction import Transaction
from .transaction_async import AsyncTransaction

__version__ = "0.1.0"

__all__ = [
    "AUTOCOMMIT",
    "OPERATORS",
    "TRUSTED",
    "AsyncDatabase",
    "AsyncRepository",
    "AsyncSoftDeletableRepository",
    "AsyncTransaction",
    "BigInt",
    "BigIntIdColumns",
    "BigIntIdentity",
    "Check",
    "Citext",
    "Column",
    "CommonColumns",
    "CompiledQuery",
    "Condition",
    "CreatedAt",
    "Database",
    "Deferred",
    "DeferredReads",
    "DeletedAt",
    "EmbeddedPostgres",
    "EventColumns",
    "Filter",
    "FilterDict",
    "FilterPolicy",
    "ForeignKey",
    "Grant",
    "Id",
    "Id7",
    "IdColumns",
    "Index",
    "IntIdColumns",
    "IntIdentity",
    "Lock",
    "ModifiedAt",
    "Money",
    "NotFoundError",
    "NxdataError",
    "Page",
    "Partition",
    "PartitionBy",
    "Policy",
    "Real",
    "ReplicaState",
    "Repository",
    "Role",
    "Schema",
    "SmallInt",
    "SoftDeletableRepository",
    "Table",
    "Transaction",
    "Trigger",
    "Unique",
    "ValidationError",
    "ValueColumns",
    "WhereDict",
    "__version__",
    "common_columns",
    "compose",
    "create_partitions_ahead",
    "create_sql",
    "create_statements",
    "id_columns",
    "live_unique",
    "monthly_partitions",
    "new_id",
    "new_uuid7",
    "partitions_ahead",
    "rows_as",
    "table_of",
    "timestamp_columns",
    "value_columns",
]
