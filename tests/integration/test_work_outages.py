"""Outages and misconfigurations: they pause or stop a provider, never burn its chunks.

`pgbars work` against a provider that does not answer at all (a closed port, a
connection dropped before the status line, no status line in time), against a
base URL that cannot work, and with retries configured to take seconds.
"""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg.rows import dict_row

from tests.integration.helpers import (
    POLYGON_KEY,
    capture_worker_logs,
    chunk_rows,
    config,
    request,
    scalar,
    served,
    stored,
    work_log,
)
from worker import db as pgbars_db
from worker import work
from worker.emulator import Fault, PolygonServer, YahooServer
from worker.main import cli
from worker.providers import PolygonProvider

D = dt.date
WEEK = (D(2024, 12, 2), D(2024, 12, 6))  # one h1 chunk of five sessions
SPY_WEEK = (D(2024, 11, 25), D(2024, 11, 29))  # one d1 chunk, from Yahoo


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _calls(conn: psycopg.Connection[Any], provider: str = "polygon") -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT status, http_status, error FROM pgbars.provider_calls WHERE provider = %s ORDER BY id",
        (provider,),
    ).fetchall()


def _breaker(conn: psycopg.Connection[Any]) -> tuple[int, float | None]:
    """polygon's count of calls without an answer, and the seconds its pause has left."""
    row = conn.execute(
        "SELECT unreachable_streak, extract(EPOCH FROM paused_until - now())::float8"
        " FROM pgbars.providers WHERE name = 'polygon'"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def _states(conn: psycopg.Connection[Any], *tickers: str, timeframe: str = "h1") -> list[tuple[str, int]]:
    return [(c["status"], c["attempts"]) for t in tickers for c in chunk_rows(conn, t, timeframe)]


async def test_a_provider_at_a_closed_port_is_paused_and_its_chunks_stay_pending(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    request(db, "MSFT", "h1", *WEEK)
    down = {**env, "POLYGON_BASE_URL": f"http://127.0.0.1:{_closed_port()}"}

    # Run 1: two calls without an answer give their chunk back at once; the third
    # in a row opens the breaker: polygon paused 30 s for every worker.
    first = await work.run(dsn, down, config(concurrency=1, max_seconds=3.0))

    assert [r.outcome for r in first.reports] == ["released"] * 3
    assert "polygon paused until" in first.reports[-1].detail
    assert first.stopped_by == "nothing due before the budget ends"
    streak, left = _breaker(db)
    assert streak == 3 and left is not None and 25 < left <= 30
    assert _states(db, "AAPL", "MSFT") == [("pending", 0), ("pending", 0)]

    # Run 2, inside the pause: nothing is claimed, nothing is called.
    second = await work.run(dsn, down, config(concurrency=1, max_seconds=2.0))
    assert second.reports == []
    assert len(_calls(db)) == 3

    # Run 3, once the pause is over: one more call without an answer, twice the pause.
    db.execute(
        "UPDATE pgbars.providers SET paused_until = now() - interval '1 second' WHERE name = 'polygon'"
    )
    third = await work.run(dsn, down, config(concurrency=1, max_seconds=2.0))

    assert [r.outcome for r in third.reports] == ["released"]
    streak, left = _breaker(db)
    assert streak == 4 and left is not None and 55 < left <= 60
    assert _states(db, "AAPL", "MSFT") == [("pending", 0), ("pending", 0)]
    for row in chunk_rows(db, "AAPL") + chunk_rows(db, "MSFT"):
        assert "polygon: unreachable, connection failed" in row["last_error"]
    calls = _calls(db)
    assert len(calls) == 4
    assert {(c["status"], c["http_status"]) for c in calls} == {("completed", None)}

    # The provider is back: the chunks are fetched with their first attempt, the breaker reset.
    db.execute("UPDATE pgbars.providers SET paused_until = NULL WHERE name = 'polygon'")
    await work.run(dsn, env, config(concurrency=1))
    assert _states(db, "AAPL", "MSFT") == [("done", 1), ("done", 1)]
    assert _breaker(db) == (0, None)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.reset(), "polygon: unreachable, connection failed"),
        (Fault.slow(3.0), "polygon: unreachable, request timed out without an answer"),
    ],
    ids=["reset", "no-status-line-in-time"],
)
async def test_no_answer_gives_the_chunk_back_unspent_and_the_run_tries_again(
    dsn: str,
    db: psycopg.Connection[Any],
    env: dict[str, str],
    polygon: PolygonServer,
    fault: Fault,
    message: str,
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(fault)

    summary = await work.run(dsn, env, config(max_seconds=10.0), http_timeout=0.5)

    assert [r.outcome for r in summary.reports] == ["released", "done"]
    assert message in summary.reports[0].detail
    assert _states(db, "AAPL") == [("done", 1)]  # the failed call spent no attempt
    assert [(c["http_status"], message in (c["error"] or "")) for c in _calls(db)] == [
        (None, True),
        (200, False),
    ]
    assert _breaker(db) == (0, None)  # the answered call reset the count
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *WEEK)


