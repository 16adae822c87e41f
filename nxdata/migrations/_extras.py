"""The error for a missing optional dependency of the diff tools (``nxdata[migrations]``)."""

from __future__ import annotations

from ..errors import ConfigurationError

__all__ = ["EXTRA", "missing_extras"]

EXTRA = "migrations"
"""The extra in pyproject.toml that installs migra, schemainspect, sqlbag, SQLAlchemy, pglast."""


def missing_extras(exc: ImportError) -> ConfigurationError:
    """A one-line `ConfigurationError` for a failed import of one of the diff tools.

    >>> try:
    ...     import pglast
    ... except ImportError as exc:
    ...     raise missing_extras(exc) from None
    """
    what = f"module {exc.name!r} is not installed" if exc.name else str(exc)
    return ConfigurationError(
        f"diffing needs the migration extras ({what}): pip install 'nxdata[{EXTRA}]'"
    )
