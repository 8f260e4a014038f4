"""The monitoring views and docs/monitoring.md: every query in the doc runs, the views count right.

One populated database (`monitored`): AAPL h1 and d1 done with a few bars, MSFT h1 with one
chunk failed for good and one whose lease expired, MSFT w1 released once and then done, and
provider calls in the ledger with every outcome.
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

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
VIEWS = (
    "backfill_progress",
    "provider_usage",
    "expired_leases",
    "failed_chunks",
    "bar_coverage",
    "live_plan",
    "live_status",
)
NEW_YORK = ZoneInfo("America/New_York")


def doc_blocks() -> list[tuple[str, str]]:
    """(section heading, SQL) of every ```sql block in docs/monitoring.md, in order."""
    blocks: list[tuple[str, str]] = []
    heading = "intro"
    lines = iter(DOC.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if line.startswith("## "):
            heading = line.removeprefix("## ").split(":")[0]
        elif line.strip() == "```sql":
            body: list[str] = []
            for inner in lines:
                if inner.strip() == "```":
                    break
                body.append(inner)
            blocks.append((heading, "\n".join(body)))
    return blocks


BLOCKS = doc_blocks()


def ny(day: str, hour: int = 0) -> dt.datetime:
    """`hour`:00 New York on `day`."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=NEW_YORK)


def rows(conn: psycopg.Connection[Any], query: str, params: Any = None) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def claim(conn: psycopg.Connection[Any], provider: str, ticker: str, limit: int = 1) -> list[dict[str, Any]]:
    """Claims of one ticker's chunks of one provider, newest first."""
    return rows(
        conn,
        "SELECT chunk_id, lease_id, symbol_id, timeframe, first_session, last_session"
        " FROM pgbars.claim_backfill_chunks('worker-a', %s, %s, '5 minutes', %s)",
        ([provider], limit, [ticker]),
    )


def complete(conn: psycopg.Connection[Any], claimed: dict[str, Any], bars: int) -> None:
    conn.execute(
        "SELECT pgbars.complete_backfill_chunk(%s, %s, %s)", (claimed["chunk_id"], claimed["lease_id"], bars)
    )


def add_bars(
    conn: psycopg.Connection[Any],
    claimed: dict[str, Any],
    starts: list[dt.datetime],
    provider: str,
    *,
    forecast: bool = False,
) -> None:
    conn.cursor().executemany(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, is_forecast,"
        " open, high, low, close, volume) VALUES (%s, %s, %s, %s, %s, 10, 11, 9, 10, 100)",
        [(claimed["symbol_id"], claimed["timeframe"], ts, provider, forecast) for ts in starts],
    )


def call(
    conn: psycopg.Connection[Any],
    provider: str,
    http_status: int | None,
    duration_ms: int,
    error: str | None = None,
    *,
    complete: bool = True,
) -> int:
    """Reserves a call to `provider` and records its outcome (unless `complete` is false)."""
    call_id = scalar(conn, "SELECT call_id FROM pgbars.reserve_provider_call(%s, 'worker-a')", (provider,))
    assert isinstance(call_id, int)
    if complete:
        conn.execute(
            "SELECT pgbars.complete_provider_call(%s, %s, NULL, %s, %s)",
            (call_id, http_status, duration_ms, error),
        )
    return call_id


