"""Fuzz of tickers, timeframes and windows through the SQL functions and the CLI (Hypothesis).

What every door that takes user input must do with any input:
- SQL: succeed, or raise 22023 (invalid_parameter_value, what pgbars raises for a bad
  input) with a one-line message that names what was wrong; never an internal error,
  never a timeout, never another error class; a call that failed changed nothing
  (symbols, watchlists, jobs, chunks and bars compared before and after). A call
  that succeeded keeps the function's invariant (checked per test below).
- CLI: exit 0, or 1 with one line `pgbars: error: ...`, or 2 with click's usage
  error; never a traceback; never a raw control character in the output; a command
  that failed changed nothing.

Examples are derandomized (tests/faults/conftest.py), so CI tries the same inputs on
every run. Each SQL example runs inside a transaction rolled back at its end, each
call inside a savepoint; each CLI example starts from the same small committed state.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import event, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from tests.sql.helpers import CLOCK, scalar, set_clock
from worker.main import cli

T = TypeVar("T")
U = TypeVar("U")

# -- the rules every answer follows ------------------------------------------------------

# At CLOCK (2025-01-02 12:00 New York) the last completed session is 2024-12-31.
LAST_COMPLETED = dt.date(2024, 12, 31)
CALENDAR_START = dt.date(2000, 1, 3)
TIMEFRAMES = ("m1", "m5", "m15", "m30", "h1", "h4", "d1", "w1")

# Every bad input is 22023 (invalid_parameter_value); 55000 (the calendar is empty, no
# route serves a timeframe) and P0002 (repair of a ticker without a job) cannot happen here.
EXPECTED_SQLSTATES = {"22023"}
# ... with a message that names what was wrong.
EXPECTED_MESSAGES = re.compile(
    r"invalid ticker '|invalid ticker E'|ticker is missing$"
    r"|unknown timeframe |timeframe is missing$|no timeframe given$"
    r"|p_from and p_to are both required$|p_from .+ is after p_to "
    r"|start date .+ is (in the future|after end date|before the trading calendar)"
    r"|end date .+ is in the future|years must be between 1 and 50, not "
    r"|no completed session between |no trading session between "
    r"|unknown symbol id |invalid watchlist name "
)
MAX_MESSAGE = 200
# C0 and C1 control characters and DEL; the CLI shows them as '?'
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# What a call may change, compared before and after a call that failed.
TABLES = (
    "symbols",
    "watchlists",
    "watchlist_items",
    "backfill_jobs",
    "derived_jobs",
    "backfill_chunks",
    "ohlc_bars_v2",
)
SNAPSHOT = " UNION ALL ".join(
    f"SELECT '{t}', count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '')"
    f" FROM pgbars.{t} AS x"
    for t in TABLES
)


def snapshot(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(SNAPSHOT).fetchall()


def assert_clean(exc: psycopg.Error) -> None:
    """A refusal pgbars meant: the expected class, and one short line saying what was wrong."""
    message = exc.diag.message_primary or ""
    assert exc.sqlstate in EXPECTED_SQLSTATES, (exc.sqlstate, message)
    assert EXPECTED_MESSAGES.match(message), message
    assert len(message) <= MAX_MESSAGE, message
    assert not CONTROL.search(message), message  # newlines among them: one line


class Refused:
    """A call that raised a clean error."""

    def __init__(self, exc: psycopg.Error) -> None:
        self.exc = exc
        self.message = exc.diag.message_primary or ""


def call(conn: psycopg.Connection[Any], query: str, params: Any = None) -> list[dict[str, Any]] | Refused:
    """Run one call in a savepoint: its rows, or its clean refusal after checking it changed nothing."""
    function = re.search(r"pgbars\.(\w+)\(", query)
    name = function[1] if function else query
    before = snapshot(conn)
    try:
        with conn.transaction():
            rows = conn.cursor(row_factory=dict_row).execute(query, params).fetchall()
    except psycopg.Error as exc:
        assert_clean(exc)
        assert snapshot(conn) == before, f"a refused call changed the tables: {exc}"
        refused = Refused(exc)
        # how often each refusal is met: pytest --hypothesis-show-statistics
        event(f"{name}: {' '.join(refused.message.split()[:2])}")
        return refused
    event(f"{name}: ok")
    return rows


@contextmanager
def example(conn: psycopg.Connection[Any], timezone: str = "UTC") -> Iterator[None]:
    """One example: a transaction rolled back at its end, in the session time zone given."""
    with conn.transaction(force_rollback=True):
        conn.execute("SELECT set_config('TimeZone', %s, true)", (timezone,))
        yield


# -- strategies ----------------------------------------------------------------------------

SPACES = " \t\r\n"
# NUL cannot reach Postgres (psycopg refuses it before sending) nor a command line.
ANY_CHARACTER = st.characters(codec="utf-8", exclude_characters="\x00")


def mostly(usual: st.SearchStrategy[T], other: st.SearchStrategy[U]) -> st.SearchStrategy[T | U]:
    """`usual` three times in four, else `other`: inputs a call accepts often enough that what
    it does with them gets checked too (Hypothesis weighs the branches of one_of alike)."""
    return st.integers(0, 3).flatmap(lambda i: other if i == 3 else usual)


valid_looking = st.builds(
    lambda before, ticker, after: before + ticker + after,
    st.text(SPACES, max_size=2),
    st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,9}([.-][A-Za-z0-9]{1,4})?", fullmatch=True),
    st.text(SPACES, max_size=2),
)
known = st.sampled_from(["AAPL", "aapl", " msft ", "MSFT\n", "NVDA", "zzzz"])
share_classes = st.sampled_from(
    [
        *("BRK.B", "BRK-B", "brk.b", "Bf-b", "BRK/B", "BRK / B", "BRK B", "BRK..B", "BRK.-B", "BRK.", "BRK-"),
        *(".B", "-B", "BRK.BBBBB", "BRK.B.C", "A.1234", "A-12345", "ABCDEFGHIJ.B", "ABCDEFGHIJK"),
    ]
)
lookalikes = st.sampled_from(
    [
        # dotless i, long s, full-width letters: look-alikes of ASCII
        *("\u0131bm", "\u017fpy", "\uff21\uff21\uff30\uff2c", "AAPL\u200b", "\u00a0AAPL", "AAPL\u3000"),
        *(
            "\u00c5",
            "\u00df",
            "\u01c5",
            "\ufb00",
            "\ufeffAAPL",
            "\u212a",
            "\u216b",
            "aapl\u0307",
            "AAPL\u0085",
        ),
        "\u2028AAPL",
    ]
)
unicode_text = st.text(ANY_CHARACTER, max_size=16)
with_controls = st.text(
    st.characters(categories=["Cc"], exclude_characters="\x00") | st.sampled_from("AB1.-[m"),
    min_size=1,
    max_size=12,
)
very_long = st.builds(
    lambda c, n: c * n,
    st.sampled_from(["A", "a", "1", ".", "'", " ", "é", "\x1b", "AB"]),
    st.integers(11, 10_000),
)
sql_meta = st.sampled_from(
    [
        *("'; DROP TABLE pgbars.symbols; --", "AAPL'--", "A'B", "\\", "%", "_", "$$", "E'\\\\x00'", '"AAPL"'),
        *("AAPL); DELETE FROM pgbars.symbols; --", "*", "NULL", "AAPL' OR '1'='1", "{AAPL}", "A;B"),
    ]
) | st.text("';\"\\-/*%_$()=,{}", min_size=1, max_size=8)
blank = st.sampled_from(["", " ", "\t", "\r\n", "  \n\t ", "\u00a0", "\u3000", "\x0b", "\x0c"])

TICKER_TEXT = st.one_of(
    valid_looking, known, share_classes, lookalikes, unicode_text, with_controls, very_long, sql_meta, blank
)
TICKERS = TICKER_TEXT | st.none()

valid_timeframe = st.builds(
    lambda before, name, upper, after: before + (name.upper() if upper else name) + after,
    st.sampled_from(["", " "]),
    st.sampled_from(TIMEFRAMES),
    st.booleans(),
    st.sampled_from(["", " ", "\t"]),
)
garbage_timeframe = st.sampled_from(
    [
        "",
        " ",
        "h7",
        "1h",
        "H 1",
        "m",
        "mo1",
        "d",
        "1d",
        "w2",
        "h1;",
        "h1'",
        "m1,m5",
        "{h1}",
        "NULL",
        "\uff481",  # full-width h
        "h\uff11",  # full-width 1
    ]
) | st.text(ANY_CHARACTER, max_size=8)
TIMEFRAME_TEXT = valid_timeframe | garbage_timeframe | very_long
TIMEFRAME = TIMEFRAME_TEXT | st.none()
TIMEFRAME_LISTS = st.none() | st.lists(TIMEFRAME, max_size=4)

# Dates: anywhere, around the calendar and the clock, the days that have no session,
# and the infinities (sent as text; Postgres reads them as dates).
special_dates = st.sampled_from(
    [
        *(
            CALENDAR_START,
            dt.date(2000, 1, 1),
            dt.date(2024, 12, 25),
            dt.date(2024, 12, 28),
            dt.date(2024, 12, 29),
        ),
        *(LAST_COMPLETED, dt.date(2025, 1, 1), dt.date(2025, 1, 2), dt.date(2025, 1, 3)),
    ]
)
DATE = st.one_of(
    st.none(),
    st.dates(),
    st.dates(dt.date(1999, 6, 1), dt.date(2025, 3, 1)),
    special_dates,
    st.sampled_from(["infinity", "-infinity"]),
)


def _weekend(day: dt.date, both_days: bool) -> tuple[dt.date, dt.date]:
    saturday = day + dt.timedelta(days=(5 - day.weekday()) % 7)
    return saturday, saturday + dt.timedelta(days=int(both_days))


DATE_WINDOWS = st.one_of(
    st.tuples(DATE, DATE),
    st.builds(
        lambda start, days: (start, start + dt.timedelta(days=days)),
        st.dates(dt.date(1999, 12, 1), dt.date(2025, 1, 10)) | special_dates,
        st.integers(-5, 40),
    ),
    # no session: a weekend, a Saturday, holidays
    st.builds(_weekend, st.dates(dt.date(2000, 1, 1), dt.date(2024, 12, 24)), st.booleans()),
    st.sampled_from(
        [(dt.date(2024, 12, 25), dt.date(2024, 12, 25)), (dt.date(2000, 1, 1), dt.date(2000, 1, 2))]
    ),
)
PLAUSIBLE_DATES = st.dates(dt.date(2020, 1, 1), LAST_COMPLETED)
# inside the calendar, ending by the clock's day more often than not
PLAUSIBLE_WINDOWS = st.builds(
    lambda start, days, open_end: (start, None if open_end else start + dt.timedelta(days=days)),
    st.dates(CALENDAR_START, LAST_COMPLETED),
    st.integers(0, 200),
    st.booleans(),
) | st.tuples(st.none(), st.dates(dt.date(2003, 1, 1), dt.date(2025, 1, 2)) | st.none())
YEARS = st.none() | st.integers(-3, 53) | st.sampled_from([-(2**31), 2**31 - 1])

ZONES = st.sampled_from(
    [
        dt.UTC,
        ZoneInfo("America/New_York"),
        ZoneInfo("Asia/Kathmandu"),
        dt.timezone(dt.timedelta(hours=14)),
        dt.timezone(-dt.timedelta(hours=12)),
    ]
)
# Instants: anywhere (naive ones are read in the session's time zone), around the
# stored bars, and the infinities.
BARS_START = dt.datetime(2024, 12, 2, 14, 0, tzinfo=dt.UTC)
near_bars = st.datetimes(dt.datetime(2024, 12, 1), dt.datetime(2024, 12, 6), timezones=ZONES)
INSTANT = st.one_of(
    st.none(),
    st.datetimes(timezones=ZONES),
    st.datetimes(),
    near_bars,
    st.sampled_from(["infinity", "-infinity"]),
)
INSTANT_WINDOWS = st.tuples(INSTANT, INSTANT) | st.builds(
    lambda start, delta: (start, start + delta),
    near_bars,
    st.timedeltas(dt.timedelta(hours=-3), dt.timedelta(days=3)) | st.just(dt.timedelta(0)),
)
BAR_WINDOWS = st.builds(
    lambda start, delta: (start, start + delta),
    near_bars,
    st.timedeltas(dt.timedelta(0), dt.timedelta(days=3)),
)
SESSION_ZONES = st.sampled_from(
    ["UTC", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kathmandu"]
)


# -- the database every SQL example starts from ---------------------------------------------


def base_state(conn: psycopg.Connection[Any]) -> None:
    """AAPL on the default watchlist (2 years of h1 seeded), MSFT's December 2024 of d1 and
    w1, and AAPL h1 bars: 40 from Polygon, 10 of them also from Yahoo, a forecast and two
    provisional bars from Tradier; MSFT d1 bars. Committed: examples roll back to it."""
    set_clock(conn)
    conn.execute("SET statement_timeout = '20s'")
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    conn.execute("SELECT pgbars.request_backfill('MSFT', '{d1,w1}', '2024-12-02', '2024-12-31', NULL)")
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, is_forecast, is_provisional,"
        " open, high, low, close, volume)"
        " SELECT s.id, v.timeframe, %(start)s + v.step * i, v.provider, v.forecast, v.provisional,"
        " 10, 11, 9, 10, 5"
        " FROM pgbars.symbols AS s, generate_series(0, 39) AS i,"
        " (VALUES ('AAPL', 'h1', interval '1 hour', 'polygon', false, false),"
        "  ('AAPL', 'h1', interval '1 hour', 'yahoo', false, false),"
        "  ('AAPL', 'h1', interval '1 hour', 'polygon', true, false),"
        "  ('AAPL', 'h1', interval '1 hour', 'tradier', false, true),"
        "  ('MSFT', 'd1', interval '1 day', 'yahoo', false, false))"
        "  AS v (ticker, timeframe, step, provider, forecast, provisional)"
        " WHERE s.ticker = v.ticker AND (v.provider = 'polygon' AND NOT v.forecast OR v.ticker = 'MSFT'"
        "  OR v.provider = 'yahoo' AND i BETWEEN 5 AND 14 OR v.forecast AND i = 3"
        "  OR v.provisional AND i >= 38)",
        {"start": BARS_START},
    )


@pytest.fixture
def db(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    base_state(conn)
    return conn


@pytest.fixture
def empty_db(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    set_clock(conn)
    conn.execute("SET statement_timeout = '20s'")
    return conn


def normalized(conn: psycopg.Connection[Any], ticker: str | None) -> str | None:
    """What pgbars makes of a ticker, None when it refuses it."""
    result = call(conn, "SELECT pgbars.normalize_ticker(%s)::text AS ticker", (ticker,))
    return None if isinstance(result, Refused) else result[0]["ticker"]


def is_ticker(conn: psycopg.Connection[Any], name: str) -> bool:
    """The rule for a valid ticker is the pgbars.ticker domain's CHECK: ask it."""
    return bool(scalar(conn, "SELECT pg_input_is_valid(%s, 'pgbars.ticker')", (name,)))


