"""pgbars.coverage and pgbars.session_coverage: the planned sessions with bars, and why the others have none.

Chunks are claimed and completed through the SQL functions, with bars inserted for some sessions
only; the planning clock is helpers.CLOCK (the last completed session is 2024-12-31).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import scalar, seed, set_clock

D = dt.date
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC
MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
DECEMBER = {"start": D(2024, 12, 2), "end": D(2024, 12, 31)}  # 21 sessions, one h1 chunk


def ny(day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    """hour:minute New York on `day`."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NEW_YORK)


def rows(conn: psycopg.Connection[Any], query: str, params: Any = None) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def sessions(conn: psycopg.Connection[Any], first: dt.date, last: dt.date) -> list[dt.date]:
    """The XNYS sessions from `first` to `last`."""
    return [
        day
        for (day,) in conn.execute(
            "SELECT session_date FROM pgbars.market_sessions WHERE session_date BETWEEN %s AND %s ORDER BY 1",
            (first, last),
        ).fetchall()
    ]


def claim(
    conn: psycopg.Connection[Any], ticker: str, provider: str = "polygon", limit: int = 1
) -> list[dict[str, Any]]:
    """Claims of one ticker's chunks of one provider, newest first."""
    return rows(
        conn,
        "SELECT chunk_id, lease_id, symbol_id, timeframe, first_session, last_session"
        " FROM pgbars.claim_backfill_chunks('worker-a', %s, %s, '5 minutes', %s)",
        ([provider], limit, [ticker]),
    )


def add_bars(
    conn: psycopg.Connection[Any],
    claimed: dict[str, Any],
    starts: list[dt.datetime],
    provider: str = "polygon",
) -> None:
    conn.cursor().executemany(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider,"
        " open, high, low, close, volume) VALUES (%s, %s, %s, %s, 10, 11, 9, 10, 100)"
        " ON CONFLICT DO NOTHING",  # a re-fetch serves the same bars again
        [(claimed["symbol_id"], claimed["timeframe"], ts, provider) for ts in starts],
    )


def complete(conn: psycopg.Connection[Any], claimed: dict[str, Any], bars: int) -> None:
    conn.execute(
        "SELECT pgbars.complete_backfill_chunk(%s, %s, %s)", (claimed["chunk_id"], claimed["lease_id"], bars)
    )


def fetch(
    conn: psycopg.Connection[Any],
    ticker: str,
    starts: list[dt.datetime],
    provider: str = "polygon",
) -> dict[str, Any]:
    """A worker's pass over the ticker's newest due chunk: store `starts` as bars, then done."""
    (claimed,) = claim(conn, ticker, provider)
    add_bars(conn, claimed, starts, provider)
    complete(conn, claimed, len(starts))
    return claimed


def coverage(conn: psycopg.Connection[Any], ticker: str, timeframe: str = "h1") -> dict[str, Any]:
    (row,) = rows(
        conn, "SELECT * FROM pgbars.coverage WHERE symbol = %s AND timeframe = %s", (ticker, timeframe)
    )
    return row


def states(conn: psycopg.Connection[Any], ticker: str, timeframe: str = "h1") -> dict[dt.date, str]:
    return {
        r["session_date"]: r["state"]
        for r in rows(
            conn,
            "SELECT session_date, state FROM pgbars.session_coverage WHERE symbol = %s AND timeframe = %s",
            (ticker, timeframe),
        )
    }


COUNTS = (
    "sessions_expected",
    "sessions_with_bars",
    "confirmed_empty",
    "sessions_missing",
    "missing_fetched_empty",
    "missing_requeued",
    "missing_not_fetched",
    "missing_failed",
)


def counts(row: dict[str, Any]) -> tuple[int, ...]:
    return tuple(row[c] for c in COUNTS)


def test_lists_exactly_the_sessions_the_provider_answered_without_bars(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], **DECEMBER)
    december = sessions(conn, D(2024, 12, 2), D(2024, 12, 31))
    assert len(december) == 21
    empty = {D(2024, 12, 4), D(2024, 12, 24), D(2024, 12, 31)}  # Dec 24 closes early
    with_bars = [day for day in december if day not in empty]
    fetch(conn, "AAPL", [ny(day, 10) for day in with_bars] + [ny(D(2024, 12, 2), 11)])

    row = coverage(conn, "AAPL")
    assert (row["window_start"], row["window_end"]) == (D(2024, 12, 2), D(2024, 12, 31))
    assert (row["first_bar"], row["last_bar"]) == (ny(D(2024, 12, 2), 10), ny(D(2024, 12, 30), 10))
    assert counts(row) == (21, 18, 0, 3, 3, 0, 0, 0)
    assert row["missing_sessions"] == sorted(empty)
    assert {day for day, state in states(conn, "AAPL").items() if state != "bars"} == empty
    assert set(states(conn, "AAPL").values()) == {"bars", "fetched_empty"}


