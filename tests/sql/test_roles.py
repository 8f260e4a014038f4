"""pgbars_worker and pgbars_reader get what they need and are refused the rest."""

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import as_role, scalar, seed, set_clock, stage


def refused(conn: psycopg.Connection[Any], statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_roles_exist_and_cannot_log_in(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'pgbars_%' ORDER BY 1"
    ).fetchall()
    assert rows == [("pgbars_reader", False), ("pgbars_worker", False)]


def claim_as_worker(conn: psycopg.Connection[Any], kind: str = "history") -> dict[str, Any]:
    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT * FROM pgbars.claim_leases('w', '{yahoo,polygon,tradier}', 1, '5 minutes', NULL, %s)",
            ([kind],),
        )
        .fetchone()
    )
    assert row is not None
    return row


def store_as_worker(conn: psycopg.Connection[Any], lease_id: Any, bars: list[tuple[Any, ...]]) -> Any:
    with conn.transaction():
        stage(conn, lease_id, bars)
        return conn.execute("SELECT * FROM pgbars.store_lease(%s)", (lease_id,)).fetchone()


def test_worker_runs_the_pipeline_down_its_one_path(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["d1"], start=dt.date(2024, 12, 30), end=dt.date(2024, 12, 31))
    seed(conn, "MSFT", ["d1"], start=dt.date(2024, 12, 30), end=dt.date(2024, 12, 31))
    with as_role(conn, "pgbars_worker"):
        lease = claim_as_worker(conn)
        call_id = scalar(
            conn, "SELECT call_id FROM pgbars.reserve_provider_call('yahoo', 'w', %s)", (lease["chunk_id"],)
        )
        conn.execute("SELECT pgbars.complete_provider_call(%s, 200, 1, 12)", (call_id,))
        bar = (dt.datetime(2024, 12, 31, 5, tzinfo=dt.UTC), 10, 11, 9, 10, 5)
        assert store_as_worker(conn, lease["lease_id"], [bar]) == (1, 1, 0)
        assert scalar(conn, "SELECT pgbars.has_backfill_data(%s, 'd1')", (lease["ticker"],)) is True
        other = claim_as_worker(conn)
        settled = conn.execute(
            "SELECT outcome FROM pgbars.settle_lease(%s, 'transient', 'HTTP 502')", (other["lease_id"],)
        ).fetchone()
        assert settled == ("retry",)


def test_worker_cannot_make_history_provisional_and_have_cleanup_delete_it(
    conn: psycopg.Connection[Any],
) -> None:
    # The attack: mark history provisional, then let cleanup_provisional_bars
    # (which the worker may run) delete it as "replaced by history".
    set_clock(conn)
    seed(conn, "AAPL", ["d1"], start=dt.date(2024, 12, 30), end=dt.date(2024, 12, 31))
    with as_role(conn, "pgbars_worker"):
        lease = claim_as_worker(conn)
        bars = [(dt.datetime(2024, 12, day, 5, tzinfo=dt.UTC), 10, 11, 9, 10, 5) for day in (30, 31)]
        store_as_worker(conn, lease["lease_id"], bars)
        refused(conn, "UPDATE pgbars.ohlc_bars_v2 SET is_provisional = true")
        refused(conn, "UPDATE pgbars.ohlc_bars_v2 SET close = 0")
        refused(conn, "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id) VALUES (gen_random_uuid())")
        refused(conn, "DELETE FROM pgbars.rejected_bars")
        refused(conn, "UPDATE pgbars.rejected_bars SET reason = 'x'")
        refused(conn, "SELECT * FROM pgbars.staged_bars")
        refused(conn, "DELETE FROM pgbars.staged_bars")
        # the lease path's inner functions are not the worker's to call
        refused(conn, "SELECT pgbars.complete_backfill_chunk(1, gen_random_uuid(), 0)")
        refused(conn, "SELECT pgbars.fail_backfill_chunk(1, gen_random_uuid(), 'x', false)")
        refused(conn, "SELECT * FROM pgbars.claim_backfill_chunks('w', '{yahoo}', 1)")
        refused(conn, "SELECT pgbars.derive_bars(gen_random_uuid(), 'h1', current_date, current_date)")
        conn.execute("SELECT pgbars.cleanup_provisional_bars()")
    assert scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2 WHERE NOT is_provisional") == 2


def test_a_lease_stores_only_inside_its_sessions(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["d1"], start=dt.date(2024, 12, 30), end=dt.date(2024, 12, 31))
    seed(conn, "AAPL", ["d1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 3))
    with as_role(conn, "pgbars_worker"):
        first = claim_as_worker(conn)
        stored = (dt.datetime(first["last_session"].year, 12, first["last_session"].day, 5, tzinfo=dt.UTC),)
        store_as_worker(conn, first["lease_id"], [(*stored, 10, 11, 9, 10, 5)])
        second = claim_as_worker(conn)
        # a bar of the first chunk's sessions, staged under the second chunk's lease
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="outside the lease's sessions"):
            store_as_worker(conn, second["lease_id"], [(*stored, 0, 0, 0, 0, 0)])
    assert scalar(conn, "SELECT close FROM pgbars.ohlc_bars_v2") == 10
    assert scalar(conn, "SELECT count(*) FROM pgbars.staged_bars") == 0


@pytest.fixture
def worker_login(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A login role that is a member of pgbars_worker only, as production would grant it."""
    name = f"pgbars_test_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE ROLE {name} LOGIN IN ROLE pgbars_worker")
    try:
        yield name
    finally:
        conn.execute("RESET SESSION AUTHORIZATION")
        conn.execute(f"DROP OWNED BY {name}")
        conn.execute(f"DROP ROLE {name}")


def test_the_clock_override_is_ignored_for_the_worker_role(
    conn: psycopg.Connection[Any], worker_login: str
) -> None:
    # The owner (tests, replays) may plan at another instant...
    conn.execute("SET pgbars.now = '2027-06-01 12:00 America/New_York'")
    assert scalar(conn, "SELECT pgbars._now() > now() + interval '100 days'") is True
    # ...a worker login may not: planning stays on the real clock.
    conn.execute(f"SET SESSION AUTHORIZATION {worker_login}")
    assert scalar(conn, "SELECT pgbars._now() = now()") is True
    planned = scalar(conn, "SELECT pgbars.request_backfill('AAPL', '{d1}')")
    assert dt.date.fromisoformat(planned["window_end"]) < dt.date(2027, 1, 1)
    conn.execute("RESET SESSION AUTHORIZATION")
    last = scalar(conn, "SELECT max(last_session) FROM pgbars.backfill_chunks")
    assert last < dt.date(2027, 1, 1)
    # A test database's owner may allow it for every role.
    conn.execute("UPDATE pgbars.planning_clock SET allow_override = true")
    conn.execute(f"SET SESSION AUTHORIZATION {worker_login}")
    assert scalar(conn, "SELECT pgbars._now() > now() + interval '100 days'") is True
    refused(conn, "UPDATE pgbars.planning_clock SET allow_override = false")


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