def alphanumerics(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text)


def global_invariants(conn: psycopg.Connection[Any]) -> None:
    """What holds after any sequence of calls: chunks of a job never overlap, each counts the
    sessions it spans, and every watched symbol has its h1 job."""
    overlapping = scalar(
        conn,
        "SELECT count(*) FROM pgbars.backfill_chunks AS a JOIN pgbars.backfill_chunks AS b"
        " ON a.job_id = b.job_id AND a.id < b.id"
        " AND a.first_session <= b.last_session AND b.first_session <= a.last_session",
    )
    assert overlapping == 0
    miscounted = scalar(
        conn,
        "SELECT count(*) FROM pgbars.backfill_chunks AS c WHERE c.session_count <> ("
        " SELECT count(*) FROM pgbars.market_sessions AS s"
        " WHERE s.session_date BETWEEN c.first_session AND c.last_session)",
    )
    assert miscounted == 0
    unseeded = scalar(
        conn,
        "SELECT count(*) FROM pgbars.watchlist_items AS i WHERE NOT EXISTS ("
        " SELECT FROM pgbars.backfill_jobs AS j WHERE j.symbol_id = i.symbol_id AND j.timeframe = 'h1')",
    )
    assert unseeded == 0


# -- SQL: tickers ----------------------------------------------------------------------------


