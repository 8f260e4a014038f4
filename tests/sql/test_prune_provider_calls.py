"""pgbars.prune_provider_calls: old ledger rows go, rows inside a rate-limit window stay."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.sql.helpers import scalar


def add_call(conn: psycopg.Connection[Any], age: str, provider: str = "polygon") -> int:
    """A completed ledger row that started `age` ago (negative: in the future)."""
    call_id = scalar(
        conn,
        "INSERT INTO pgbars.provider_calls (provider, worker, starts_at, status, finished_at)"
        " VALUES (%s, 'worker-a', now() - %s::interval, 'completed', now() - %s::interval)"
        " RETURNING id",
        (provider, age, age),
    )
    assert isinstance(call_id, int)
    return call_id


def remaining(conn: psycopg.Connection[Any]) -> set[int]:
    return {r[0] for r in conn.execute("SELECT id FROM pgbars.provider_calls").fetchall()}


def test_default_keeps_a_week(conn: psycopg.Connection[Any]) -> None:
    old = [add_call(conn, "8 days"), add_call(conn, "30 days", "yahoo")]
    recent = [add_call(conn, "6 days"), add_call(conn, "1 hour"), add_call(conn, "1 second")]

    assert scalar(conn, "SELECT pgbars.prune_provider_calls()") == len(old)
    assert remaining(conn) == set(recent)


def test_explicit_keep(conn: psycopg.Connection[Any]) -> None:
    old = add_call(conn, "2 hours")
    recent = add_call(conn, "30 minutes")
    assert scalar(conn, "SELECT pgbars.prune_provider_calls('1 hour')") == 1
    assert remaining(conn) == {recent}
    assert old not in remaining(conn)


def test_never_prunes_inside_a_rate_limit_window(conn: psycopg.Connection[Any]) -> None:
    # polygon's window is 60 s plus a 1 s margin
    inside = add_call(conn, "30 seconds")
    reserved_ahead = add_call(conn, "-20 seconds")
    outside = add_call(conn, "5 minutes")

    assert scalar(conn, "SELECT pgbars.prune_provider_calls('0')") == 1
    assert remaining(conn) == {inside, reserved_ahead}
    assert outside not in remaining(conn)


def test_the_longest_window_of_any_provider_is_kept(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE pgbars.providers SET window_length = '1 hour' WHERE name = 'yahoo'")
    inside = [add_call(conn, "5 minutes"), add_call(conn, "50 minutes", "yahoo")]
    outside = add_call(conn, "2 hours")

    assert scalar(conn, "SELECT pgbars.prune_provider_calls('0')") == 1
    assert remaining(conn) == set(inside)
    assert outside not in remaining(conn)


def test_nothing_to_prune_returns_zero(conn: psycopg.Connection[Any]) -> None:
    kept = add_call(conn, "1 minute")
    assert scalar(conn, "SELECT pgbars.prune_provider_calls()") == 0
    assert remaining(conn) == {kept}
