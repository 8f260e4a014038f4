"""pgbars.seconds_until_live_refresh: when pgbars serve's next pass of today's bars is due."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.helpers import scalar, set_clock
from tests.sql.test_live_bars import IN_SESSION, claim, watch


def until(conn: psycopg.Connection[Any], providers: tuple[str, ...] = ("tradier",)) -> float | None:
    value = scalar(conn, "SELECT pgbars.seconds_until_live_refresh(%s)", (list(providers),))
    return None if value is None else float(value)


def test_nothing_planned_is_null(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    assert until(conn) is None
    watch(conn)
    assert until(conn, ("polygon",)) is None  # no live route of its own


def test_in_session_due_now_then_after_refresh_every(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    watch(conn)
    assert until(conn) == 0  # never refreshed
    (refresh,) = claim(conn)
    leased = until(conn)
    assert leased is not None and 299 < leased <= 300  # the lease (5 minutes) is the next chance
    conn.execute(
        "UPDATE pgbars.live_refreshes SET lease_id = NULL, lease_expires_at = NULL, refreshed_at = now()"
    )
    assert (after := until(conn)) is not None and 59 < after <= 60  # refresh_every, 60 s by default
    conn.execute("UPDATE pgbars.live_settings SET refresh_every = '15 seconds'")
    assert (after := until(conn)) is not None and 14 < after <= 15
    conn.execute(
        "UPDATE pgbars.providers SET paused_until = now() + interval '40 seconds' WHERE name = 'tradier'"
    )
    assert (paused := until(conn)) is not None and 39 < paused <= 40
    assert refresh["ticker"] == "AAPL"


def test_a_failed_refresh_counts_from_its_retry_at(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    watch(conn)
    (refresh,) = claim(conn)
    conn.execute(
        "SELECT pgbars.release_live_refresh(%s, %s, %s, 'tradier: HTTP 503')",
        (refresh["symbol_id"], refresh["timeframe"], refresh["lease_id"]),
    )
    wait = until(conn)
    assert wait is not None and 3.5 <= wait <= 6.25  # 5 s +/-25 %, not 0: no loop
    conn.execute("UPDATE pgbars.live_refreshes SET retry_at = now() + interval '20 seconds'")
    assert (later := until(conn)) is not None and 19 < later <= 20
    # a retry_at left from an earlier session does not hold up today's
    conn.execute("UPDATE pgbars.live_refreshes SET session_date = '2024-12-31'")
    assert until(conn) == 0


def test_a_symbol_without_data_this_session_does_not_count(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    watch(conn)
    claim(conn)
    conn.execute(
        "UPDATE pgbars.live_refreshes SET lease_id = NULL, lease_expires_at = NULL, no_data = 'unknown'"
    )
    assert until(conn) is None


@pytest.mark.parametrize(
    ("clock", "seconds"),
    [
        ("2025-01-02 20:30 America/New_York", 7.5 * 3600),  # after-hours closed: Friday 04:00
        ("2025-01-04 12:00 America/New_York", 40 * 3600),  # Saturday noon: Monday 04:00
    ],
)
def test_between_sessions_the_next_pre_market_open(
    conn: psycopg.Connection[Any], clock: str, seconds: float
) -> None:
    set_clock(conn, clock)
    watch(conn)
    assert until(conn) == pytest.approx(seconds, abs=1)