@settings(max_examples=150)
@given(ticker=TICKERS)
def test_normalize_ticker_is_the_rule_and_idempotent(db: psycopg.Connection[Any], ticker: str | None) -> None:
    with example(db):
        result = normalized(db, ticker)
        if result is None:
            return
        assert is_ticker(db, result), result
        # the letters and digits typed, in their order: only case, spaces and separators change
        assert ticker is not None and alphanumerics(result) == alphanumerics(ticker.upper())
        assert normalized(db, result) == result
        assert normalized(db, result.lower()) == result
        assert normalized(db, f" {result.lower()}\t\n") == result


@settings(max_examples=60)
@given(ticker=TICKERS)
def test_every_door_takes_the_tickers_normalize_ticker_takes(
    empty_db: psycopg.Connection[Any], ticker: str | None
) -> None:
    """Each function that takes a ticker refuses exactly what normalize_ticker refuses,
    on an empty database as on a filled one: the input is checked, not merely not found."""
    conn = empty_db
    with example(conn):
        valid = normalized(conn, ticker) is not None
        readers = [
            ("SELECT * FROM pgbars.backfill_status(%s)", (ticker,)),
            ("SELECT pgbars.has_backfill_data(%s, 'h1')", (ticker,)),
            ("SELECT * FROM pgbars.backfill_eta(%s)", ([ticker],)),
            ("SELECT * FROM pgbars.get_bars(%s, 'h1', '-infinity', 'infinity')", (ticker,)),
            ("SELECT pgbars.remove_from_watchlist(%s, 'default')", (ticker,)),
        ]
        writers = [
            ("SELECT pgbars.add_to_watchlist(%s, 'default')", (ticker,)),
            ("SELECT pgbars.request_backfill(%s, '{d1}', '2024-12-02', '2024-12-31', NULL)", (ticker,)),
        ]
        for query, params in [*readers, *writers, *readers]:  # readers on no rows, then on some
            result = call(conn, query, params)
            assert isinstance(result, Refused) != valid, (query, ticker, result)
            if isinstance(result, Refused):
                assert result.message.startswith(("invalid ticker", "ticker is missing")), result.message