async def test_retries_take_seconds_with_a_short_retry_backoff(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    db.execute("UPDATE pgbars.providers SET retry_backoff = '1 second' WHERE name = 'polygon'")
    polygon.inject(Fault.server_error(503), times=2)

    summary = await work.run(dsn, env, config(max_seconds=15.0))

    assert [r.outcome for r in summary.reports] == ["retry", "retry", "done"]
    assert _states(db, "AAPL") == [("done", 3)]
    first, _, last = polygon.requests
    assert 2.0 < last.monotonic - first.monotonic < 6.0  # 1 s, then 2 s, each +/-25 %


# --- a base URL that cannot work ---------------------------------------------------------


def _pgbars_work(dsn: str, env: dict[str, str], *args: str) -> Result:
    base = {"POLYGON_API_KEY": "", "TRADIER_TOKEN": "", "POLYGON_BASE_URL": "", "TRADIER_BASE_URL": ""}
    return CliRunner().invoke(
        cli, ["work", "--max-seconds", "20", *args], env={**base, **env, "DATABASE_URL": dsn}
    )


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict"])
def test_a_mistyped_base_url_stops_that_provider_for_the_run_in_one_line(
    dsn: str, db: psycopg.Connection[Any], yahoo: YahooServer, strict: bool
) -> None:
    request(db, "AAPL", "h1", *WEEK)  # polygon's
    request(db, "SPY", "d1", *SPY_WEEK)  # yahoo's
    env = {
        "POLYGON_API_KEY": POLYGON_KEY,
        "POLYGON_BASE_URL": "htp://user:Pa55@api.polygon.io",
        "YAHOO_BASE_URL": yahoo.base_url,
    }

    result = _pgbars_work(dsn, env, *(["--strict"] if strict else []))

    mentions = [line for line in result.output.splitlines() if "POLYGON_BASE_URL" in line]
    warning = (
        "WARNING provider_misconfigured provider=polygon reason=\"POLYGON_BASE_URL has scheme 'htp', not"
        ' http or https (an http(s) URL with a host is needed); polygon is not used in this run"'
    )
    assert len([line for line in mentions if "provider_misconfigured" in line]) == 1
    assert mentions[0].endswith(warning)
    assert "Pa55" not in result.output and "api.polygon.io" not in result.output
    # The other provider ran; polygon's chunk was never claimed, nor any call made.
    assert _states(db, "SPY", timeframe="d1") == [("done", 1)]
    assert _states(db, "AAPL") == [("pending", 0)]
    assert _calls(db) == []
    if strict:
        assert result.exit_code == 3, result.output
        assert result.output.splitlines()[-1].startswith(
            "pgbars: --strict: polygon: POLYGON_BASE_URL has scheme"
        )
    else:
        assert result.exit_code == 0, result.output


def test_no_usable_provider_left_says_why_in_one_line(dsn: str, db: psycopg.Connection[Any]) -> None:
    request(db, "SPY", "d1", *SPY_WEEK)
    result = _pgbars_work(dsn, {"YAHOO_BASE_URL": "localhost:9"})

    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("pgbars: error: no usable provider")
    assert "YAHOO_BASE_URL has scheme 'localhost', not http or https" in line
    assert _states(db, "SPY", timeframe="d1") == [("pending", 0)]


async def test_a_request_url_httpx_refuses_stops_the_provider_and_gives_the_chunk_back(
    dsn: str, db: psycopg.Connection[Any], caplog: Any
) -> None:
    """The guard at request time, for a URL only httpx finds unusable (here a NUL byte)."""
    capture_worker_logs(caplog)
    request(db, "AAPL", "h1", *WEEK)
    request(db, "MSFT", "h1", *WEEK)
    pool = await pgbars_db.open_worker_pool(dsn, 2)
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            provider = PolygonProvider(client, "http://api.polygon.io\x00x", POLYGON_KEY)
            summary = await work.Worker(pool, {"polygon": provider}, config(concurrency=1)).run()
    finally:
        await pool.close()

    assert [r.outcome for r in summary.reports] == ["released"]  # the second chunk is not tried
    assert "POLYGON_BASE_URL" in summary.refused["polygon"]
    assert _states(db, "AAPL", "MSFT") == [("pending", 0), ("pending", 0)]
    assert "provider_refused provider=polygon" in work_log(caplog)
    assert summary.stopped_by == "no provider left"
    assert scalar(db, "SELECT unreachable_streak FROM pgbars.providers WHERE name = 'polygon'") == 0
