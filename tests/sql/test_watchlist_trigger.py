from typing import Any

import psycopg
import pytest

from tests.sql.helpers import chunks, scalar, set_clock


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
    set_clock(conn, "2025-01-15 12:00 America/New_York")  # another day
    add(conn, "AAPL", "third list")
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == 10
    assert scalar(conn, "SELECT count(*) FROM pgbars.watchlist_items") == 3


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


def test_bad_watchlist_name(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="watchlist name"):
        add(conn, "AAPL", "   ")