# -- SQL: watchlists ------------------------------------------------------------------------

WATCHLIST_TEXT = st.one_of(
    st.sampled_from(["default", "tech", " tech ", "Tech", "x" * 64, "x" * 65, "a b"]),
    # white space at either end, Unicode's too
    st.builds(
        lambda before, name, after: before + name + after,
        st.sampled_from(["", " ", "\u00a0", "\u2003", "\u3000", "\u2028"]),
        st.sampled_from(["tech", "x" * 63]),
        st.sampled_from(["", " ", "\u00a0", "\u2003", "\u3000", "\u205f"]),
    ),
    st.text(ANY_CHARACTER, max_size=8),
    blank,
    with_controls,
)
WATCHLISTS = mostly(st.sampled_from(["default", "tech", " tech "]), WATCHLIST_TEXT | st.none())


@settings(max_examples=100)
@given(
    steps=st.lists(
        st.tuples(st.booleans(), mostly(known | valid_looking, TICKERS), WATCHLISTS), min_size=1, max_size=5
    )
)
def test_watchlist_add_and_remove(
    db: psycopg.Connection[Any], steps: list[tuple[bool, str | None, str | None]]
) -> None:
    with example(db):
        for adding, ticker, watchlist in steps:
            ticker_name = normalized(db, ticker)
            was_there = scalar(
                db,
                "SELECT count(*) FROM pgbars.watchlist_items AS i"
                " JOIN pgbars.watchlists AS w ON w.id = i.watchlist_id"
                " JOIN pgbars.symbols AS s ON s.id = i.symbol_id"
                " WHERE w.name = btrim(%s) AND s.ticker = %s",
                (watchlist, ticker_name),
            )
            if adding:
                result = call(db, "SELECT pgbars.add_to_watchlist(%s, %s) AS r", (ticker, watchlist))
                if isinstance(result, Refused):
                    assert ticker_name is None or result.message.startswith("invalid watchlist name")
                    continue
                added = result[0]["r"]
                assert added["ticker"] == ticker_name
                assert watchlist is not None and added["watchlist"] == watchlist.strip(" ")
                assert added["added"] == (was_there == 0)
                again = call(db, "SELECT pgbars.add_to_watchlist(%s, %s) AS r", (ticker, watchlist))
                assert not isinstance(again, Refused) and again[0]["r"]["added"] is False
                now_there = 1
            else:
                result = call(db, "SELECT pgbars.remove_from_watchlist(%s, %s) AS r", (ticker, watchlist))
                if isinstance(result, Refused):
                    assert ticker_name is None
                    continue
                assert result[0]["r"] == (was_there == 1)
                now_there = 0
            assert (
                scalar(
                    db,
                    "SELECT count(*) FROM pgbars.watchlist_items AS i"
                    " JOIN pgbars.watchlists AS w ON w.id = i.watchlist_id"
                    " JOIN pgbars.symbols AS s ON s.id = i.symbol_id"
                    " WHERE w.name = btrim(%s) AND s.ticker = %s",
                    (watchlist, ticker_name),
                )
                == now_there
            )
        # one symbol per normalised ticker, every name a valid one
        names = [r[0] for r in db.execute("SELECT ticker::text FROM pgbars.symbols").fetchall()]
        assert len(names) == len(set(names)) and all(is_ticker(db, n) for n in names)
        assert all(normalized(db, n) == n for n in names)
        global_invariants(db)