@pytest.fixture
def monitored(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The populated database; returns the ids of the failed and the expired chunk."""
    set_clock(conn)
    december = {"start": dt.date(2024, 12, 2), "end": dt.date(2024, 12, 31)}  # 21 sessions, 5 weeks
    seed(conn, "AAPL", ["h1", "d1"], **december)
    seed(conn, "MSFT", ["h1"], start=dt.date(2024, 10, 1), end=dt.date(2024, 12, 31))  # 52 + 12 sessions
    # MSFT w1 fetched from Yahoo (its derivation from d1, the default, switched off)
    conn.execute("UPDATE pgbars.derived_routes SET enabled = false WHERE timeframe = 'w1'")
    seed(conn, "MSFT", ["w1"], **december)

    # AAPL h1: bars on three sessions; 19:00 New York on Dec 4 is Dec 5 in UTC but Dec 4's
    # session; a forecast on Dec 5 is no data.
    (aapl_h1,) = claim(conn, "polygon", "AAPL")
    add_bars(
        conn,
        aapl_h1,
        [ny("2024-12-02", 9), ny("2024-12-02", 10), ny("2024-12-03", 4), ny("2024-12-04", 19)],
        "polygon",
    )
    add_bars(conn, aapl_h1, [ny("2024-12-05", 10)], "polygon", forecast=True)
    complete(conn, aapl_h1, 4)

    # AAPL d1: two sessions of the plan and one bar before it
    (aapl_d1,) = claim(conn, "yahoo", "AAPL")
    add_bars(conn, aapl_d1, [ny("2024-11-29"), ny("2024-12-30"), ny("2024-12-31")], "yahoo")
    complete(conn, aapl_d1, 3)

    # MSFT w1: released once (a 429), then done with bars for three of the five weeks
    (msft_w1,) = claim(conn, "yahoo", "MSFT")
    conn.execute(
        "SELECT pgbars.release_backfill_chunk(%s, %s, NULL, 'HTTP 429')",
        (msft_w1["chunk_id"], msft_w1["lease_id"]),
    )
    (msft_w1,) = claim(conn, "yahoo", "MSFT")
    add_bars(conn, msft_w1, [ny("2024-12-02"), ny("2024-12-09"), ny("2024-12-23")], "yahoo")
    complete(conn, msft_w1, 3)

    # MSFT h1: the December chunk fails for good, October's worker vanishes after one bar
    newest, oldest = claim(conn, "polygon", "MSFT", limit=2)
    assert newest["last_session"] == dt.date(2024, 12, 31)
    conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 400: bad request', false)",
        (newest["chunk_id"], newest["lease_id"]),
    )
    add_bars(conn, oldest, [ny("2024-10-01", 10)], "polygon")
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET claimed_at = now() - interval '10 minutes',"
        " lease_expires_at = now() - interval '5 minutes' WHERE id = %s",
        (oldest["chunk_id"],),
    )

    # The ledger. Polygon: an ok call two hours ago, one three days ago, a 200, a 429, a
    # timeout (no answer) and a cancelled reservation; then paused. Yahoo: a 200 whose body
    # was refused, a 200, a 500 and one still open. Tradier: nothing.
    for days_ago, hours_ago in ((0, 2), (3, 0)):
        old = call(conn, "polygon", 200, 200)
        conn.execute(
            "UPDATE pgbars.provider_calls SET starts_at = starts_at - make_interval(days => %s, hours => %s)"
            " WHERE id = %s",
            (days_ago, hours_ago, old),
        )
    call(conn, "polygon", 200, 100)
    call(conn, "polygon", 429, 50, "HTTP 429: too many requests")
    call(conn, "polygon", None, 30000, "read timeout")
    cancelled = call(conn, "polygon", None, 0, complete=False)
    assert scalar(conn, "SELECT pgbars.cancel_provider_call(%s)", (cancelled,)) is True
    conn.execute("SELECT pgbars.pause_provider('polygon', now() + interval '1 minute')")
    call(conn, "yahoo", 200, 300, "malformed JSON")
    call(conn, "yahoo", 200, 100)
    call(conn, "yahoo", 500, 200, "HTTP 500")
    call(conn, "yahoo", None, 0, complete=False)

    # Today's bars: AAPL's m15 refresh stored 25 bars a minute ago; MSFT's found no data.
    conn.execute(
        "INSERT INTO pgbars.live_refreshes (symbol_id, timeframe, provider, session_date, targets,"
        " refreshed_at, bars_written, bars_rejected, requests_used, no_data)"
        " SELECT id, 'm15', 'tradier', '2025-01-02', '{h1}', now() - interval '1 minute', 25, 0, 1,"
        " CASE WHEN ticker = 'MSFT' THEN 'tradier answered no m15 bars' END"
        " FROM pgbars.symbols WHERE ticker IN ('AAPL', 'MSFT')"
    )
    return {"failed": newest["chunk_id"], "expired": oldest["chunk_id"]}


def test_the_doc_has_queries_for_every_view() -> None:
    assert len(BLOCKS) >= 20
    for view in VIEWS:
        assert any(f"pgbars.{view}" in sql for _, sql in BLOCKS), view


@pytest.mark.parametrize(
    "sql", [sql for _, sql in BLOCKS], ids=[f"{i}-{heading}" for i, (heading, _) in enumerate(BLOCKS)]
)
def test_every_doc_query_runs_as_the_reader(
    conn: psycopg.Connection[Any], monitored: dict[str, int], sql: str
) -> None:
    assert sql.rstrip().endswith(";") and sql.count(";") == 1, "one statement per block"
    assert re.match(r"\s*(SELECT|WITH|SET)\b", sql), "monitoring queries only read"
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE pgbars_reader")
        conn.execute(sql.encode())


def test_every_view_column_is_explained_in_the_doc(conn: psycopg.Connection[Any]) -> None:
    text = DOC.read_text(encoding="utf-8")
    for view in VIEWS:
        columns = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
            (f"pgbars.{view}",),
        ).fetchall()
        missing = [name for (name,) in columns if f"`{name}`" not in text]
        assert missing == [], view


def test_worker_reads_the_views_too(conn: psycopg.Connection[Any], monitored: dict[str, int]) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE pgbars_worker")
        for view in VIEWS:
            conn.execute(f"SELECT * FROM pgbars.{view}")


def usage(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["provider"], r["period"]): r for r in rows(conn, "SELECT * FROM pgbars.provider_usage")}


def test_provider_usage_counts_outcomes_per_period(
    conn: psycopg.Connection[Any], monitored: dict[str, int]
) -> None:
    got = usage(conn)
    assert len(got) == 6  # three providers, two periods
    outcomes = ("calls", "ok", "rate_limited", "errors", "unfinished")
    assert {key: tuple(got[key][c] for c in outcomes) for key in got} == {
        ("polygon", "1 hour"): (3, 1, 1, 1, 0),
        ("polygon", "1 day"): (4, 2, 1, 1, 0),  # the call two hours ago; not the one 3 days ago
        ("yahoo", "1 hour"): (4, 1, 0, 2, 1),  # a 200 with a refused body is an error
        ("yahoo", "1 day"): (4, 1, 0, 2, 1),
        ("tradier", "1 hour"): (0, 0, 0, 0, 0),
        ("tradier", "1 day"): (0, 0, 0, 0, 0),
    }
    hour = got[("polygon", "1 hour")]
    assert (hour["avg_ms"], hour["p95_ms"], hour["max_ms"]) == (10050, 27010, 30000)
    assert hour["last_error"] == "read timeout"
    assert got[("polygon", "1 day")]["avg_ms"] == round((200 + 100 + 50 + 30000) / 4)
    assert (hour["calls_per_window"], hour["window_length"]) == (5, dt.timedelta(seconds=60))
    assert hour["paused_until"] is not None and hour["enabled"] is True
    assert got[("yahoo", "1 hour")]["last_error"] == "HTTP 500"
    assert got[("yahoo", "1 hour")]["paused_until"] is None
    tradier = got[("tradier", "1 day")]
    assert (tradier["avg_ms"], tradier["p95_ms"], tradier["last_call_at"], tradier["last_error"]) == (
        None,
        None,
        None,
        None,
    )


def test_provider_usage_ignores_reservations_not_started_yet(conn: psycopg.Connection[Any]) -> None:
    call(conn, "tradier", None, 0, complete=False)
    conn.execute("UPDATE pgbars.provider_calls SET starts_at = now() + interval '1 minute'")
    assert usage(conn)[("tradier", "1 hour")]["calls"] == 0


def test_expired_leases_lists_the_abandoned_chunk(
    conn: psycopg.Connection[Any], monitored: dict[str, int]
) -> None:
    (row,) = rows(conn, "SELECT * FROM pgbars.expired_leases")
    assert row["chunk_id"] == monitored["expired"]
    assert (row["symbol"], row["timeframe"], row["provider"], row["claimed_by"]) == (
        "MSFT",
        "h1",
        "polygon",
        "worker-a",
    )
    assert (row["first_session"], row["session_count"]) == (dt.date(2024, 10, 1), 52)
    assert (row["attempts"], row["max_attempts"], row["will_fail"]) == (1, 3, False)
    assert dt.timedelta(minutes=5) <= row["expired_for"] < dt.timedelta(minutes=6)
    assert row["claimed_at"] < row["lease_expires_at"]


def test_expired_leases_flags_a_last_attempt(
    conn: psycopg.Connection[Any], monitored: dict[str, int]
) -> None:
    conn.execute("UPDATE pgbars.backfill_chunks SET attempts = 3 WHERE id = %s", (monitored["expired"],))
    assert scalar(conn, "SELECT will_fail FROM pgbars.expired_leases") is True


def test_failed_chunks_lists_the_error(conn: psycopg.Connection[Any], monitored: dict[str, int]) -> None:
    (row,) = rows(conn, "SELECT * FROM pgbars.failed_chunks")
    assert row["chunk_id"] == monitored["failed"]
    assert (row["symbol"], row["timeframe"], row["provider"]) == ("MSFT", "h1", "polygon")
    assert (row["first_session"], row["last_session"], row["session_count"]) == (
        dt.date(2024, 12, 13),
        dt.date(2024, 12, 31),
        12,
    )
    assert (row["attempts"], row["last_error"], row["claimed_by"]) == (1, "HTTP 400: bad request", "worker-a")
    assert row["completed_at"] is not None


def test_bar_coverage_counts_sessions_and_weeks(
    conn: psycopg.Connection[Any], monitored: dict[str, int]
) -> None:
    got = {
        (r["symbol"], r["timeframe"]): r
        for r in rows(conn, "SELECT * FROM pgbars.bar_coverage ORDER BY symbol, timeframe")
    }
    columns = ("unit", "bars", "units_planned", "units_with_bars", "units_missing", "units_missing_fetched")
    assert {key: tuple(got[key][c] for c in columns) for key in got} == {
        # Dec 2, 3 and 4 (19:00 New York); the forecast is not counted
        ("AAPL", "h1"): ("session", 4, 21, 3, 18, 18),
        # the Nov 29 bar counts as a bar but is outside the plan
        ("AAPL", "d1"): ("session", 3, 21, 2, 19, 19),
        # a bar in the expired chunk; nothing of this job is fetched yet
        ("MSFT", "h1"): ("session", 1, 64, 1, 63, 0),
        # weeks of Dec 2, 9, 16, 23, 30
        ("MSFT", "w1"): ("week", 3, 5, 3, 2, 2),
    }
    aapl_h1 = got[("AAPL", "h1")]
    assert (aapl_h1["first_bar"], aapl_h1["last_bar"]) == (ny("2024-12-02", 9), ny("2024-12-04", 19))
    assert (aapl_h1["first_session"], aapl_h1["last_session"]) == (
        dt.date(2024, 12, 2),
        dt.date(2024, 12, 31),
    )
    assert float(aapl_h1["coverage"]) == round(100 * 3 / 21, 1)
    assert got[("AAPL", "d1")]["first_bar"] == ny("2024-11-29")
    assert float(got[("MSFT", "w1")]["coverage"]) == 60.0


def test_bar_coverage_of_a_w1_plan_starting_midweek(conn: psycopg.Connection[Any]) -> None:
    """The week of the plan's first session counts, and its Monday bar covers it."""
    set_clock(conn)
    # a fetched weekly plan
    conn.execute("UPDATE pgbars.derived_routes SET enabled = false WHERE timeframe = 'w1'")
    seed(conn, "IBM", ["w1"], start=dt.date(2024, 12, 4), end=dt.date(2024, 12, 11))  # Wed .. next Wed
    (claimed,) = claim(conn, "yahoo", "IBM")
    add_bars(conn, claimed, [ny("2024-12-02")], "yahoo")
    row = rows(conn, "SELECT * FROM pgbars.bar_coverage WHERE symbol = 'IBM'")[0]
    assert (row["units_planned"], row["units_with_bars"], row["units_missing"]) == (2, 1, 1)
    assert row["units_missing_fetched"] == 0  # still running


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in plan_nodes(child))]


