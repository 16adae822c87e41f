"""The ``ledger`` schema: ledger generation jobs and the documents they produce."""

from __future__ import annotations

import enum
from datetime import date, datetime

import msgspec

from nxdata import BigInt, Check, CommonColumns, ForeignKey, Index, Schema, Unique

from .public import Merchant, User

ledger = Schema("ledger")


class JobStatus(enum.StrEnum):
    """Lifecycle of a generation job."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class DocumentKind(enum.StrEnum):
    """What a generated document is."""

    sales_journal = "sales_journal"
    cash_book = "cash_book"
    invoice_register = "invoice_register"
    tax_return = "tax_return"


class JobParameters(msgspec.Struct, kw_only=True):
    """What a job was asked to produce (stored as jsonb)."""

    kinds: list[str]
    include_voided: bool = False
    format: str = "pdf"


@ledger.table(
    "LedgerJob",
    indexes=[
        Index("merchant_id", "period_start"),
        Index("created_at", name="IDX_LedgerJob_pending", where="status IN ('queued', 'running')"),
    ],
    foreign_keys=[
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
        ForeignKey("requested_by", User, on_delete="set null"),
    ],
    checks=[Check("period_end >= period_start", name="CK_LedgerJob_period")],
)
class LedgerJob(CommonColumns):
    """A request to generate the ledgers of a merchant for a period."""

    merchant_id: str
    period_start: date
    period_end: date
    parameters: JobParameters
    requested_by: str | None = None
    status: JobStatus = JobStatus.queued
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


@ledger.table(
    "LedgerDocument",
    uniques=[Unique("job_id", "kind"), Unique("storage_key")],
    indexes=[Index("merchant_id", "kind")],
    foreign_keys=[
        ForeignKey("job_id", LedgerJob, on_delete="cascade"),
        ForeignKey("merchant_id", Merchant, on_delete="cascade"),
    ],
    checks=[Check("size_bytes >= 0", name="CK_LedgerDocument_size_bytes")],
)
class LedgerDocument(CommonColumns):
    """A document a job produced (stored in object storage under ``storage_key``)."""

    job_id: str
    merchant_id: str
    kind: DocumentKind
    storage_key: str
    checksum: str
    size_bytes: BigInt = 0
    content_type: str = "application/pdf"