# -- SQL: backfill requests --------------------------------------------------------------------


def check_seeded(
    conn: psycopg.Connection[Any], seeded: dict[str, Any], timeframes: Sequence[str | None]
) -> None:
    """A successful request: its window inside the calendar, every session of it planned for
    every job, and the timeframes asked for planned (or derived)."""
    start = dt.date.fromisoformat(seeded["window_start"])
    end = dt.date.fromisoformat(seeded["window_end"])
    assert CALENDAR_START <= start <= end <= LAST_COMPLETED, seeded
    assert scalar(
        conn, "SELECT count(*) FROM pgbars.market_sessions WHERE session_date BETWEEN %s AND %s", (start, end)
    ), f"a window without a session: {start} .. {end}"
    planned = {job["timeframe"] for job in seeded["jobs"]}
    derived = {d["timeframe"] for d in seeded["derived"]}
    asked = {t.strip(" ").lower() for t in timeframes if t is not None}
    assert asked <= planned | derived and planned <= set(TIMEFRAMES), (asked, seeded)
    for job in seeded["jobs"]:
        unplanned = scalar(
            conn,
            "SELECT count(*) FROM pgbars.market_sessions AS s WHERE s.session_date BETWEEN %s AND %s"
            " AND NOT EXISTS (SELECT FROM pgbars.backfill_chunks AS c WHERE c.job_id = %s"
            " AND s.session_date BETWEEN c.first_session AND c.last_session)",
            (start, end, job["job_id"]),
        )
        assert unplanned == 0, (job, start, end)
    global_invariants(conn)


