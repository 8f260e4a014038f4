import datetime as dt
import threading
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import chunks, scalar, seed, set_clock


def sessions_between(conn: psycopg.Connection[Any], first: dt.date, last: dt.date) -> list[dt.date]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT session_date FROM pgbars.market_sessions WHERE session_date BETWEEN %s AND %s ORDER BY 1",
            (first, last),
        ).fetchall()
    ]


def assert_chunks_tile_sessions(
    conn: psycopg.Connection[Any],
    planned: list[dict[str, Any]],
    first: dt.date,
    last: dt.date,
    capacity: int,
) -> None:
    """Chunks cover every session of the window once, consecutively, within capacity."""
    expected = sessions_between(conn, first, last)
    covered: list[dt.date] = []
    for c in planned:
        days = sessions_between(conn, c["first_session"], c["last_session"])
        assert len(days) == c["session_count"]
        minutes = scalar(
            conn,
            "SELECT sum(base_minutes) FROM pgbars.market_sessions WHERE session_date BETWEEN %s AND %s",
            (c["first_session"], c["last_session"]),
        )
        assert minutes <= capacity
        covered += days
    assert covered == expected


def test_two_years_of_h1_is_about_ten_polygon_requests(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    result = seed(conn, "AAPL")
    assert result["window_start"] == "2023-01-01" and result["window_end"] == "2024-12-31"
    planned = chunks(conn, "AAPL")
    assert len(planned) == 10
    assert {c["provider"] for c in planned} == {"polygon"}
    assert sum(c["session_count"] for c in planned) == 502
    # 50,000 minute bars / 960 per full session: 52 sessions a chunk
    assert max(c["session_count"] for c in planned) == 52
    assert_chunks_tile_sessions(conn, planned, dt.date(2023, 1, 1), dt.date(2024, 12, 31), 50_000)


def test_chunks_skip_weekends_and_holidays(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    bounds = conn.execute(
        "SELECT count(*) FROM pgbars.backfill_chunks c WHERE NOT EXISTS"
        " (SELECT 1 FROM pgbars.market_sessions s WHERE s.session_date = c.first_session)"
        " OR extract(isodow FROM c.first_session) > 5 OR extract(isodow FROM c.last_session) > 5"
    ).fetchone()
    assert bounds == (0,)


def test_current_session_is_never_history(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, "2024-11-29 16:30 America/New_York")  # early close; after-hours until 17:00
    assert seed(conn, "AAPL", years=1)["window_end"] == "2024-11-27"
    set_clock(conn, "2024-11-29 17:00 America/New_York")
    assert seed(conn, "AAPL", years=1)["window_end"] == "2024-11-29"
    last = chunks(conn, "AAPL")[-1]
    assert (last["first_session"], last["last_session"]) == (dt.date(2024, 11, 29),) * 2


def test_seeding_again_is_idempotent(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    again = seed(conn, " aapl ")
    assert again["jobs"][0]["created"] is False
    assert again["jobs"][0]["chunks_added"] == 0
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 10


def test_seeding_later_extends_newer_and_older_without_duplicates(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    set_clock(conn, "2025-01-10 12:00 America/New_York")  # 2025-01-02..08 completed since
    newer = seed(conn, "AAPL")["jobs"][0]
    assert newer["created"] is False and newer["sessions_added"] == 5
    older = seed(conn, "AAPL", start=dt.date(2022, 6, 1))["jobs"][0]
    assert older["sessions_added"] > 100
    planned = chunks(conn, "AAPL")
    assert_chunks_tile_sessions(conn, planned, dt.date(2022, 6, 1), dt.date(2025, 1, 8), 50_000)
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1


def test_gap_between_windows_is_planned_separately(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", start=dt.date(2024, 1, 2), end=dt.date(2024, 1, 31))
    seed(conn, "AAPL", start=dt.date(2024, 3, 1), end=dt.date(2024, 3, 28))
    seed(conn, "AAPL", start=dt.date(2024, 1, 2), end=dt.date(2024, 3, 28))
    planned = chunks(conn, "AAPL")
    assert [(c["first_session"], c["last_session"]) for c in planned] == [
        (dt.date(2024, 1, 2), dt.date(2024, 1, 31)),
        (dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        (dt.date(2024, 3, 1), dt.date(2024, 3, 28)),
    ]


def test_daily_goes_to_yahoo_in_one_chunk(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["d1", "w1"], years=10)
    (planned,) = chunks(conn, "AAPL", "d1")
    assert planned["provider"] == "yahoo"
    assert chunks(conn, "AAPL", "w1") == []  # derived from d1 by default


def test_weekly_fetched_when_its_derivation_is_off_goes_to_yahoo_in_one_chunk(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    conn.execute("UPDATE pgbars.derived_routes SET enabled = false WHERE timeframe = 'w1'")
    seed(conn, "AAPL", ["w1"], years=10)
    (planned,) = chunks(conn, "AAPL", "w1")
    assert planned["provider"] == "yahoo"


def test_weekly_derivation_plans_daily_from_the_monday_of_the_first_week(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["d1"], start=dt.date(2024, 12, 4), end=dt.date(2024, 12, 11))  # Wed .. next Wed
    assert [(c["first_session"], c["last_session"]) for c in chunks(conn, "AAPL", "d1")] == [
        (dt.date(2024, 12, 4), dt.date(2024, 12, 11))
    ]
    # w1 from d1: the first week must be whole, so Monday 2 and Tuesday 3 are planned too
    result = seed(conn, "AAPL", ["w1"], start=dt.date(2024, 12, 4), end=dt.date(2024, 12, 11))
    assert [(c["first_session"], c["last_session"]) for c in chunks(conn, "AAPL", "d1")] == [
        (dt.date(2024, 12, 2), dt.date(2024, 12, 3)),
        (dt.date(2024, 12, 4), dt.date(2024, 12, 11)),
    ]
    assert [d["timeframe"] for d in result["derived"]] == ["w1"]


def test_routes_follow_priority_and_lookback(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    conn.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'polygon'")
    # Yahoo serves m15 only within 60 days: older sessions have no route
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no enabled history route"):
        seed(conn, "AAPL", ["m15"])
    seed(conn, "AAPL", ["m15"], start=dt.date(2024, 11, 15))
    assert {c["provider"] for c in chunks(conn, "AAPL", "m15")} == {"yahoo"}
    # h1 has no Yahoo route at all: its hours start at 09:30, off the grid
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="h1"):
        seed(conn, "AAPL", ["h1"])


def test_chunk_never_spans_two_providers(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    conn.execute(
        "UPDATE pgbars.provider_routes SET priority = 3 WHERE provider = 'polygon' AND timeframe = 'm5'"
    )
    seed(conn, "AAPL", ["m5"], years=1)
    planned = chunks(conn, "AAPL", "m5")
    yahoo = [c for c in planned if c["provider"] == "yahoo"]
    polygon = [c for c in planned if c["provider"] == "polygon"]
    assert yahoo and polygon
    assert max(c["last_session"] for c in polygon) < min(c["first_session"] for c in yahoo)
    assert min(c["first_session"] for c in yahoo) >= dt.date(2025, 1, 2) - dt.timedelta(days=60)


def test_returns_jobs_as_jsonb(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    symbol_id = scalar(conn, "SELECT pgbars._ensure_symbol('MSFT')")
    result = scalar(conn, "SELECT pgbars.seed_backfill_for_symbol(%s, '{h1,d1}')", (symbol_id,))
    assert result["ticker"] == "MSFT"
    assert [(j["timeframe"], j["created"], j["chunks_added"]) for j in result["jobs"]] == [
        ("h1", True, 10),
        ("d1", True, 1),
    ]


def test_unknown_symbol_id_is_an_error(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown symbol"):
        conn.execute("SELECT pgbars.seed_backfill_for_symbol(gen_random_uuid())")


def test_concurrent_seeders_create_one_job_and_no_duplicate_chunk(
    conn: psycopg.Connection[Any], connect: Any
) -> None:
    symbol_id = scalar(conn, "SELECT pgbars._ensure_symbol('AAPL')")
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def run(years: int) -> None:
        c = connect()
        set_clock(c)
        barrier.wait()
        try:
            c.execute(
                "SELECT pgbars.seed_backfill_for_symbol(%s, '{h1}', NULL, NULL, %s)",
                (symbol_id, years),
            )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(1 + i % 3,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1
    planned = chunks(conn, "AAPL")
    assert_chunks_tile_sessions(conn, planned, dt.date(2022, 1, 1), dt.date(2024, 12, 31), 50_000)
