"""Today's bars: claim_live_refreshes, store_live_bars, release_live_refresh, cleanup_provisional_bars.

The clock is controlled (pgbars.now): a session in progress, before the pre-market, after the
after-hours close, a weekend and a holiday. Bars come from the emulator's synthetic market and
the roll-ups (m15 -> h1, h4) are compared with an aggregation computed here in Python.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import scalar, set_clock, stage
from worker.emulator import synthetic

NEW_YORK = ZoneInfo("America/New_York")
SESSION = dt.date(2025, 1, 2)
IN_SESSION = "2025-01-02 12:00 America/New_York"


def watch(conn: psycopg.Connection[Any], ticker: str = "AAPL") -> uuid.UUID:
    conn.execute("SELECT pgbars.add_to_watchlist(%s)", (ticker,))
    found = scalar(conn, "SELECT id FROM pgbars.symbols WHERE ticker = %s", (ticker,))
    assert isinstance(found, uuid.UUID)
    return found


def claim(
    conn: psycopg.Connection[Any], providers: Sequence[str] = ("tradier",), tickers: list[str] | None = None
) -> list[dict[str, Any]]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT * FROM pgbars.claim_live_refreshes('test', %s, 100, '5 minutes', %s)",
            (list(providers), tickers),
        )
        .fetchall()
    )


def store(
    conn: psycopg.Connection[Any],
    refresh: dict[str, Any],
    bars: Sequence[synthetic.SyntheticBar],
    rejects: Sequence[tuple[dt.datetime | None, dict[str, object], str]] = (),
) -> tuple[int, int, int]:
    """What the worker does with a live answer: stage it, store_live_bars, one transaction."""
    with conn.transaction():
        stage(
            conn,
            refresh["lease_id"],
            [(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, None) for b in bars],
            rejects,
        )
        row = conn.execute(
            "SELECT bars_written, bars_changed, bars_rejected FROM pgbars.store_live_bars(%s, %s, %s)",
            (refresh["symbol_id"], refresh["timeframe"], refresh["lease_id"]),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def stored(conn: psycopg.Connection[Any], timeframe: str, provider: str = "tradier") -> list[dict[str, Any]]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT * FROM pgbars.ohlc_bars_v2 WHERE timeframe = %s AND provider = %s ORDER BY ts",
            (timeframe, provider),
        )
        .fetchall()
    )


def m15_until(ticker: str, until: dt.datetime) -> list[synthetic.SyntheticBar]:
    """The synthetic session's 15-minute bars that started before `until` (what Tradier has so far)."""
    return [b for b in synthetic.bars(ticker, "m15", SESSION, SESSION) if b.ts < until]


def rolled_up(bars: Sequence[synthetic.SyntheticBar], hours: int) -> dict[dt.datetime, tuple[Any, ...]]:
    """Buckets of `hours` counted from 00:00 New York, computed independently of the SQL."""
    groups: dict[dt.datetime, list[synthetic.SyntheticBar]] = defaultdict(list)
    for bar in bars:
        local = bar.ts.astimezone(NEW_YORK)
        start = local.replace(hour=local.hour - local.hour % hours, minute=0)
        groups[start.astimezone(dt.UTC)].append(bar)
    out = {}
    for start, group in groups.items():
        group.sort(key=lambda b: b.ts)
        volume = sum(b.volume for b in group)
        weighted = [b for b in group if b.vwap is not None and b.volume > 0]
        vwap = (
            sum(b.vwap * b.volume for b in weighted if b.vwap is not None) / sum(b.volume for b in weighted)
            if weighted
            else None
        )
        out[start] = (
            group[0].open,
            max(b.high for b in group),
            min(b.low for b in group),
            group[-1].close,
            volume,
            vwap,
        )
    return out