def test_tells_empty_answers_from_sessions_never_fetched_and_failed_chunks(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "MSFT", ["h1"], start=D(2024, 10, 1), end=D(2024, 12, 31))  # 52 + 12 sessions
    newest, oldest = claim(conn, "MSFT", limit=2)
    conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 400: bad request', false)",
        (newest["chunk_id"], newest["lease_id"]),
    )
    # the older chunk is still running: a bar already stored counts, the rest was never answered
    add_bars(conn, oldest, [ny(D(2024, 10, 1), 9)])

    row = coverage(conn, "MSFT")
    assert counts(row) == (64, 1, 0, 63, 0, 0, 51, 12)
    assert len(row["missing_sessions"]) == 63
    assert row["missing_sessions"][0] == D(2024, 10, 2)
    by_state = states(conn, "MSFT")
    assert by_state[D(2024, 10, 1)] == "bars"
    assert by_state[D(2024, 10, 2)] == "not_fetched"
    assert by_state[D(2024, 12, 13)] == by_state[D(2024, 12, 31)] == "failed"
    assert (row["first_bar"], row["last_bar"]) == (ny(D(2024, 10, 1), 9), ny(D(2024, 10, 1), 9))


def test_a_job_without_bars(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "NVDA", ["h1"], **DECEMBER)
    row = coverage(conn, "NVDA")
    assert (row["first_bar"], row["last_bar"]) == (None, None)
    assert counts(row) == (21, 0, 0, 21, 0, 0, 21, 0)


def test_forecasts_and_other_timeframes_are_not_bars(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], **DECEMBER)
    claimed = fetch(conn, "AAPL", [])
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, is_forecast,"
        " open, high, low, close, volume) VALUES (%s, 'h1', %s, 'polygon', TRUE, 10, 11, 9, 10, 100),"
        " (%s, 'm5', %s, 'polygon', FALSE, 10, 11, 9, 10, 100)",
        (claimed["symbol_id"], ny(D(2024, 12, 3), 10), claimed["symbol_id"], ny(D(2024, 12, 4), 10)),
    )
    row = coverage(conn, "AAPL")
    assert counts(row) == (21, 0, 0, 21, 21, 0, 0, 0)
    assert row["first_bar"] is None


# Bars by New York date across the 2024 DST changes (Mar 10, Nov 3) and the early close
# after Thanksgiving (Nov 29: after-hours end at 17:00).
DST_WINDOWS = [
    (D(2024, 3, 7), D(2024, 3, 12)),  # Thu, Fri (EST) | Mon, Tue (EDT)
    (D(2024, 10, 31), D(2024, 11, 5)),  # Thu, Fri (EDT) | Mon, Tue (EST)
    (D(2024, 11, 27), D(2024, 12, 2)),  # Wed, (Thanksgiving), Fri early close, Mon
]


def seed_dst_windows(conn: psycopg.Connection[Any], ticker: str, timeframe: str) -> None:
    set_clock(conn)
    for first, last in DST_WINDOWS:
        seed(conn, ticker, [timeframe], start=first, end=last)


def test_intraday_sessions_follow_new_york_dates_across_dst_and_early_closes(
    conn: psycopg.Connection[Any],
) -> None:
    seed_dst_windows(conn, "AAPL", "h1")
    planned = [day for first, last in DST_WINDOWS for day in sessions(conn, first, last)]
    assert len(planned) == 11  # no Thanksgiving, no weekends
    bars = [
        ny(D(2024, 3, 8), 19),  # 00:00 UTC on Saturday: Friday's session
        ny(D(2024, 3, 11), 4),  # 08:00 UTC (EDT)
        ny(D(2024, 11, 1), 19),  # 23:00 UTC (EDT)
        ny(D(2024, 11, 4), 19),  # 00:00 UTC on Tuesday (EST): Monday's session
        ny(D(2024, 11, 29), 16),  # the early close's last hour
        ny(D(2024, 11, 28), 10),  # Thanksgiving: no session planned, no session covered
    ]
    assert bars[0].astimezone(UTC) == dt.datetime(2024, 3, 9, 0, 0, tzinfo=UTC)
    assert bars[3].astimezone(UTC) == dt.datetime(2024, 11, 5, 0, 0, tzinfo=UTC)
    for _ in DST_WINDOWS:
        fetch(conn, "AAPL", [])
    (symbol_id,) = {r["symbol_id"] for r in rows(conn, "SELECT symbol_id FROM pgbars.coverage")}
    add_bars(conn, {"symbol_id": symbol_id, "timeframe": "h1"}, bars)

    row = coverage(conn, "AAPL")
    assert row["missing_sessions"] == [
        D(2024, 3, 7),
        D(2024, 3, 12),
        D(2024, 10, 31),
        D(2024, 11, 5),
        D(2024, 11, 27),
        D(2024, 12, 2),
    ]
    assert counts(row) == (11, 5, 0, 6, 6, 0, 0, 0)
    assert (row["window_start"], row["window_end"]) == (D(2024, 3, 7), D(2024, 12, 2))