def check_request_window(
    seeded: dict[str, Any], start: dt.date | str | None, end: dt.date | str | None, years: int | None
) -> None:
    if isinstance(start, dt.date):
        assert seeded["window_start"] == start.isoformat()
    if isinstance(end, dt.date):
        assert seeded["window_end"] == min(end, LAST_COMPLETED).isoformat()
    if start is None and end is None and years is not None:
        window_end = dt.date.fromisoformat(seeded["window_end"])
        assert (
            seeded["window_start"]
            == (window_end.replace(year=window_end.year - years) + dt.timedelta(1)).isoformat()
        )


@settings(max_examples=120)
@given(
    ticker=mostly(known, TICKERS),
    timeframes=mostly(st.lists(valid_timeframe, min_size=1, max_size=3), TIMEFRAME_LISTS),
    window=mostly(PLAUSIBLE_WINDOWS, DATE_WINDOWS),
    years=mostly(st.none() | st.integers(1, 24), YEARS),
    zone=SESSION_ZONES,
)
def test_request_backfill(
    db: psycopg.Connection[Any],
    ticker: str | None,
    timeframes: list[str | None] | None,
    window: tuple[dt.date | str | None, dt.date | str | None],
    years: int | None,
    zone: str,
) -> None:
    start, end = window
    query = "SELECT pgbars.request_backfill(%s, %s::text[], %s, %s, %s::integer) AS r"
    with example(db, zone):
        result = call(db, query, (ticker, timeframes, start, end, years))
        if isinstance(result, Refused):
            return
        assert timeframes is not None
        seeded = result[0]["r"]
        assert seeded["ticker"] == normalized(db, ticker)
        check_seeded(db, seeded, timeframes)
        check_request_window(seeded, start, end, years)
        again = call(db, query, (ticker, timeframes, start, end, years))
        assert not isinstance(again, Refused)
        assert [job["chunks_added"] for job in again[0]["r"]["jobs"]] == [0] * len(seeded["jobs"])


@settings(max_examples=60)
@given(
    symbol=mostly(st.sampled_from(["AAPL", "MSFT"]), st.uuids()),
    timeframes=mostly(st.lists(valid_timeframe, min_size=1, max_size=3), TIMEFRAME_LISTS),
    window=mostly(PLAUSIBLE_WINDOWS, DATE_WINDOWS),
    years=mostly(st.none() | st.integers(1, 24), YEARS),
)
def test_seed_backfill_for_symbol(
    db: psycopg.Connection[Any],
    symbol: str | uuid.UUID,
    timeframes: list[str | None] | None,
    window: tuple[dt.date | str | None, dt.date | str | None],
    years: int | None,
) -> None:
    start, end = window
    with example(db):
        symbol_id = (
            symbol
            if isinstance(symbol, uuid.UUID)
            else scalar(db, "SELECT id FROM pgbars.symbols WHERE ticker = %s", (symbol,))
        )
        result = call(
            db,
            "SELECT pgbars.seed_backfill_for_symbol(%s, %s::text[], %s, %s, %s::integer) AS r",
            (symbol_id, timeframes, start, end, years),
        )
        if isinstance(result, Refused):
            assert isinstance(symbol, str) or result.message.startswith("unknown symbol id")
            return
        assert timeframes is not None and isinstance(symbol, str)
        seeded = result[0]["r"]
        assert seeded["ticker"] == symbol and seeded["symbol_id"] == str(symbol_id)
        check_seeded(db, seeded, timeframes)
        check_request_window(seeded, start, end, years)


# -- SQL: reads ------------------------------------------------------------------------------


