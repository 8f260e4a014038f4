"""roll_forward_backfills(): open-ended jobs follow the calendar, one new chunk per job and run."""

import datetime as dt
import threading
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import CLOCK, chunks, scalar, seed, set_clock

MONDAY_NOON = "2025-01-06 12:00 America/New_York"  # Friday 2025-01-03 completed, today is not


def roll(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    result = scalar(conn, "SELECT pgbars.roll_forward_backfills()")
    assert isinstance(result, dict)
    return result


def finish_all(conn: psycopg.Connection[Any]) -> None:
    """Test setup: every chunk fetched (what claim + complete would leave)."""
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'done', completed_at = now(), bars_written = 16,"
        " bars_rejected = 0, requests_used = 1"
    )


def progress(conn: psycopg.Connection[Any], ticker: str, timeframe: str = "h1") -> dict[str, Any]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute(
        "SELECT * FROM pgbars.backfill_progress WHERE symbol = %s AND timeframe = %s", (ticker, timeframe)
    ).fetchone()
    assert row is not None
    return row


def spans(conn: psycopg.Connection[Any], ticker: str, timeframe: str = "h1") -> list[tuple[dt.date, dt.date]]:
    return [(c["first_session"], c["last_session"]) for c in chunks(conn, ticker, timeframe)]


