"""The XNYS calendar the installer loads into pgbars.market_sessions."""

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from tests.sql.helpers import scalar
from worker import clock

NEW_YORK = ZoneInfo("America/New_York")


def session(conn: psycopg.Connection[Any], day: str) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute("SELECT * FROM pgbars.market_sessions WHERE session_date = %s", (day,)).fetchone()


def test_two_years_hold_502_sessions(conn: psycopg.Connection[Any]) -> None:
    count = scalar(
        conn,
        "SELECT count(*) FROM pgbars.market_sessions"
        " WHERE session_date BETWEEN '2023-01-01' AND '2024-12-31'",
    )
    assert count == 502


def test_holidays_weekends_and_closures_are_not_sessions(conn: psycopg.Connection[Any]) -> None:
    for day in ("2024-12-25", "2024-12-28", "2024-12-29", "2025-01-09", "2024-07-04"):
        assert session(conn, day) is None, day


def test_regular_session_with_extended_hours(conn: psycopg.Connection[Any]) -> None:
    s = session(conn, "2024-07-01")
    assert s is not None
    local = {
        k: s[k].astimezone(NEW_YORK).time()
        for k in ("premarket_open", "regular_open", "regular_close", "after_hours_close")
    }
    assert local == {
        "premarket_open": dt.time(4),
        "regular_open": dt.time(9, 30),
        "regular_close": dt.time(16),
        "after_hours_close": dt.time(20),
    }
    assert s["is_early_close"] is False
    assert s["base_minutes"] == 960


def test_early_close_ends_regular_at_13_and_after_hours_at_17(
    conn: psycopg.Connection[Any],
) -> None:
    s = session(conn, "2024-11-29")
    assert s is not None
    assert s["regular_close"].astimezone(NEW_YORK).time() == dt.time(13)
    assert s["after_hours_close"].astimezone(NEW_YORK).time() == dt.time(17)
    assert s["is_early_close"] is True
    assert s["base_minutes"] == 780


def test_utc_offsets_follow_daylight_saving_time(conn: psycopg.Connection[Any]) -> None:
    before = session(conn, "2024-03-08")
    after = session(conn, "2024-03-11")
    assert before is not None and after is not None
    # 04:00 New York is 09:00 UTC in winter and 08:00 UTC in summer
    assert before["premarket_open"].astimezone(dt.UTC).hour == 9
    assert after["premarket_open"].astimezone(dt.UTC).hour == 8
    # a winter Friday's after-hours close falls on Saturday in UTC
    assert before["after_hours_close"].astimezone(dt.UTC) == dt.datetime(2024, 3, 9, 1, tzinfo=dt.UTC)


def test_calendar_reaches_from_2000_to_the_end_of_next_year(conn: psycopg.Connection[Any]) -> None:
    first, last = conn.execute(
        "SELECT min(session_date), max(session_date) FROM pgbars.market_sessions"
    ).fetchone() or (None, None)
    assert first == dt.date(2000, 1, 3)
    assert last is not None and last.year == clock.today_new_york().year + 1 and last.month == 12


def test_calendar_module_handles_one_day_ranges() -> None:
    from worker.calendar import xnys_sessions

    [only] = xnys_sessions(dt.date(2024, 11, 29), dt.date(2024, 11, 29))
    assert only.is_early_close
    assert xnys_sessions(dt.date(2024, 12, 25), dt.date(2024, 12, 25)) == []


def test_calendar_module_returns_nothing_for_a_range_without_sessions() -> None:
    """Extending through 31 December 2028 after its last session (Friday the 29th): a weekend."""
    from worker.calendar import xnys_sessions

    assert xnys_sessions(dt.date(2028, 12, 30), dt.date(2028, 12, 31)) == []
    assert xnys_sessions(dt.date(2024, 12, 25), dt.date(2024, 12, 25)) == []