@settings(max_examples=120)
@given(
    ticker=mostly(known, TICKERS),
    timeframe=mostly(st.sampled_from(["h1", " H1", "d1"]), TIMEFRAME),
    window=mostly(BAR_WINDOWS, INSTANT_WINDOWS),
    zone=SESSION_ZONES,
)
def test_get_bars(
    db: psycopg.Connection[Any],
    ticker: str | None,
    timeframe: str | None,
    window: tuple[dt.datetime | str | None, dt.datetime | str | None],
    zone: str,
) -> None:
    start, end = window
    params = {"ticker": ticker, "tf": timeframe, "start": start, "end": end}
    with example(db, zone):
        result = call(
            db,
            "SELECT g.ts, g.provider, g.ts >= %(start)s AND g.ts < %(end)s AS inside"
            " FROM pgbars.get_bars(%(ticker)s, %(tf)s, %(start)s, %(end)s) AS g",
            params,
        )
        if isinstance(result, Refused):
            return
        stamps = [r["ts"] for r in result]
        assert stamps == sorted(set(stamps)), "not one bar per ts in ts order"
        assert all(r["inside"] for r in result)
        expected = scalar(
            db,
            "SELECT count(DISTINCT b.ts) FROM pgbars.ohlc_bars_v2 AS b"
            " JOIN pgbars.symbols AS s ON s.id = b.symbol_id"
            " WHERE s.ticker = pgbars.normalize_ticker(%(ticker)s) AND b.timeframe = lower(btrim(%(tf)s))"
            " AND b.ts >= %(start)s AND b.ts < %(end)s AND b.is_forecast IS NOT TRUE",
            params,
        )
        assert len(stamps) == expected


@settings(max_examples=100)
@given(ticker=mostly(known, TICKERS), timeframe=mostly(st.sampled_from(["h1", "d1"]), TIMEFRAME))
def test_backfill_status_and_has_backfill_data(
    db: psycopg.Connection[Any], ticker: str | None, timeframe: str | None
) -> None:
    with example(db):
        ticker_name = normalized(db, ticker)
        status = call(db, "SELECT * FROM pgbars.backfill_status(%s)", (ticker,))
        if isinstance(status, Refused):
            assert ticker_name is None
        else:
            order = [TIMEFRAMES.index(r["timeframe"]) for r in status]
            assert order == sorted(set(order))
            for row in status:
                assert 0 <= row["progress"] <= 100
                assert row["done"] + row["pending"] + row["running"] + row["failed"] == row["total"]
            jobs = scalar(  # a derived timeframe has a row of its own
                db,
                "SELECT count(DISTINCT j.id) + count(d.timeframe) FROM pgbars.backfill_jobs AS j"
                " JOIN pgbars.symbols AS s ON s.id = j.symbol_id"
                " LEFT JOIN pgbars.derived_jobs AS d ON d.source_job_id = j.id"
                " WHERE s.ticker = %s",
                (ticker_name,),
            )
            assert len(status) == jobs

        has_data = call(db, "SELECT pgbars.has_backfill_data(%s, %s) AS r", (ticker, timeframe))
        if isinstance(has_data, Refused):
            return
        assert ticker_name is not None and timeframe is not None
        expected = scalar(
            db,
            "SELECT EXISTS (SELECT FROM pgbars.ohlc_bars_v2 AS b"
            " JOIN pgbars.symbols AS s ON s.id = b.symbol_id"
            " WHERE s.ticker = %s AND b.timeframe = lower(btrim(%s)) AND NOT b.is_provisional)",
            (ticker_name, timeframe),
        )
        assert has_data[0]["r"] is expected


@settings(max_examples=80)
@given(tickers=st.none() | st.lists(mostly(known, TICKERS), max_size=3))
def test_backfill_eta(db: psycopg.Connection[Any], tickers: list[str | None] | None) -> None:
    with example(db):
        result = call(db, "SELECT * FROM pgbars.backfill_eta(%s::text[])", (tickers,))
        if isinstance(result, Refused):
            assert tickers is not None and any(normalized(db, t) is None for t in tickers)
            return
        names = None if tickers is None else {normalized(db, t) for t in tickers}
        assert names is None or None not in names
        job_ids = [r["job_id"] for r in result]
        assert len(job_ids) == len(set(job_ids))
        for row in result:
            assert names is None or row["symbol"] in names
            assert row["remaining_chunks"] >= 0 and row["remaining_requests"] >= row["remaining_chunks"]
        expected = scalar(
            db,
            "SELECT count(*) FROM pgbars.backfill_jobs AS j JOIN pgbars.symbols AS s ON s.id = j.symbol_id"
            " WHERE %(names)s::text[] IS NULL OR s.ticker::text = ANY(%(names)s::text[])",
            {"names": None if names is None else sorted(n for n in names if n is not None)},
        )
        assert len(result) == expected


# -- SQL: a known gap in a file owned elsewhere ------------------------------------------------


