"""pgbars.pause_provider: a pause shared by every worker, e.g. after an HTTP 429."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import scalar, seed, set_clock


def pause(conn: psycopg.Connection[Any], until: dt.datetime, provider: str = "polygon") -> Any:
    return scalar(conn, "SELECT pgbars.pause_provider(%s, %s)", (provider, until))


def paused_until(conn: psycopg.Connection[Any], provider: str = "polygon") -> Any:
    return scalar(conn, "SELECT paused_until FROM pgbars.providers WHERE name = %s", (provider,))


def clock(conn: psycopg.Connection[Any]) -> dt.datetime:
    now = scalar(conn, "SELECT clock_timestamp()")
    assert isinstance(now, dt.datetime)
    return now


def claim(conn: psycopg.Connection[Any], providers: list[str]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT chunk_id, provider FROM pgbars.claim_backfill_chunks('w', %s, 100)",
        (providers,),
    ).fetchall()


def test_pause_sets_paused_until_for_that_provider_only(conn: psycopg.Connection[Any]) -> None:
    until = clock(conn) + dt.timedelta(seconds=30)
    assert pause(conn, until) == until
    assert paused_until(conn) == until
    assert paused_until(conn, "yahoo") is None


def test_pauses_only_lengthen(conn: psycopg.Connection[Any]) -> None:
    long = clock(conn) + dt.timedelta(seconds=60)
    short = long - dt.timedelta(seconds=50)
    pause(conn, long)
    assert pause(conn, short) == long
    assert paused_until(conn) == long

    longer = long + dt.timedelta(seconds=5)
    assert pause(conn, longer) == longer
    assert paused_until(conn) == longer


def test_pause_is_capped_at_one_day(conn: psycopg.Connection[Any]) -> None:
    before = clock(conn)
    result = pause(conn, before + dt.timedelta(days=365))
    after = clock(conn)
    day = dt.timedelta(days=1)
    assert before + day - dt.timedelta(seconds=1) <= result <= after + day
    assert paused_until(conn) == result


def test_unknown_provider_raises_22023(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.Error) as raised:
        pause(conn, clock(conn) + dt.timedelta(seconds=30), "nosuch")
    assert raised.value.sqlstate == "22023"


def test_claims_skip_a_paused_provider_until_the_pause_ends(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, "AAPL", ["h1", "d1"])  # h1 from polygon, d1 from yahoo
    until = pause(conn, clock(conn) + dt.timedelta(milliseconds=400))

    assert [p for _, p in claim(conn, ["polygon", "yahoo"])] == ["yahoo"]
    assert claim(conn, ["polygon"]) == []

    while clock(conn) <= until:
        time.sleep(0.05)
    assert len(claim(conn, ["polygon"])) == 10


def test_reservations_start_after_the_pause(conn: psycopg.Connection[Any]) -> None:
    until = pause(conn, clock(conn) + dt.timedelta(seconds=20))
    starts_at = scalar(conn, "SELECT starts_at FROM pgbars.reserve_provider_call('polygon', 'worker-a')")
    assert starts_at >= until


def test_pause_without_an_end_lasts_one_window(conn: psycopg.Connection[Any]) -> None:
    before = clock(conn)
    until = scalar(conn, "SELECT pgbars.pause_provider('polygon', NULL)")
    # polygon's default window is 60 s: a 429 without Retry-After pauses one window, not a day
    assert before + dt.timedelta(seconds=55) < until < before + dt.timedelta(seconds=65)