def test_bar_coverage_filters_by_symbol_below_its_aggregation(
    conn: psycopg.Connection[Any], monitored: dict[str, int]
) -> None:
    """The filter reaches the scan of symbols: one symbol reads only its chunks and bars."""
    (plan,) = scalar(conn, "EXPLAIN (FORMAT JSON) SELECT * FROM pgbars.bar_coverage WHERE symbol = 'AAPL'")
    (symbols,) = [n for n in plan_nodes(plan["Plan"]) if n.get("Relation Name") == "symbols"]
    assert "'AAPL'" in symbols.get("Filter", "") + symbols.get("Index Cond", "")


def test_live_status_shows_each_refresh_and_why_a_symbol_has_no_data(
    conn: psycopg.Connection[Any], monitored: dict[str, int]
) -> None:
    got = rows(
        conn,
        "SELECT symbol, timeframe, targets, bars_written, no_data, leased"
        " FROM pgbars.live_status ORDER BY symbol",
    )
    assert got == [
        {
            "symbol": "AAPL",
            "timeframe": "m15",
            "targets": ["h1"],
            "bars_written": 25,
            "no_data": None,
            "leased": False,
        },
        {
            "symbol": "MSFT",
            "timeframe": "m15",
            "targets": ["h1"],
            "bars_written": 25,
            "no_data": "tradier answered no m15 bars",
            "leased": False,
        },
    ]
