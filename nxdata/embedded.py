"""An embedded PostgreSQL server (the `pgserver` package) for machines without one.

    with EmbeddedPostgres() as server:      # data under ./.nxdata/embedded, kept between runs
        db = Database(server.url)

``Database.embedded()`` does the same and stops the server when the database is closed.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import EmbeddedServerError

__all__ = ["DEFAULT_DATA_DIR", "EmbeddedPostgres"]

DEFAULT_DATA_DIR = Path(".nxdata") / "embedded"
"""Where the embedded server keeps its data by default (relative to the working directory)."""


class EmbeddedPostgres:
    """A PostgreSQL server run from the binaries that ship in the ``pgserver`` wheel.

    ``data_dir=None`` uses ``./.nxdata/embedded``; ``temporary=True`` uses a fresh temporary
    folder deleted on `stop`. Starting is idempotent; the server listens on a Unix socket only.
    """

    def __init__(self, data_dir: str | Path | None = None, *, temporary: bool = False) -> None:
        self.temporary = temporary
        if temporary:
            self.data_dir = Path(tempfile.mkdtemp(prefix="nxdata-pg-"))
        else:
            self.data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
        self._server: Any = None

    @property
    def url(self) -> str:
        """The libpq URL of the running server (database ``postgres``, user ``postgres``)."""
        if self._server is None:
            raise EmbeddedServerError("the embedded PostgreSQL is not started")
        return str(self._server.get_uri())

    def start(self) -> str:
        """Start (or attach to) the server and return its URL."""
        if self._server is not None:
            return self.url
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI)
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError:
            raise EmbeddedServerError(
                "the embedded PostgreSQL needs the pgserver package: pip install 'nxdata[embedded]'"
            ) from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                self._server = pgserver.get_server(  # type: ignore[attr-defined]
                    self.data_dir.resolve(), cleanup_mode="delete" if self.temporary else "stop"
                )
        except Exception as exc:  # pgserver raises plain exceptions with the initdb/pg_ctl output
            raise EmbeddedServerError(
                f"could not start the embedded PostgreSQL in {self.data_dir}: {exc}"
            ) from exc
        return self.url

    def stop(self) -> None:
        """Stop the server (and delete its data if temporary)."""
        if self._server is not None:
            server, self._server = self._server, None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server.cleanup()

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
