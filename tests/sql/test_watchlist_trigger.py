import datetime as dt
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import chunks, scalar, seed, set_clock


def add(conn: psycopg.Connection[Any], ticker: str, watchlist: str = "default") -> dict[str, Any]:
    result = scalar(conn, "SELECT pgbars.add_to_watchlist(%s, %s)", (ticker, watchlist))
    assert isinstance(result, dict)
    return result


def test_plain_insert_seeds_two_years_of_h1(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    symbol_id = scalar(conn, "INSERT INTO pgbars.symbols (ticker) VALUES ('AAPL') RETURNING id")
    watchlist_id = scalar(conn, "INSERT INTO pgbars.watchlists (name) VALUES ('tech') RETURNING id")
    conn.execute(
        "INSERT INTO pgbars.watchlist_items (watchlist_id, symbol_id) VALUES (%s, %s)",
        (watchlist_id, symbol_id),
    )
    planned = chunks(conn, "AAPL")
    assert len(planned) == 10
    assert planned[0]["first_session"].isoformat() == "2023-01-03"
    assert planned[-1]["last_session"].isoformat() == "2024-12-31"


def test_symbol_already_covered_creates_nothing_new(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    assert add(conn, "AAPL")["added"] is True
    assert add(conn, "AAPL")["added"] is False
    add(conn, "aapl", "second list")
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 10
    set_clock(conn, "2025-01-15 12:00 America/New_York")  # another day
    add(conn, "AAPL", "third list")
    # Only the sessions completed since (as roll-forward would add them), in the same job.
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1
    planned = chunks(conn, "AAPL")
    assert len(planned) == 11
    assert (planned[-1]["first_session"].isoformat(), planned[-1]["last_session"].isoformat()) == (
        "2025-01-02",
        "2025-01-14",
    )
    assert scalar(conn, "SELECT count(*) FROM pgbars.watchlist_items") == 3


def _sessions(planned: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(c["first_session"].isoformat(), c["last_session"].isoformat()) for c in planned]


def test_watching_extends_a_shorter_h1_job_to_two_years(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL", years=1)
    job_id = scalar(conn, "SELECT id FROM pgbars.backfill_jobs")
    one_year = _sessions(chunks(conn, "AAPL"))
    assert one_year[0][0] == "2024-01-02" and one_year[-1][1] == "2024-12-31"

    add(conn, "AAPL")

    planned = chunks(conn, "AAPL")
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1
    assert {c["job_id"] for c in planned} == {job_id}
    assert planned[0]["first_session"].isoformat() == "2023-01-03"
    assert set(one_year) <= set(_sessions(planned))  # the year already planned is kept as it was
    assert _no_session_twice(conn)
    assert sum(c["session_count"] for c in planned) == 502  # 2023-01-03 .. 2024-12-31


def test_watching_extends_a_job_that_ended_in_the_past_and_it_then_rolls_forward(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", start=dt.date(2023, 1, 3), end=dt.date(2024, 6, 28))
    assert chunks(conn, "AAPL")[-1]["last_session"].isoformat() == "2024-06-28"

    add(conn, "AAPL")

    planned = chunks(conn, "AAPL")
    assert planned[-1]["last_session"].isoformat() == "2024-12-31"
    assert sum(c["session_count"] for c in planned) == 502
    assert _no_session_twice(conn)
    # Watched means kept current: the job now rolls forward like any open-ended one.
    set_clock(conn, "2025-01-06 12:00 America/New_York")
    rolled = scalar(conn, "SELECT pgbars.roll_forward_backfills()")
    assert rolled["sessions_added"] == 2  # 2 and 3 January
    assert chunks(conn, "AAPL")[-1]["last_session"].isoformat() == "2025-01-03"


def _no_session_twice(conn: psycopg.Connection[Any]) -> bool:
    return bool(
        scalar(
            conn,
            "SELECT count(*) = count(DISTINCT ms.session_date) FROM pgbars.backfill_chunks AS c"
            " JOIN pgbars.market_sessions AS ms"
            " ON ms.session_date BETWEEN c.first_session AND c.last_session",
        )
    )


def test_a_failing_seed_fails_the_insert(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    conn.execute("UPDATE pgbars.providers SET enabled = false WHERE name = 'polygon'")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no enabled history route"):
        add(conn, "AAPL")
    assert scalar(conn, "SELECT count(*) FROM pgbars.watchlist_items") == 0
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 0


def test_remove_keeps_jobs_and_reports_absence(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    add(conn, "AAPL")
    assert scalar(conn, "SELECT pgbars.remove_from_watchlist('aapl', 'default')") is True
    assert scalar(conn, "SELECT pgbars.remove_from_watchlist('AAPL', 'default')") is False
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1


@pytest.mark.parametrize("name", ["tech\x1b[2J", "a\nb", "\x07bell", "tab\there"])
def test_a_watchlist_name_with_control_characters_is_refused_without_echoing_them(
    conn: psycopg.Connection[Any], name: str
) -> None:
    set_clock(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid watchlist name") as refused:
        add(conn, "AAPL", name)
    message = refused.value.diag.message_primary or ""
    assert message.startswith("invalid watchlist name '")
    assert not any(ord(c) < 32 or ord(c) == 127 for c in message), message
    assert scalar(conn, "SELECT count(*) FROM pgbars.watchlists") == 0


@pytest.mark.parametrize("name", ["tech\u2003", "\u3000tech", "\u2028tech"])
def test_a_watchlist_name_with_white_space_at_an_end_is_refused_by_name(
    conn: psycopg.Connection[Any], name: str
) -> None:
    # found by tests/faults: Unicode white space passed the function's checks and failed the
    # table's CHECK, a check_violation naming the constraint
    set_clock(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid watchlist name"):
        add(conn, "AAPL", name)
    assert scalar(conn, "SELECT count(*) FROM pgbars.watchlists") == 0


def test_bad_watchlist_name(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="watchlist name"):
        add(conn, "AAPL", "   ")
