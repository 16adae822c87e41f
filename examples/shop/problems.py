"""nxdata errors as HTTP problem details (RFC 9457), for any web framework.

`problem_for(exc)` decides the status and what the client is told; the Litestar app and the
FastAPI recipe only turn the result into a response with ``Content-Type:
application/problem+json``. What a client may read is said on purpose, field by field: a
database error's message holds SQL names and values, so it is logged, never sent.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import msgspec
from nxdata import errors

__all__ = ["MEDIA_TYPE", "Problem", "plain", "problem_for"]

MEDIA_TYPE = "application/problem+json"
PROBLEMS = "https://example.com/problems/"  # your API's documentation of each problem type
RETRY_AFTER = "1"  # seconds: the conflicts behind a TransientError are usually over by then

logger = logging.getLogger("shop")


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem. ``part`` (of a filter), ``field`` (of a body) and ``constraint`` are
    this API's extension members, sent when they apply."""

    type: str  # no default, so always sent; "about:blank": the status says it all
    title: str
    status: int
    detail: str | None = None
    part: str | None = None
    field: str | None = None
    constraint: str | None = None


def plain(status: int, detail: str | None = None) -> Problem:
    """A problem that is only its HTTP status (and maybe a sentence)."""
    return Problem(
        type="about:blank", title=HTTPStatus(status).phrase, status=status, detail=detail
    )


def problem_for(exc: Exception) -> tuple[Problem, dict[str, str]]:
    """The problem that answers `exc`, and the response's extra headers."""
    # FilterError is a ValidationError: the more specific class comes first.
    if isinstance(exc, errors.FilterError):
        return Problem(
            type=PROBLEMS + "invalid-filter",
            title="Invalid filter",
            status=400,
            detail=exc.reason,
            part=exc.part,
        ), {}
    if isinstance(exc, errors.ValidationError):
        return Problem(
            type=PROBLEMS + "invalid-body",
            title="Invalid body",
            status=400,
            detail=exc.reason,
            field=exc.field,
        ), {}
    if isinstance(exc, errors.NotFoundError):
        return plain(404, str(exc)), {}
    if isinstance(exc, errors.UniqueViolation | errors.ForeignKeyViolation):
        # The constraint's name is declared in shop.models (UQ_Product_sku): part of the API's
        # vocabulary, unlike the server's message, which quotes the conflicting values.
        return Problem(
            type=PROBLEMS + "conflict",
            title="Conflict",
            status=409,
            detail="the request conflicts with existing data",
            constraint=exc.constraint,
        ), {}
    if isinstance(exc, errors.CheckViolation):
        return Problem(
            type=PROBLEMS + "invalid-body",
            title="Invalid body",
            status=400,
            detail="a value breaks a rule of the data",
            constraint=exc.constraint,
        ), {}
    if isinstance(exc, errors.PermissionDenied):
        return plain(403, "not allowed"), {}
    # OutcomeUnknown is a ConnectionFailed after a write was sent: it may have been applied, so
    # it gets no Retry-After (a blind retry could do it twice) and falls through to the 500.
    if isinstance(exc, errors.TransientError | errors.PoolTimeout) or (
        isinstance(exc, errors.ConnectionFailed) and not exc.unknown_outcome
    ):
        return plain(503, "try again in a moment"), {"Retry-After": RETRY_AFTER}
    if isinstance(exc, errors.QueryCanceled):  # the policy's statement_timeout, usually
        return plain(503, "the query took too long"), {}
    logger.error("unexpected error", exc_info=exc)  # the whole story, for the server's log only
    return plain(500), {}