@pytest.fixture
def session(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """A connection whose planning clock is 2025-01-02 12:00 New York, a session in progress."""
    set_clock(conn, IN_SESSION)
    return conn


# --- what is due --------------------------------------------------------------------------


def test_a_watchlist_symbol_is_refreshed_from_m15_for_its_h1_and_h4(session: psycopg.Connection[Any]) -> None:
    symbol = watch(session)  # the trigger seeds h1
    session.execute("SELECT pgbars.request_backfill('AAPL', '{h4}')")  # derived from h1

    (refresh,) = claim(session)

    assert refresh["symbol_id"] == symbol
    assert refresh["ticker"] == "AAPL"
    assert (refresh["timeframe"], refresh["provider"], refresh["session_date"]) == ("m15", "tradier", SESSION)
    assert refresh["targets"] == ["h1", "h4"]  # m15 itself is not wanted: not stored
    assert refresh["range_start"] == dt.datetime(2025, 1, 2, 4, tzinfo=NEW_YORK)
    assert refresh["range_end"] == dt.datetime(2025, 1, 2, 20, tzinfo=NEW_YORK)
    assert isinstance(refresh["lease_id"], uuid.UUID)


def test_native_live_timeframes_are_fetched_as_they_are(session: psycopg.Connection[Any]) -> None:
    watch(session)
    session.execute("SELECT pgbars.request_backfill('AAPL', '{m1,m5,m15,m30,d1}')")

    got = {r["timeframe"]: r["targets"] for r in claim(session)}

    # d1 is no intraday timeframe: today's daily bar comes from history after the close
    assert got == {"m1": ["m1"], "m5": ["m5"], "m15": ["m15", "m30", "h1"]}


def test_symbols_not_in_a_watchlist_and_other_providers_are_not_claimed(
    session: psycopg.Connection[Any],
) -> None:
    session.execute("SELECT pgbars.request_backfill('MSFT', '{h1}')")  # a job, but no watchlist
    watch(session, "AAPL")
    watch(session, "NVDA")

    assert claim(session, providers=["polygon", "yahoo"]) == []
    assert [r["ticker"] for r in claim(session, tickers=["nvda"])] == ["NVDA"]
    assert [r["ticker"] for r in claim(session)] == ["AAPL"]


@pytest.mark.parametrize(
    "clock",
    [
        "2025-01-02 03:59 America/New_York",  # before the pre-market
        "2025-01-02 20:00 America/New_York",  # after-hours closed
        "2025-01-04 12:00 America/New_York",  # a Saturday
        "2025-01-01 12:00 America/New_York",  # New Year's Day
        "2024-11-29 17:00 America/New_York",  # early close: after-hours ends 17:00
    ],
)
def test_nothing_is_due_while_no_session_trades(conn: psycopg.Connection[Any], clock: str) -> None:
    set_clock(conn, IN_SESSION)
    watch(conn)
    set_clock(conn, clock)

    assert claim(conn) == []
    assert scalar(conn, "SELECT pgbars._live_session(pgbars._now())") is None


def test_pre_market_and_after_hours_are_live(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    watch(conn)
    for clock, session_date in [
        ("2025-01-02 04:00 America/New_York", SESSION),
        ("2024-11-29 16:59 America/New_York", dt.date(2024, 11, 29)),
    ]:
        set_clock(conn, clock)
        assert scalar(conn, "SELECT pgbars._live_session(pgbars._now())") == session_date


def test_a_refresh_is_claimed_once_then_waits_for_refresh_every(session: psycopg.Connection[Any]) -> None:
    watch(session)
    (refresh,) = claim(session)
    assert claim(session) == []  # leased

    store(session, refresh, m15_until("AAPL", dt.datetime(2025, 1, 2, 12, tzinfo=NEW_YORK)))
    assert claim(session) == []  # refreshed less than refresh_every (60 s) ago

    session.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")
    (again,) = claim(session)
    assert again["lease_id"] != refresh["lease_id"]


def test_an_expired_lease_is_claimed_again_and_the_old_lease_cannot_store(
    session: psycopg.Connection[Any],
) -> None:
    watch(session)
    (first,) = claim(session)
    session.execute("UPDATE pgbars.live_refreshes SET lease_expires_at = now() - interval '1 second'")
    (second,) = claim(session)

    with pytest.raises(psycopg.Error) as caught:
        store(session, first, m15_until("AAPL", dt.datetime(2025, 1, 2, 12, tzinfo=NEW_YORK)))
    assert caught.value.sqlstate == "PB001"
    assert stored(session, "h1") == []  # nothing written under the lost lease
    assert store(session, second, [])[0] == 0


# --- storing ------------------------------------------------------------------------------


def test_stored_bars_are_provisional_and_roll_ups_equal_an_independent_aggregation(
    session: psycopg.Connection[Any],
) -> None:
    watch(session)
    session.execute("SELECT pgbars.request_backfill('AAPL', '{m15,h4}')")
    (refresh,) = claim(session)
    assert refresh["targets"] == ["m15", "h1", "h4"]
    served = m15_until("AAPL", dt.datetime(2025, 1, 2, 12, 7, tzinfo=NEW_YORK))

    written, changed, rejected = store(session, refresh, served)

    assert (written, rejected) == (len(served), 0)
    m15 = stored(session, "m15")
    assert [(r["ts"], r["open"], r["close"], r["volume"]) for r in m15] == [
        (b.ts, b.open, b.close, b.volume) for b in served
    ]
    for timeframe, hours in (("h1", 1), ("h4", 4)):
        expected = rolled_up(served, hours)
        rows = stored(session, timeframe)
        assert {r["ts"] for r in rows} == set(expected)
        for r in rows:
            o, h, low, c, v, vwap = expected[r["ts"]]
            assert (r["open"], r["high"], r["low"], r["close"], r["volume"]) == (o, h, low, c, v)
            assert r["vwap"] == pytest.approx(vwap, rel=1e-12)
    every = stored(session, "m15") + stored(session, "h1") + stored(session, "h4")
    assert all(r["is_provisional"] and r["provider"] == "tradier" for r in every)
    assert changed == len(every)
    # h4 buckets start 04:00, 08:00, 12:00 New York: the 12:00 one holds the 12:00 bar only so far
    assert [r["ts"].astimezone(NEW_YORK).hour for r in stored(session, "h4")] == [4, 8, 12]

    # the next refresh rewrites only what changed: the bucket still trading
    session.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")
    (again,) = claim(session)
    later = m15_until("AAPL", dt.datetime(2025, 1, 2, 12, 22, tzinfo=NEW_YORK))
    assert store(session, again, later) == (len(later), 3, 0)  # a new m15, its h1 and its h4


def test_refused_rows_are_quarantined_per_session_and_replaced_by_the_next_answer(
    session: psycopg.Connection[Any],
) -> None:
    watch(session)
    (refresh,) = claim(session)
    bad_ts = dt.datetime(2025, 1, 2, 10, tzinfo=NEW_YORK)
    bad: list[tuple[dt.datetime | None, dict[str, object], str]] = [
        (bad_ts, {"timestamp": 1735830000, "open": -1}, "open is not positive"),
        (None, {"x": 1}, "no time"),
    ]

    assert store(session, refresh, [], bad) == (0, 0, 2)
    rows = session.execute(
        "SELECT chunk_id, timeframe, provider, reason FROM pgbars.rejected_bars ORDER BY reason"
    ).fetchall()
    assert rows == [(None, "m15", "tradier", "no time"), (None, "m15", "tradier", "open is not positive")]

    session.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")
    (again,) = claim(session)
    store(session, again, [], bad[:1])
    assert scalar(session, "SELECT count(*) FROM pgbars.rejected_bars") == 1


def test_an_empty_answer_well_into_the_regular_session_marks_the_symbol_without_data(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn, "2025-01-02 09:45 America/New_York")  # 15 minutes after the open: too early to tell
    watch(conn)
    conn.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")
    (refresh,) = claim(conn)
    store(conn, refresh, [])
    assert scalar(conn, "SELECT no_data FROM pgbars.live_refreshes") is None

    set_clock(conn, "2025-01-02 10:00 America/New_York")  # empty_grace (30 min) has passed
    (refresh,) = claim(conn)
    store(conn, refresh, [])
    why = scalar(conn, "SELECT no_data FROM pgbars.live_refreshes")
    assert "tradier answered no m15 bars for 2025-01-02" in why
    assert claim(conn) == []  # not asked again this session

    set_clock(conn, "2025-01-03 10:00 America/New_York")  # the next session asks again
    assert [r["session_date"] for r in claim(conn)] == [dt.date(2025, 1, 3)]


def release(conn: psycopg.Connection[Any], refresh: dict[str, Any], error: str | None) -> None:
    conn.execute(
        "SELECT pgbars.release_live_refresh(%s, %s, %s, %s)",
        (refresh["symbol_id"], refresh["timeframe"], refresh["lease_id"], error),
    )


def retry_state(conn: psycopg.Connection[Any]) -> tuple[int, float | None]:
    """failures, and seconds from now (the transaction's) to retry_at."""
    row = conn.execute(
        "SELECT failures, extract(EPOCH FROM retry_at - now())::float FROM pgbars.live_refreshes"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def due_now(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE pgbars.live_refreshes SET retry_at = now() - interval '1 second'")


def fail_again(conn: psycopg.Connection[Any], error: str) -> tuple[int, float | None]:
    """The refresh made due, claimed and released with `error`: its retry_state then."""
    due_now(conn)
    (leased,) = claim(conn)
    release(conn, leased, error)
    return retry_state(conn)


def test_a_failed_refresh_waits_5_s_doubling_at_most_refresh_every_and_keeps_the_error_without_secrets(
    session: psycopg.Connection[Any],
) -> None:
    watch(session)
    (refresh,) = claim(session)
    release(session, refresh, "tradier: HTTP 503")
    assert scalar(session, "SELECT last_error FROM pgbars.live_refreshes") == "tradier: HTTP 503"
    failures, wait = retry_state(session)
    assert failures == 1 and wait is not None and 3.75 <= wait <= 6.25  # 5 s, +/-25 %
    assert claim(session) == []  # not asked again in a loop

    failures, wait = fail_again(session, "GET /x?token=tt-secret-123 failed")
    assert "tt-secret-123" not in scalar(session, "SELECT last_error FROM pgbars.live_refreshes")
    assert failures == 2 and wait is not None and 7.5 <= wait <= 12.5  # doubled

    # never longer than refresh_every (60 s), however many failures in a row
    session.execute("UPDATE pgbars.live_refreshes SET failures = 9")
    failures, wait = fail_again(session, "tradier: HTTP 500")
    assert failures == 10 and wait is not None and 59 < wait <= 60

    # at least 1 s, even with refresh_every 0 (allowed): never asked in a loop
    session.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")
    failures, wait = fail_again(session, "tradier: HTTP 500")
    assert failures == 11 and wait is not None and 0.9 < wait <= 1
    session.execute("UPDATE pgbars.live_settings SET refresh_every = DEFAULT")

    # a release without the lease changes nothing
    due_now(session)
    (held,) = claim(session)
    release(session, refresh, "late")
    assert scalar(session, "SELECT lease_id FROM pgbars.live_refreshes") == held["lease_id"]

    # a stored refresh starts the count afresh
    session.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")
    store(session, held, m15_until("AAPL", dt.datetime(2025, 1, 2, 12, tzinfo=NEW_YORK)))
    assert retry_state(session) == (0, None)
    assert scalar(session, "SELECT last_error FROM pgbars.live_refreshes") is None
    assert len(claim(session)) == 1


def test_a_release_without_an_error_is_due_again_at_once_and_a_new_session_forgets_failures(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn, IN_SESSION)
    watch(conn)
    (refresh,) = claim(conn)
    release(conn, refresh, "tradier: HTTP 503")
    conn.execute("UPDATE pgbars.live_refreshes SET retry_at = now() - interval '1 second'")
    (again,) = claim(conn)
    release(conn, again, None)  # a 429 (the provider is paused instead) or a stop: no failure
    assert retry_state(conn) == (1, None)
    (third,) = claim(conn)
    release(conn, third, "tradier: HTTP 503")
    assert retry_state(conn)[0] == 2

    set_clock(conn, "2025-01-03 10:00 America/New_York")  # the next session
    (fresh,) = claim(conn)
    assert fresh["session_date"] == dt.date(2025, 1, 3)
    assert retry_state(conn) == (0, None)


def test_an_empty_answer_after_bars_today_is_a_hiccup_not_a_symbol_without_data(
    session: psycopg.Connection[Any],
) -> None:
    watch(session)
    session.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")
    (refresh,) = claim(session)
    store(session, refresh, m15_until("AAPL", dt.datetime(2025, 1, 2, 11, tzinfo=NEW_YORK)))
    (again,) = claim(session)
    assert store(session, again, []) == (0, 0, 0)  # Tradier answered "null" this time
    assert scalar(session, "SELECT no_data FROM pgbars.live_refreshes") is None
    assert len(claim(session)) == 1  # asked again


def test_the_worker_role_stores_through_the_functions_only(session: psycopg.Connection[Any]) -> None:
    watch(session)
    (refresh,) = claim(session)
    session.execute("SET ROLE pgbars_worker")
    try:
        bars = m15_until("AAPL", dt.datetime(2025, 1, 2, 12, tzinfo=NEW_YORK))
        with session.transaction():
            stage(
                session, refresh["lease_id"], [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars]
            )
            row = session.execute("SELECT * FROM pgbars.store_lease(%s)", (refresh["lease_id"],)).fetchone()
        assert row is not None and row[0] == 32  # 04:00 to 11:45
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            session.execute(
                "SELECT * FROM pgbars.store_live_bars(%s, %s, %s)",
                (refresh["symbol_id"], refresh["timeframe"], refresh["lease_id"]),
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            session.execute("UPDATE pgbars.live_refreshes SET lease_id = NULL")
    finally:
        session.execute("RESET ROLE")
    assert scalar(session, "SELECT bars_written FROM pgbars.live_refreshes") == 32


def test_a_claim_skips_a_refresh_being_stored_instead_of_waiting_for_it(
    session: psycopg.Connection[Any], connect: Any
) -> None:
    watch(session)
    watch(session, "MSFT")
    session.execute("UPDATE pgbars.live_settings SET refresh_every = '0 seconds'")
    aapl, msft = claim(session)
    storing = connect()
    set_clock(storing, IN_SESSION)
    with storing.transaction():
        storing.execute(
            "SELECT * FROM pgbars._lock_live_refresh(%s, %s, %s)",
            (aapl["symbol_id"], aapl["timeframe"], aapl["lease_id"]),
        )
        # MSFT's lease expired (as AAPL's did, whose row the store in flight has locked)
        session.execute("SET statement_timeout = '2s'")
        session.execute(
            "UPDATE pgbars.live_refreshes SET lease_expires_at = now() - interval '1 second'"
            " WHERE symbol_id = %s",
            (msft["symbol_id"],),
        )
        assert [r["ticker"] for r in claim(session)] == ["MSFT"]
        session.execute("RESET statement_timeout")


# --- reads and cleanup ----------------------------------------------------------------------


def _history_bar(conn: psycopg.Connection[Any], symbol: uuid.UUID, ts: dt.datetime, close: float) -> None:
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " VALUES (%s, 'h1', %s, 'polygon', %s, %s, %s, %s, 100)",
        (symbol, ts, close, close, close, close),
    )


def test_reads_prefer_history_to_provisional_bars(session: psycopg.Connection[Any]) -> None:
    symbol = watch(session)
    (refresh,) = claim(session)
    store(session, refresh, m15_until("AAPL", dt.datetime(2025, 1, 2, 12, tzinfo=NEW_YORK)))
    ten = dt.datetime(2025, 1, 2, 10, tzinfo=NEW_YORK)
    _history_bar(session, symbol, ten, 1.5)

    rows = session.execute(
        "SELECT ts, provider, is_provisional FROM pgbars.get_bars('AAPL', 'h1', %s, %s)",
        (dt.datetime(2025, 1, 2, 9, tzinfo=NEW_YORK), dt.datetime(2025, 1, 2, 12, tzinfo=NEW_YORK)),
    ).fetchall()
    assert [(r[0].astimezone(NEW_YORK).hour, r[1], r[2]) for r in rows] == [
        (9, "tradier", True),
        (10, "polygon", False),
        (11, "tradier", True),
    ]


def store_history(
    conn: psycopg.Connection[Any], session_date: dt.date, drop_hours: Sequence[int] = ()
) -> None:
    """Claim the h1 chunk holding `session_date` and store the synthetic market's bars through
    store_chunk_bars (which derives h4), leaving out the bars starting at `drop_hours` New York."""
    claimed = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM pgbars.claim_backfill_chunks('test', '{polygon}', 100)")
        .fetchall()
    )
    (chunk,) = [c for c in claimed if c["first_session"] <= session_date <= c["last_session"]]
    bars = [
        b
        for b in synthetic.bars("AAPL", "h1", chunk["first_session"], chunk["last_session"])
        if b.ts.astimezone(NEW_YORK).hour not in drop_hours
    ]
    with conn.transaction():
        stage(
            conn,
            chunk["lease_id"],
            [(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count) for b in bars],
        )
        conn.execute("SELECT pgbars.store_chunk_bars(%s, %s)", (chunk["chunk_id"], chunk["lease_id"]))


def test_history_replaces_provisional_bars_and_cleanup_deletes_only_those(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn, IN_SESSION)
    watch(conn)
    conn.execute("SELECT pgbars.request_backfill('AAPL', '{h4}')")
    (refresh,) = claim(conn)
    store(conn, refresh, m15_until("AAPL", dt.datetime(2025, 1, 2, 12, tzinfo=NEW_YORK)))
    provisional = "SELECT count(*) FROM pgbars.ohlc_bars_v2 WHERE provider = 'tradier' AND is_provisional"
    assert scalar(conn, provisional) == 10  # h1 04:00 .. 11:00, h4 04:00 and 08:00

    # the day after: the roll-forward planned 2025-01-02, but its chunk is not stored yet
    set_clock(conn, "2025-01-03 12:00 America/New_York")
    conn.execute("SELECT pgbars.roll_forward_backfills()")
    assert scalar(conn, "SELECT pgbars.cleanup_provisional_bars()") == 0

    # history arrives without the 04:00 hour Tradier had; its h4 is derived from history alone
    store_history(conn, SESSION, drop_hours=[4])
    h4 = conn.execute(
        "SELECT provider, is_provisional, count(*) FROM pgbars.ohlc_bars_v2 WHERE timeframe = 'h4'"
        " AND ts >= '2025-01-02 04:00 America/New_York' AND ts < '2025-01-03 00:00 America/New_York'"
        " GROUP BY 1, 2 ORDER BY 1"
    ).fetchall()
    assert h4 == [("polygon", False, 4), ("tradier", True, 2)]
    reads = conn.execute(
        "SELECT provider FROM pgbars.get_bars('AAPL', 'h1', '2025-01-02 04:00 America/New_York',"
        " '2025-01-02 06:00 America/New_York')"
    ).fetchall()
    assert reads == [("tradier",), ("polygon",)]  # history where it has a bar, else today's

    # younger than keep_provisional: kept
    conn.execute("UPDATE pgbars.live_settings SET keep_provisional = '3 days'")
    assert scalar(conn, "SELECT pgbars.cleanup_provisional_bars()") == 0

    # a provisional bar of a session whose history chunk came back empty stays: nothing is lost
    orphan = dt.datetime(2024, 6, 3, 10, tzinfo=NEW_YORK)
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'done', bars_written = 0, lease_id = NULL,"
        " completed_at = now() WHERE %s BETWEEN first_session AND last_session",
        (orphan.date(),),
    )
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume,"
        " is_provisional) SELECT id, 'h1', %s, 'tradier', 1, 1, 1, 1, 1, true FROM pgbars.symbols",
        (orphan,),
    )

    set_clock(conn, "2025-01-06 12:00 America/New_York")  # 3 days and 8 hours after the last bar
    assert scalar(conn, "SELECT pgbars.cleanup_provisional_bars()") == 10
    assert conn.execute("SELECT ts FROM pgbars.ohlc_bars_v2 WHERE is_provisional").fetchall() == [(orphan,)]
    assert (
        scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2 WHERE timeframe = 'h4'") == 4
    )  # history kept


def test_provisional_bars_do_not_hide_a_history_gap(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    watch(conn)
    (refresh,) = claim(conn)
    store(conn, refresh, m15_until("AAPL", dt.datetime(2025, 1, 2, 12, tzinfo=NEW_YORK)))
    assert scalar(conn, "SELECT pgbars.has_backfill_data('AAPL')") is False  # today's bars are no backfill

    # after the close, history answers the session with nothing
    set_clock(conn, "2025-01-03 12:00 America/New_York")
    conn.execute("SELECT pgbars.roll_forward_backfills()")
    store_history(conn, SESSION, drop_hours=range(24))
    state = scalar(
        conn,
        "SELECT state FROM pgbars.session_coverage WHERE symbol = 'AAPL' AND session_date = %s",
        (SESSION,),
    )
    assert state == "fetched_empty"  # a gap repair re-fetches, though the live bars are still kept
    assert scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2 WHERE is_provisional") == 8


def test_a_symbol_deleted_while_its_live_bars_are_stored_waits_and_does_not_deadlock(
    session: psycopg.Connection[Any], connect: Any
) -> None:
    symbol = watch(session)
    (refresh,) = claim(session)
    storing = connect()
    set_clock(storing, IN_SESSION)
    deleter = connect()
    outcome: dict[str, object] = {}

    def delete_symbol() -> None:
        try:
            deleter.execute("DELETE FROM pgbars.symbols WHERE id = %s", (symbol,))
            outcome["deleted"] = True
        except psycopg.Error as exc:
            outcome["error"] = exc.sqlstate

    with storing.transaction():
        storing.execute(
            "SELECT * FROM pgbars._lock_live_refresh(%s, %s, %s)",
            (refresh["symbol_id"], refresh["timeframe"], refresh["lease_id"]),
        )
        worker = threading.Thread(target=delete_symbol)
        worker.start()
        time.sleep(0.5)  # the DELETE now waits for the symbol's key share
        assert outcome == {}
        stage(storing, refresh["lease_id"], [(dt.datetime(2025, 1, 2, 10, tzinfo=NEW_YORK), 1, 1, 1, 1, 1)])
        storing.execute(
            "SELECT * FROM pgbars.store_live_bars(%s, %s, %s)",
            (refresh["symbol_id"], refresh["timeframe"], refresh["lease_id"]),
        )
    worker.join(timeout=10)
    assert outcome == {"deleted": True}  # after the store committed: no deadlock
    assert scalar(session, "SELECT count(*) FROM pgbars.ohlc_bars_v2") == 0  # its bars went with it
    assert scalar(session, "SELECT count(*) FROM pgbars.live_refreshes") == 0
