"""Where the database is: URL from arguments or the environment, redaction, driver URL forms."""

from __future__ import annotations

import os
import re

import psycopg.conninfo

from .errors import ConfigurationError

__all__ = ["ENV_VARS", "database_url", "redact", "sqlalchemy_url", "validate_url"]

ENV_VARS = ("NXDATA_DATABASE_URL", "DATABASE_URL")
"""Environment variables read for the database URL, first match wins."""


def database_url(explicit: str | None = None) -> str | None:
    """The URL given, else ``NXDATA_DATABASE_URL``, else ``DATABASE_URL``, else None."""
    if explicit:
        return explicit
    for name in ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


_EXPECTED = "expected a postgresql:// (or postgres://) URL or a libpq key=value string"


def validate_url(url: str) -> str:
    """Check that `url` parses as a libpq connection string or URI; `ConfigurationError` if not."""
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*)://", url)
    if scheme and scheme.group(1) not in ("postgresql", "postgres"):  # as libpq: lower case
        # libpq would read it as key=value pairs and complain about a missing "="
        raise ConfigurationError(f"invalid database URL {redact(url)!r}: {_EXPECTED}")
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).strip().splitlines()[0]
        hint = "" if scheme else f" ({_EXPECTED})"
        raise ConfigurationError(f"invalid database URL {redact(url)!r}: {reason}{hint}") from None
    port = str(params.get("port") or "")
    if port and not all(p.strip().isdigit() for p in port.split(",")):
        # libpq only notices at connect time, with a less helpful message
        raise ConfigurationError(f"invalid database URL {redact(url)!r}: port {port!r}")
    return url


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    url = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)


def sqlalchemy_url(url: str) -> str:
    """A ``postgresql+psycopg://`` URL for SQLAlchemy (used by migra) from a libpq URL or DSN."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+"):
        return url
    params = psycopg.conninfo.conninfo_to_dict(url)
    from urllib.parse import quote, urlencode

    user = quote(str(params.pop("user", "")), safe="")
    password = params.pop("password", None)
    host = str(params.pop("host", ""))
    port = params.pop("port", None)
    dbname = quote(str(params.pop("dbname", "")), safe="")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    netloc = "" if host.startswith("/") else host + (f":{port}" if port else "")
    if host.startswith("/"):
        params["host"] = host
        if port:
            params["port"] = port
    query = ("?" + urlencode(params)) if params else ""
    return f"postgresql+psycopg://{auth}{netloc}/{dbname}{query}"
