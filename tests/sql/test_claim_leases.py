"""pgbars.claim_leases and pgbars.store_lease: one lease of either kind, with its session windows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import scalar, seed, set_clock, stage

IN_SESSION = "2025-01-02 12:00 America/New_York"


def claim(
    conn: psycopg.Connection[Any], kinds: list[str], providers: list[str], limit: int = 10
) -> list[Any]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.claim_leases('worker-a', %s, %s, '5 minutes', NULL, %s)",
        (providers, limit, kinds),
    ).fetchall()


def test_a_history_lease_carries_its_chunk_and_the_sessions_from_market_sessions(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    (lease,) = claim(conn, ["history"], ["polygon"])
    chunk = conn.cursor(row_factory=dict_row).execute("SELECT * FROM pgbars.backfill_chunks").fetchone()
    assert chunk is not None
    assert (lease["kind"], lease["chunk_id"], lease["lease_id"], lease["attempt"]) == (
        "history",
        chunk["id"],
        chunk["lease_id"],
        1,
    )
    assert (lease["ticker"], lease["timeframe"], lease["provider"], lease["targets"]) == (
        "AAPL",
        "h1",
        "polygon",
        ["h1"],
    )
    # the sessions of the chunk and a week either side, as market_sessions holds them
    dates = [dt.date.fromisoformat(s[0]) for s in lease["sessions"]]
    assert dates[0] == dt.date(2024, 11, 25) and dates[-1] == dt.date(2025, 1, 7)
    assert dt.date(2024, 12, 25) not in dates and dt.date(2024, 11, 28) not in dates
    friday = next(s for s in lease["sessions"] if s[0] == "2024-11-29")
    stored = conn.execute(
        "SELECT extract(epoch FROM premarket_open), extract(epoch FROM regular_open),"
        " extract(epoch FROM regular_close), extract(epoch FROM after_hours_close)"
        " FROM pgbars.market_sessions WHERE session_date = '2024-11-29'"
    ).fetchone()
    assert stored is not None and [float(x) for x in friday[1:]] == [float(x) for x in stored]


def test_a_live_lease_carries_its_refresh_and_targets(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    (lease,) = claim(conn, ["live"], ["tradier", "polygon"])
    assert (lease["kind"], lease["chunk_id"], lease["attempt"], lease["timeframe"]) == (
        "live",
        None,
        None,
        "m15",
    )
    assert lease["targets"] == ["h1"] and lease["first_session"] == lease["last_session"] == dt.date(
        2025, 1, 2
    )
    assert lease["lease_id"] == scalar(conn, "SELECT lease_id FROM pgbars.live_refreshes")
    assert abs(
        lease["lease_expires_at"] - scalar(conn, "SELECT lease_expires_at FROM pgbars.live_refreshes")
    ) < (dt.timedelta(seconds=1))


def test_both_kinds_at_once_and_the_kinds_are_checked(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL')")  # its h1 history and today's refresh
    leases = claim(conn, ["history", "live"], ["polygon", "tradier"], limit=2)
    assert [lease["kind"] for lease in leases] == ["live", "history", "history"]
    with pytest.raises(
        psycopg.errors.InvalidParameterValue, match="kinds must be among history, live and actions"
    ):
        claim(conn, ["chunks"], ["polygon"])


def test_store_lease_stores_either_kind_and_refuses_a_lost_lease(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    live, history = claim(conn, ["live"], ["tradier"])[0], claim(conn, ["history"], ["polygon"], 1)[0]
    bar = (dt.datetime(2024, 12, 31, 15, tzinfo=dt.UTC), 10.0, 11.0, 9.0, 10.5, 100.0, 10.2, 5)
    today = (dt.datetime(2025, 1, 2, 15, tzinfo=dt.UTC), 10.0, 11.0, 9.0, 10.5, 100.0, 10.2, 5)
    for lease, row in ((history, bar), (live, today)):
        with conn.transaction():
            stage(conn, lease["lease_id"], [row])
            written = conn.execute("SELECT * FROM pgbars.store_lease(%s)", (lease["lease_id"],)).fetchone()
        assert written == (1, 1, 0)
    assert (
        scalar(conn, "SELECT status FROM pgbars.backfill_chunks WHERE id = %s", (history["chunk_id"],))
        == "done"
    )
    assert scalar(conn, "SELECT lease_id FROM pgbars.live_refreshes") is None
    rows = conn.execute(
        "SELECT provider, timeframe, is_provisional FROM pgbars.ohlc_bars_v2 ORDER BY ts, timeframe"
    ).fetchall()
    assert rows == [("polygon", "h1", False), ("tradier", "h1", True)]
    with pytest.raises(psycopg.Error) as lost:
        conn.execute("SELECT * FROM pgbars.store_lease(%s)", (history["lease_id"],))
    assert lost.value.sqlstate == "PB001"