def row_versions(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Every job and chunk row with its xmin/xmax: an update or a row lock changes them."""
    return conn.execute(
        "SELECT 'job', id, xmin::text, xmax::text, updated_at FROM pgbars.backfill_jobs"
        " UNION ALL SELECT 'chunk', id, xmin::text, xmax::text, NULL FROM pgbars.backfill_chunks"
        " ORDER BY 1, 2"
    ).fetchall()


def nothing(result: dict[str, Any]) -> bool:
    """The summary of a run that found nothing new."""
    counts = (result["jobs_extended"], result["chunks_added"], result["sessions_added"])
    return counts == (0, 0, 0) and result["jobs"] == []


def test_a_finished_job_runs_again_for_the_new_sessions_only(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    finish_all(conn)
    before = progress(conn, "AAPL")
    assert (before["status"], before["progress"], before["sessions_total"]) == ("done", 100, 502)
    done_rows = chunks(conn, "AAPL")

    set_clock(conn, MONDAY_NOON)
    result = roll(conn)
    job_id = before["job_id"]
    assert result == {
        "last_completed_session": "2025-01-03",
        "jobs_extended": 1,
        "chunks_added": 1,
        "sessions_added": 2,
        "jobs": [
            {
                "job_id": job_id,
                "ticker": "AAPL",
                "timeframe": "h1",
                "first_session": "2025-01-02",
                "last_session": "2025-01-03",
                "chunks_added": 1,
                "sessions_added": 2,
            }
        ],
        "skipped": [],
    }
    planned = chunks(conn, "AAPL")
    assert planned[:-1] == done_rows  # the fetched chunks are untouched
    new = planned[-1]
    assert (new["first_session"], new["last_session"], new["session_count"]) == (
        dt.date(2025, 1, 2),
        dt.date(2025, 1, 3),
        2,
    )
    assert (new["provider"], new["status"], new["attempts"]) == ("polygon", "pending", 0)
    # the planning clock, which tells the next run this job was planned up to its last completed session
    assert new["created_at"] == scalar(conn, "SELECT %s::timestamptz", (MONDAY_NOON,))

    after = progress(conn, "AAPL")
    assert (after["status"], after["done"], after["pending"], after["total"]) == ("running", 10, 1, 11)
    assert (after["sessions_done"], after["sessions_total"]) == (502, 504)
    assert after["progress"] < 100
    assert after["last_session"] == dt.date(2025, 1, 3)


def test_a_job_that_is_current_writes_nothing(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"])
    versions = row_versions(conn)
    assert nothing(roll(conn))  # seeded at this clock: already current
    assert row_versions(conn) == versions

    set_clock(conn, MONDAY_NOON)
    assert roll(conn)["chunks_added"] == 2
    versions = row_versions(conn)
    again = roll(conn)
    assert nothing(again) and again["skipped"] == []
    assert again["last_completed_session"] == "2025-01-03"
    assert row_versions(conn) == versions
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 10 + 1 + 2


@pytest.mark.parametrize(
    ("seeded_at", "rolled_at"),
    [
        ("2025-01-04 12:00 America/New_York", "2025-01-05 23:00 America/New_York"),  # the weekend
        ("2025-01-17 21:00 America/New_York", "2025-01-20 21:00 America/New_York"),  # MLK day
        ("2025-01-08 21:00 America/New_York", "2025-01-09 21:00 America/New_York"),  # closed: Carter
        ("2025-01-10 20:00 America/New_York", "2025-01-13 19:59 America/New_York"),  # in session
    ],
)
def test_no_completed_session_since_means_nothing_new(
    conn: psycopg.Connection[Any], seeded_at: str, rolled_at: str
) -> None:
    set_clock(conn, seeded_at)
    seed(conn, "AAPL", years=1)
    count = len(chunks(conn, "AAPL"))
    set_clock(conn, rolled_at)
    assert nothing(roll(conn))
    assert len(chunks(conn, "AAPL")) == count


def test_the_current_session_is_never_included(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, "2025-01-08 21:00 America/New_York")
    seed(conn, "AAPL", years=1)
    assert spans(conn, "AAPL")[-1][1] == dt.date(2025, 1, 8)
    set_clock(conn, "2025-01-10 19:59 America/New_York")  # Friday, after-hours until 20:00
    assert nothing(roll(conn))
    set_clock(conn, "2025-01-10 20:00 America/New_York")
    result = roll(conn)
    assert (result["last_completed_session"], result["sessions_added"]) == ("2025-01-10", 1)
    assert spans(conn, "AAPL")[-1] == (dt.date(2025, 1, 10), dt.date(2025, 1, 10))  # 01-09 closed


def test_each_timeframe_gets_its_own_chunk(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"])
    seed(conn, "MSFT", ["h1"])
    finish_all(conn)
    set_clock(conn, MONDAY_NOON)
    result = roll(conn)
    assert (result["jobs_extended"], result["chunks_added"], result["sessions_added"]) == (3, 3, 6)
    assert [(j["ticker"], j["timeframe"]) for j in result["jobs"]] == [
        ("AAPL", "h1"),
        ("AAPL", "d1"),
        ("MSFT", "h1"),
    ]
    for ticker, timeframe, provider in (
        ("AAPL", "h1", "polygon"),
        ("AAPL", "d1", "yahoo"),
        ("MSFT", "h1", "polygon"),
    ):
        new = chunks(conn, ticker, timeframe)[-1]
        assert (new["first_session"], new["last_session"], new["provider"], new["status"]) == (
            dt.date(2025, 1, 2),
            dt.date(2025, 1, 3),
            provider,
            "pending",
        )
        assert progress(conn, ticker, timeframe)["status"] == "running"


def test_a_long_pause_is_planned_in_full_sized_chunks(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    set_clock(conn, "2025-04-15 12:00 America/New_York")  # cron was down for three months
    result = roll(conn)
    added = chunks(conn, "AAPL")[10:]
    sessions = scalar(
        conn,
        "SELECT count(*) FROM pgbars.market_sessions"
        " WHERE session_date BETWEEN '2025-01-02' AND '2025-04-14'",
    )
    assert result["sessions_added"] == sessions == sum(c["session_count"] for c in added)
    assert result["chunks_added"] == len(added) == 2
    assert [c["session_count"] for c in added] == [52, sessions - 52]  # like any other chunk
    assert (added[0]["first_session"], added[-1]["last_session"]) == (
        dt.date(2025, 1, 2),
        dt.date(2025, 4, 14),
    )


def test_a_job_mid_backfill_extends_too(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    chunk_id, lease_id = conn.execute(
        "SELECT chunk_id, lease_id FROM pgbars.claim_backfill_chunks('w', '{polygon}', 2)"
    ).fetchall()[0]
    conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 300, 0, 1)", (chunk_id, lease_id))
    before = [(c["id"], c["status"], c["lease_id"]) for c in chunks(conn, "AAPL")]
    assert sorted(status for _, status, _ in before) == ["done"] + ["pending"] * 8 + ["running"]

    set_clock(conn, MONDAY_NOON)
    assert roll(conn)["chunks_added"] == 1
    after = chunks(conn, "AAPL")
    assert [(c["id"], c["status"], c["lease_id"]) for c in after[:-1]] == before
    assert (after[-1]["first_session"], after[-1]["status"]) == (dt.date(2025, 1, 2), "pending")


def test_an_explicit_past_end_stays_where_it_was_asked_to_end(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "OLD", start=dt.date(2020, 1, 1), end=dt.date(2020, 12, 31))
    seed(conn, "LASTWEEK", start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 24))
    seed(conn, "UPTONOW", start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))  # = last completed
    seed(conn, "TODAY", start=dt.date(2024, 12, 2), end=dt.date(2025, 1, 2))  # clamped to 12-31
    seed(conn, "OPEN")
    seed(conn, "OPEN", start=dt.date(2019, 1, 2), end=dt.date(2019, 3, 29))  # older history, added later
    ends = {t: spans(conn, t)[-1][1] for t in ("OLD", "LASTWEEK")}

    set_clock(conn, MONDAY_NOON)
    result = roll(conn)
    assert sorted(j["ticker"] for j in result["jobs"]) == ["OPEN", "TODAY", "UPTONOW"]
    for ticker in ("OPEN", "TODAY", "UPTONOW"):
        assert spans(conn, ticker)[-1] == (dt.date(2025, 1, 2), dt.date(2025, 1, 3))
    assert {t: spans(conn, t)[-1][1] for t in ("OLD", "LASTWEEK")} == ends

    # Asking again without an end brings the job up to date, and from then on it rolls.
    seed(conn, "OLD", start=dt.date(2024, 12, 2))
    assert spans(conn, "OLD")[-1][1] == dt.date(2025, 1, 3)
    set_clock(conn, "2025-01-07 21:00 America/New_York")
    assert sorted(j["ticker"] for j in roll(conn)["jobs"]) == ["OLD", "OPEN", "TODAY", "UPTONOW"]
    assert spans(conn, "LASTWEEK")[-1][1] == ends["LASTWEEK"]


def test_a_job_without_a_route_is_skipped_and_tried_again(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"])
    conn.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'polygon'")
    set_clock(conn, MONDAY_NOON)
    result = roll(conn)
    assert [j["timeframe"] for j in result["jobs"]] == ["d1"]
    assert [(s["ticker"], s["timeframe"]) for s in result["skipped"]] == [("AAPL", "h1")]
    assert "no enabled history route serves timeframe h1" in result["skipped"][0]["error"]
    assert len(chunks(conn, "AAPL")) == 10

    conn.execute("UPDATE pgbars.providers SET enabled = true WHERE name = 'polygon'")
    again = roll(conn)
    assert ([j["timeframe"] for j in again["jobs"]], again["skipped"]) == (["h1"], [])
    assert spans(conn, "AAPL")[-1] == (dt.date(2025, 1, 2), dt.date(2025, 1, 3))


def test_concurrent_callers_add_each_chunk_once(conn: psycopg.Connection[Any], connect: Any) -> None:
    set_clock(conn)
    tickers = ["AAPL", "MSFT", "NVDA", "AMD", "TSLA"]
    for ticker in tickers:
        seed(conn, ticker, ["h1", "d1"])
    barrier = threading.Barrier(4)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def run() -> None:
        c = connect()
        set_clock(c, MONDAY_NOON)
        barrier.wait()
        try:
            results.append(roll(c))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r["chunks_added"] for r in results) == 10
    assert sum(r["sessions_added"] for r in results) == 20
    for ticker in tickers:
        for timeframe in ("h1", "d1"):
            assert spans(conn, ticker, timeframe)[-1] == (dt.date(2025, 1, 2), dt.date(2025, 1, 3))
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 5 * (10 + 1) + 10

    # and back to back, from another connection: nothing left to do
    late = connect()
    set_clock(late, MONDAY_NOON)
    assert nothing(roll(late))


def test_the_worker_role_rolls_forward(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, CLOCK)
    seed(conn, "AAPL")
    set_clock(conn, MONDAY_NOON)
    conn.execute("SET ROLE pgbars_worker")
    try:
        assert roll(conn)["chunks_added"] == 1
    finally:
        conn.execute("RESET ROLE")
    conn.execute("SET ROLE pgbars_reader")
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            roll(conn)
    finally:
        conn.execute("RESET ROLE")
