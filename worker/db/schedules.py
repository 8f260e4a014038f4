"""pgqueuer's tables, in a schema of their own, and `pgbars serve`'s calls on its connections.

pgbars serve runs its schedules on pgqueuer (worker/serve.py): the tables that
make a schedule run once across replicas live in the schema `pgbars_queue`,
installed and upgraded by `pgbars db upgrade` with pgqueuer's own DDL (its
version decides it, never a copy of it here) and granted to pgbars_worker.
Every name is fixed here rather than read from PGQUEUER_* variables, so an
application of the operator's own that uses pgqueuer in the same database
never meets pgbars' tables, nor its notification channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.adapters.persistence.queries import Queries
from pgqueuer.domain.settings import DBSettings, Durability
from pgqueuer.domain.types import Channel
from psycopg import sql

from ..errors import SchemaError

QUEUE_SCHEMA = "pgbars_queue"
# Held while the queue's tables are installed or upgraded: two `db upgrade` at once take turns.
QUEUE_LOCK = "pgbars.queue"
# The channels of pgbars serve (sql/functions/_wake_workers.sql, _notify_bars_stored.sql).
WAKE_CHANNEL = "pgbars_wake"
BARS_CHANNEL = "pgbars_bars"


def queue_settings() -> DBSettings:
    """pgqueuer's object names for pgbars: every one given, none from the environment."""
    return DBSettings(
        prefix="",
        db_schema=QUEUE_SCHEMA,
        channel=Channel("pgbars_queue"),
        function="fn_pgqueuer_changed",
        statistics_table="pgqueuer_statistics",
        queue_status_type="pgqueuer_status",
        queue_table="pgqueuer",
        queue_table_log="pgqueuer_log",
        trigger="tg_pgqueuer_changed",
        schedules_table="pgqueuer_schedules",
        durability=Durability.durable,
        widen_id=True,
    )


def queue_queries(conn: psycopg.AsyncConnection[Any]) -> Queries:
    """pgqueuer's queries on `conn` (autocommit, as its driver requires), with pgbars' names."""
    settings = queue_settings()
    return Queries(
        PsycopgDriver(conn),
        qbe=QueryBuilderEnvironment(settings),
        qbq=QueryQueueBuilder(settings),
        qbs=QuerySchedulerBuilder(settings),
    )


async def install_queue(conn: psycopg.AsyncConnection[Any]) -> int:
    """Install pgqueuer's tables in pgbars_queue, or bring them to this pgqueuer's version.

    Returns the statements run (0: already current). `conn` must be autocommit:
    pgqueuer's upgrade runs one statement per round trip. Grants pgbars_worker
    what serve needs: rows of the queue's tables, never their definitions; and
    pgbars_reader the schedules' rows (is serve running?).
    """
    queries = queue_queries(conn)
    await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (QUEUE_LOCK,))
    try:
        if not await queries.schema_is_installed():
            async with conn.transaction():
                await queries.install()
            statements = 1
        else:
            statements = len((await queries.apply_upgrade()).statements)
        schema = sql.Identifier(QUEUE_SCHEMA)
        async with conn.transaction():
            await conn.execute(
                sql.SQL(
                    "REVOKE ALL ON SCHEMA {} FROM public;"
                    " GRANT USAGE ON SCHEMA {} TO pgbars_worker, pgbars_reader"
                ).format(schema, schema)
            )
            # the reader sees whether serve runs (docs/monitoring.md), not the queue itself
            await conn.execute(
                sql.SQL("GRANT SELECT ON {}.{} TO pgbars_reader").format(
                    schema, sql.Identifier(queue_settings().schedules_table)
                )
            )
            await conn.execute(
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO pgbars_worker;"
                    " GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {} TO pgbars_worker;"
                    " GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO pgbars_worker"
                ).format(schema, schema, schema)
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (QUEUE_LOCK,))
    return statements


async def require_queue(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise SchemaError unless pgqueuer's tables are installed and at this pgqueuer's version."""
    queries = queue_queries(conn)
    if not await queries.schema_is_installed():
        raise SchemaError(
            f"the schedules' tables ({QUEUE_SCHEMA}) are not installed: run `pgbars db upgrade`"
        )
    if (await queries.plan_upgrade()).statements:
        raise SchemaError(
            f"the schedules' tables ({QUEUE_SCHEMA}) are older than this pgqueuer: run `pgbars db upgrade`"
        )


async def seconds_until_live_refresh(
    conn: psycopg.AsyncConnection[Any], providers: Sequence[str]
) -> float | None:
    """Seconds until a live refresh of these providers is due (0: now; between sessions, until
    the next pre-market open); None when no watchlist symbol has one."""
    cur = await conn.execute("SELECT pgbars.seconds_until_live_refresh(%s)", (list(providers),))
    row = await cur.fetchone()
    return None if row is None or row[0] is None else max(0.0, float(row[0]))


async def wake_workers(conn: psycopg.AsyncConnection[Any], reason: str) -> None:
    """NOTIFY every running serve replica (pgbars._wake_workers) that work may be claimable."""
    await conn.execute("SELECT pgbars._wake_workers(%s)", (reason,))


async def prune(conn: psycopg.AsyncConnection[Any], keep_calls: str, keep_rejected: str) -> tuple[int, int]:
    """The daily pruning: ledger rows (prune_provider_calls) and chunkless quarantined rows
    (prune_rejected_bars) older than their intervals; how many of each were deleted."""
    cur = await conn.execute(
        "SELECT pgbars.prune_provider_calls(%s::interval), pgbars.prune_rejected_bars(%s::interval)",
        (keep_calls, keep_rejected),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def listen(conn: psycopg.AsyncConnection[Any], channel: str) -> None:
    """LISTEN on one of pgbars' channels (autocommit `conn`: notifications arrive between statements)."""
    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