def test_a_bar_at_0030_utc_on_saturday_is_fridays(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["m30"], start=D(2024, 3, 8), end=D(2024, 3, 11))
    late_friday = dt.datetime(2024, 3, 9, 0, 30, tzinfo=UTC)  # 19:30 New York (EST)
    early_monday = dt.datetime(2024, 3, 11, 4, 30, tzinfo=UTC)  # 00:30 New York (EDT)
    fetch(conn, "AAPL", [late_friday, early_monday])
    assert states(conn, "AAPL", "m30") == {D(2024, 3, 8): "bars", D(2024, 3, 11): "bars"}


def test_daily_bars_start_at_midnight_new_york_across_dst(conn: psycopg.Connection[Any]) -> None:
    seed_dst_windows(conn, "AAPL", "d1")
    # midnight New York is 05:00 UTC in winter, 04:00 UTC in summer
    bars = [
        ny(D(2024, 3, 8)),
        ny(D(2024, 3, 11)),
        ny(D(2024, 11, 1)),
        ny(D(2024, 11, 4)),
        ny(D(2024, 11, 29)),
    ]
    assert [b.astimezone(UTC).hour for b in bars] == [5, 4, 4, 5, 5]
    for _ in DST_WINDOWS:
        fetch(conn, "AAPL", [], provider="yahoo")
    (symbol_id,) = {r["symbol_id"] for r in rows(conn, "SELECT symbol_id FROM pgbars.coverage")}
    add_bars(conn, {"symbol_id": symbol_id, "timeframe": "d1"}, bars, "yahoo")

    row = coverage(conn, "AAPL", "d1")
    assert row["missing_sessions"] == [
        D(2024, 3, 7),
        D(2024, 3, 12),
        D(2024, 10, 31),
        D(2024, 11, 5),
        D(2024, 11, 27),
        D(2024, 12, 2),
    ]
    assert row["sessions_with_bars"] == 5


def test_weekly_bars_cover_the_sessions_of_their_week(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    conn.execute("UPDATE pgbars.derived_routes SET enabled = false WHERE timeframe = 'w1'")  # fetched weeks
    seed(conn, "MSFT", ["w1"], **DECEMBER)  # weeks of Dec 2, 9, 16, 23, 30
    fetch(conn, "MSFT", [ny(D(2024, 12, 2)), ny(D(2024, 12, 16)), ny(D(2024, 12, 30))], "yahoo")
    row = coverage(conn, "MSFT", "w1")
    # the weeks of Dec 9 (5 sessions) and Dec 23 (Dec 25 is a holiday: 4) have no bar
    assert counts(row) == (21, 12, 0, 9, 9, 0, 0, 0)
    assert row["missing_sessions"] == sessions(conn, D(2024, 12, 9), D(2024, 12, 13)) + sessions(
        conn, D(2024, 12, 23), D(2024, 12, 27)
    )


def test_filtering_by_symbol_reads_only_that_symbols_jobs(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], **DECEMBER)
    seed(conn, "MSFT", ["h1"], **DECEMBER)
    (plan,) = scalar(conn, "EXPLAIN (FORMAT JSON) SELECT * FROM pgbars.coverage WHERE symbol = 'AAPL'")
    text = str(plan)
    assert "'AAPL'" in text
    assert re.search(r"Index Cond.*job_id", text), "the sessions are read per job"


def test_readers_and_workers_see_the_views_and_not_the_table(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], **DECEMBER)
    for role in ("pgbars_reader", "pgbars_worker"):
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL ROLE {role}")
            assert scalar(conn, "SELECT sessions_expected FROM pgbars.coverage") == 21
            assert scalar(conn, "SELECT count(*) FROM pgbars.session_coverage") == 21
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE pgbars_reader")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM pgbars.gap_repairs")


@pytest.mark.parametrize("view", ["coverage", "session_coverage"])
def test_every_column_is_explained_in_the_monitoring_doc(conn: psycopg.Connection[Any], view: str) -> None:
    text = MONITORING.read_text(encoding="utf-8")
    assert f"pgbars.{view}" in text
    columns = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0", (f"pgbars.{view}",)
    ).fetchall()
    assert [name for (name,) in columns if f"`{name}`" not in text] == []
