"""The demo's database: telling a demo database from one in use, creating and removing it,
and the demo's own rate limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..errors import PgbarsError

# -- the demo and reports ----------------------------------------------------------


async def provider_limits(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT name, calls_per_window, window_length, window_margin FROM pgbars.providers ORDER BY name"
    )
    return await cur.fetchall()


async def set_provider_limits(conn: psycopg.AsyncConnection[Any], limits: Sequence[dict[str, Any]]) -> None:
    """Rows like provider_limits() returns; one transaction."""
    async with conn.transaction():
        for limit in limits:
            await conn.execute(
                "UPDATE pgbars.providers SET calls_per_window = %(calls_per_window)s,"
                " window_length = %(window_length)s, window_margin = %(window_margin)s"
                " WHERE name = %(name)s",
                limit,
            )


# -- the demo's database -----------------------------------------------------------

DatabaseKind = Literal["empty", "demo", "in use"]


async def database_kind(conn: psycopg.AsyncConnection[Any]) -> DatabaseKind:
    """'empty': no pgbars schema; 'demo': a database `pgbars demo` ran in (pgbars.demo_runs
    has a row); 'in use': a pgbars schema that is not the demo's."""
    cur = await conn.execute(
        "SELECT to_regclass('pgbars.schema_migrations') IS NOT NULL,"
        " to_regclass('pgbars.demo_runs') IS NOT NULL"
    )
    row = await cur.fetchone()
    installed, has_marker = row if row else (False, False)
    if not installed:
        return "empty"
    if has_marker:
        cur = await conn.execute("SELECT EXISTS (SELECT FROM pgbars.demo_runs)")
        marked = await cur.fetchone()
        if marked and marked[0]:
            return "demo"
    return "in use"


async def require_not_demo(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise PgbarsError in a database that holds the demo's synthetic bars."""
    if await database_kind(conn) == "demo":
        raise PgbarsError(
            "this database holds the synthetic bars of `pgbars demo` (see pgbars.demo_runs);"
            " real bars are never fetched into it: point DATABASE_URL at another database,"
            " or remove the demo with `pgbars demo --remove`"
        )


async def record_demo_run(conn: psycopg.AsyncConnection[Any], tickers: Sequence[str]) -> None:
    await conn.execute("INSERT INTO pgbars.demo_runs (tickers) VALUES (%s)", (list(tickers),))


async def demo_contents(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """What a demo database holds: symbols, bars, chunks."""
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM pgbars.symbols), (SELECT count(*) FROM pgbars.ohlc_bars_v2),"
        " (SELECT count(*) FROM pgbars.backfill_chunks)"
    )
    row = await cur.fetchone()
    assert row is not None
    return {"symbols": row[0], "bars": row[1], "chunks": row[2]}


async def drop_pgbars_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Everything pgbars keeps in this database (the roles stay: they are the server's)."""
    await conn.execute("DROP SCHEMA pgbars CASCADE")


async def database_exists(conn: psycopg.AsyncConnection[Any], name: str) -> bool:
    cur = await conn.execute("SELECT EXISTS (SELECT FROM pg_database WHERE datname = %s)", (name,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def create_database(conn: psycopg.AsyncConnection[Any], name: str) -> None:
    try:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        raise PgbarsError(
            f"cannot create the demo's database {name}: this role may not create databases;"
            f" create it (CREATE DATABASE {name}) and point DATABASE_URL at it"
        ) from None


async def drop_database(conn: psycopg.AsyncConnection[Any], name: str) -> None:
    await conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
