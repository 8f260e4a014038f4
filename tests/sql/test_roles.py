"""pgbars_worker and pgbars_reader get what they need and are refused the rest."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import scalar, seed, set_clock


@contextmanager
def as_role(conn: psycopg.Connection[Any], role: str) -> Iterator[None]:
    conn.execute(f"SET ROLE {role}")
    try:
        yield
    finally:
        conn.execute("RESET ROLE")


def refused(conn: psycopg.Connection[Any], statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_roles_exist_and_cannot_log_in(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'pgbars_%' ORDER BY 1"
    ).fetchall()
    assert rows == [("pgbars_reader", False), ("pgbars_worker", False)]


def test_worker_runs_the_pipeline_functions(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["d1"])
    with as_role(conn, "pgbars_worker"):
        chunk_id, lease_id, symbol_id = conn.execute(
            "SELECT chunk_id, lease_id, symbol_id FROM pgbars.claim_backfill_chunks('w', '{yahoo}', 1)"
        ).fetchone() or (None, None, None)
        call_id = scalar(
            conn, "SELECT call_id FROM pgbars.reserve_provider_call('yahoo', 'w', %s)", (chunk_id,)
        )
        conn.execute("SELECT pgbars.complete_provider_call(%s, 200, 1, 12)", (call_id,))
        conn.execute(
            "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close,"
            " volume) VALUES (%s, 'd1', '2024-12-31 05:00+00', 'yahoo', 10, 11, 9, 10, 5)"
            " ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast)"
            " DO UPDATE SET close = excluded.close",
            (symbol_id,),
        )
        conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 1)", (chunk_id, lease_id))
        assert scalar(conn, "SELECT pgbars.has_backfill_data('AAPL', 'd1')") is True


def test_worker_may_not_delete_truncate_or_drop(conn: psycopg.Connection[Any]) -> None:
    with as_role(conn, "pgbars_worker"):
        refused(conn, "DELETE FROM pgbars.ohlc_bars_v2")
        refused(conn, "TRUNCATE pgbars.ohlc_bars_v2")
        refused(conn, "DELETE FROM pgbars.backfill_chunks")
        refused(conn, "UPDATE pgbars.providers SET calls_per_window = 1000")
        refused(conn, "UPDATE pgbars.backfill_chunks SET status = 'done'")
        refused(conn, "DROP TABLE pgbars.ohlc_bars_v2")
        refused(conn, "CREATE TABLE pgbars.intruder (id int)")


def test_reader_sees_progress_and_bars_only(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    with as_role(conn, "pgbars_reader"):
        assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_progress") == 1
        assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_status('AAPL')") == 1
        assert scalar(conn, "SELECT pgbars.has_backfill_data('AAPL')") is False
        assert scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2") == 0
        refused(conn, "SELECT * FROM pgbars.backfill_chunks")
        refused(conn, "SELECT * FROM pgbars.claim_backfill_chunks('r', '{polygon}')")
        refused(conn, "SELECT pgbars.request_backfill('MSFT')")
        refused(conn, "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id) VALUES (gen_random_uuid())")
        refused(conn, "SELECT pgbars.pause_provider('polygon', now())")