def test_an_invalid_ticker_is_named_without_its_control_characters(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        conn.execute("SELECT pgbars.normalize_ticker(%s)", ("AA\x1b[2JPL",))
    message = refused.value.diag.message_primary or ""
    assert message.startswith("invalid ticker") and not CONTROL.search(message), message


@pytest.mark.parametrize("look_alike", ["\u0131bm", "\u017fpy", "AAPL\u00a0", "\uff21\uff21PL"])
def test_a_ticker_outside_ascii_is_refused_not_upper_cased_into_another(
    conn: psycopg.Connection[Any], look_alike: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid ticker"):
        conn.execute("SELECT pgbars.normalize_ticker(%s)", (look_alike,))


# -- CLI ---------------------------------------------------------------------------------------

CLI_TEXT = mostly(known.map(str.strip), TICKER_TEXT)
DATE_TEXT = st.one_of(
    st.dates().map(dt.date.isoformat),
    st.dates(dt.date(1999, 6, 1), dt.date(2025, 3, 1)).map(dt.date.isoformat),
    special_dates.map(dt.date.isoformat),
    st.sampled_from(
        ["2024-02-30", "2024-13-01", "yesterday", "", " 2024-12-02 ", "20241202", "2024-12-02T10:00"]
    ),
    st.text(ANY_CHARACTER, max_size=10),
)
YEARS_TEXT = (
    st.integers(-3, 53).map(str) | st.sampled_from(["", "two", "2.5", "99999999999", "1e3"]) | unicode_text
)


@st.composite
def cli_commands(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """A command line, and the tickers on it."""
    command = draw(
        st.sampled_from(["watch add", "watch remove", "watch list", "request", "status", "repair"])
    )
    args = command.split()
    if command in ("watch add", "watch remove", "request"):
        tickers = draw(st.lists(CLI_TEXT, min_size=1, max_size=3))
    elif command in ("status", "repair"):
        tickers = draw(st.lists(CLI_TEXT, max_size=2))  # two: a usage error quoting the second
    else:
        tickers = []
    args += tickers
    if command.startswith("watch") and draw(st.booleans()):
        args += ["--watchlist", draw(WATCHLIST_TEXT)]
    if command == "request":
        for timeframe in draw(st.lists(mostly(valid_timeframe, TIMEFRAME_TEXT), max_size=3)):
            args += ["--timeframe", timeframe]
        window = draw(
            st.sampled_from(["", "--years", "--start", "--start --end", "--end", "--years --end", "all"])
        )
        for option, usual, other in (
            ("--years", st.integers(1, 24).map(str), YEARS_TEXT),
            ("--start", PLAUSIBLE_DATES.map(dt.date.isoformat), DATE_TEXT),
            ("--end", PLAUSIBLE_DATES.map(dt.date.isoformat), DATE_TEXT),
        ):
            if window == "all" or option in window.split():
                args += [option, draw(mostly(usual, other))]
    if command == "status" and draw(st.booleans()):
        args.append("--json")
    return args, tickers


@pytest.fixture
def cli_db(conn: psycopg.Connection[Any], dsn: str) -> tuple[psycopg.Connection[Any], dict[str, str]]:
    set_clock(conn)
    return conn, {"DATABASE_URL": dsn, "PGBARS_NOW": CLOCK}


@settings(max_examples=120)
@given(command=cli_commands())
def test_cli_answers_in_one_line_and_never_with_a_traceback(
    cli_db: tuple[psycopg.Connection[Any], dict[str, str]], command: tuple[list[str], list[str]]
) -> None:
    conn, env = cli_db
    args, tickers = command
    conn.execute("DELETE FROM pgbars.symbols")
    conn.execute("DELETE FROM pgbars.watchlists")
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    before = snapshot(conn)

    result = CliRunner().invoke(cli, args, env=env)

    output = result.output
    # lines as a terminal breaks them: at "\n" only (str.splitlines also breaks at U+2028 and
    # other characters a terminal shows as they are)
    lines = output.removesuffix("\n").split("\n")
    event(f"{' '.join(args[:2]) if args[0] == 'watch' else args[0]}: exit {result.exit_code}")
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, output)
    assert result.exit_code in (0, 1, 2), (args, output)
    assert "Traceback" not in output, (args, output)
    assert not CONTROL.search(output.replace("\n", "")), (args, output)
    if result.exit_code == 1:
        assert output.startswith("pgbars: error: ") and output.count("\n") == 1, (args, output)
    elif result.exit_code == 2:
        assert lines[-1].startswith("Error: "), (args, output)
    elif any(t.startswith("-") for t in tickers):
        pass  # an option, `--` or `-` among them: click decides what the tickers are
    elif args[:2] == ["watch", "add"]:
        assert len(lines) == len(tickers), (args, output)
    elif args[:2] == ["watch", "remove"]:
        assert 1 <= len(lines) <= len(tickers), (args, output)
    if result.exit_code != 0:
        assert snapshot(conn) == before, f"a failed command changed the tables: {args} {output}"
