"""Each class of provider failure, as `pgbars work` records it in the database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.integration.helpers import (
    POLYGON_KEY,
    TRADIER_TOKEN,
    capture_worker_logs,
    chunk_rows,
    config,
    request,
    scalar,
    served,
    stored,
    work_log,
)
from worker import work
from worker.emulator import Fault, PolygonServer, RecordedRequest, Reply, YahooServer

D = dt.date
WEEK = (D(2024, 12, 2), D(2024, 12, 6))  # one h1 chunk of five sessions


def _chunk(conn: psycopg.Connection[Any], ticker: str = "AAPL", timeframe: str = "h1") -> dict[str, Any]:
    (row,) = chunk_rows(conn, ticker, timeframe)
    return row


def _calls(conn: psycopg.Connection[Any], provider: str = "polygon") -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT status, http_status, error, duration_ms FROM pgbars.provider_calls"
        " WHERE provider = %s ORDER BY starts_at",
        (provider,),
    ).fetchall()


async def test_429_pauses_the_provider_and_retries_after_retry_after(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(Fault.rate_limited(retry_after="2"))

    summary = await work.run(dsn, env, config())

    # Released without an attempt, waited out the pause, then done in the same run.
    assert [r.outcome for r in summary.reports] == ["released", "done"]
    assert summary.rate_limited["polygon"] == 1
    row = _chunk(db)
    assert (row["status"], row["attempts"]) == ("done", 1)
    first, second = polygon.requests
    assert second.monotonic - first.monotonic >= 2.0
    assert [(c["status"], c["http_status"]) for c in _calls(db)] == [("completed", 429), ("completed", 200)]
    paused_until = scalar(db, "SELECT paused_until FROM pgbars.providers WHERE name = 'polygon'")
    assert paused_until is not None
    assert stored(db, "AAPL", "h1") == served("AAPL", "h1", *WEEK)


async def test_429_without_retry_after_pauses_one_window(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    db.execute("UPDATE pgbars.providers SET window_length = '3 seconds' WHERE name = 'polygon'")
    polygon.inject(Fault.rate_limited(retry_after=None))

    summary = await work.run(dsn, env, config(max_seconds=2.0))

    # The pause (one 3 s window) outlasts the 2 s budget: the chunk waits, unspent.
    assert [r.outcome for r in summary.reports] == ["released"]
    row = _chunk(db)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert "HTTP 429" in row["last_error"]
    gap = scalar(
        db,
        "SELECT extract(EPOCH FROM p.paused_until - c.starts_at) FROM pgbars.providers AS p,"
        " pgbars.provider_calls AS c WHERE p.name = 'polygon' AND c.provider = 'polygon'",
    )
    assert 2.5 < float(gap) < 4.0
    assert row["next_attempt_at"] >= scalar(
        db, "SELECT paused_until FROM pgbars.providers WHERE name = 'polygon'"
    )


@pytest.mark.parametrize(
    ("fault", "message", "http_status"),
    [
        (Fault.server_error(503), "HTTP 503", 503),
        (Fault.truncated(), "connection failed while reading the answer", 200),
        (Fault.malformed_json(), "malformed JSON", 200),
        (Fault.null_results(), "results missing", 200),
        (Fault.provider_error(), "status 'ERROR'", 200),
    ],
    ids=["5xx", "truncated", "malformed", "null-results", "status-error"],
)
async def test_transient_failures_are_retried_later_with_the_error_kept(
    dsn: str,
    db: psycopg.Connection[Any],
    env: dict[str, str],
    polygon: PolygonServer,
    fault: Fault,
    message: str,
    http_status: int | None,
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(fault)

    summary = await work.run(dsn, env, config(max_seconds=5.0), http_timeout=0.5)

    assert [r.outcome for r in summary.reports] == ["retry"]
    row = _chunk(db)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert message in row["last_error"]
    # Backoff: 60 s +/- 25 % for a first failure, so not again in this run.
    backoff = scalar(db, "SELECT extract(EPOCH FROM next_attempt_at - now()) FROM pgbars.backfill_chunks")
    assert 40 < float(backoff) <= 75
    assert summary.stopped_by == "nothing due before the budget ends"
    assert summary.seconds < 4.0  # it did not sit out the budget
    # The ledger has the call, its status (the status line arrived, even when the body broke
    # off; no answer at all is test_work_outages.py's) and the error.
    ((call,),) = [[c] for c in _calls(db)]
    assert (call["status"], call["http_status"]) == ("completed", http_status)
    assert message in call["error"]
    assert scalar(db, "SELECT count(*) FROM pgbars.ohlc_bars_v2") == 0


async def test_refused_key_stops_the_provider_for_the_run(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, caplog: Any
) -> None:
    capture_worker_logs(caplog)
    request(db, "AAPL", "h1", *WEEK)
    request(db, "MSFT", "h1", *WEEK)

    summary = await work.run(dsn, {**env, "POLYGON_API_KEY": "pk-wrong-0000"}, config(concurrency=1))

    assert [r.outcome for r in summary.reports] == ["released"]
    assert len(polygon.requests) == 1  # the second chunk was never tried with a refused key
    assert "POLYGON_API_KEY" in summary.refused["polygon"]
    for ticker in ("AAPL", "MSFT"):
        row = _chunk(db, ticker)
        assert (row["status"], row["attempts"]) == ("pending", 0)
    assert "provider_refused provider=polygon" in work_log(caplog)
    assert "refused POLYGON_API_KEY" in work_log(caplog)
    assert summary.stopped_by == "no provider left" or summary.stopped_by == "queue empty"


async def test_plan_refusal_moves_an_m5_chunk_to_yahoo(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, yahoo: YahooServer
) -> None:
    days = (D(2024, 12, 16), D(2024, 12, 20))  # inside Yahoo's 60-day m5 lookback
    request(db, "AAPL", "m5", *days)
    assert _chunk(db, timeframe="m5")["provider"] == "polygon"
    polygon.inject(Fault.not_authorized())

    summary = await work.run(dsn, env, config())

    assert [(r.outcome, r.lease.provider) for r in summary.reports] == [
        ("rerouted", "polygon"),
        ("done", "yahoo"),
    ]
    row = _chunk(db, timeframe="m5")
    assert (row["status"], row["provider"], row["attempts"]) == ("done", "yahoo", 1)
    assert stored(db, "AAPL", "m5", "polygon") == []
    assert len(stored(db, "AAPL", "m5", "yahoo")) == len(served("AAPL", "m5", *days))
    assert len(yahoo.requests) == 1


async def test_plan_refusal_without_another_route_fails_the_chunk(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    request(db, "AAPL", "h1", *WEEK)  # h1: Polygon only (Yahoo's hours are off the grid)
    polygon.inject(Fault.not_authorized())

    summary = await work.run(dsn, env, config())

    assert [r.outcome for r in summary.reports] == ["failed"]
    row = _chunk(db)
    assert row["status"] == "failed"
    assert "NOT_AUTHORIZED" in row["last_error"] or "plan" in row["last_error"]
    assert "no other route" in row["last_error"]
    assert len(polygon.requests) == 1


async def test_unknown_ticker_fails_with_a_clear_reason(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    request(db, "ZZZZ", "h1", *WEEK)
    polygon.inject(Fault.unknown_ticker())

    await work.run(dsn, env, config())

    row = _chunk(db, "ZZZZ")
    assert row["status"] == "failed"
    assert "HTTP 404" in row["last_error"] and "Ticker not found" in row["last_error"]


async def test_invalid_bars_are_quarantined_and_the_good_ones_written(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(
        Fault.invalid_bars("high_below_low", "off_grid", "duplicate", "outside_range", "null_volume")
    )

    summary = await work.run(dsn, env, config())

    (report,) = summary.reports
    assert report.outcome == "done"
    reasons = db.execute("SELECT reason, raw ? 't' FROM pgbars.rejected_bars ORDER BY reason").fetchall()
    assert sorted(reason for reason, _ in reasons) == sorted(
        ["high below low", "off grid", "duplicate timestamp", "outside chunk", "null volume"]
    )
    assert all(has_raw for _, has_raw in reasons)
    row = _chunk(db)
    assert (row["status"], row["bars_rejected"]) == ("done", 5)
    good = stored(db, "AAPL", "h1")
    assert row["bars_written"] == len(good) == report.bars_written
    # Every stored bar is one the server served; the spoiled ones are missing.
    expected = {bar[0]: bar for bar in served("AAPL", "h1", *WEEK)}
    assert all(expected[bar[0]] == bar for bar in good)
    assert len(expected) - len(good) in (2, 3)  # high-below-low, null volume (+ the off-grid one's slot)


async def test_an_empty_answer_is_recorded_as_zero_bars(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, caplog: Any
) -> None:
    capture_worker_logs(caplog)
    request(db, "AAPL", "h1", *WEEK)
    polygon.inject(Fault.empty())

    await work.run(dsn, env, config())

    row = _chunk(db)
    assert (row["status"], row["bars_written"]) == ("done", 0)
    assert 'detail="no bars for these sessions"' in work_log(caplog)


async def test_budget_releases_chunks_it_cannot_start(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer
) -> None:
    request(db, "AAPL", "h1", D(2024, 12, 2), D(2024, 12, 2))
    request(db, "MSFT", "h1", D(2024, 12, 2), D(2024, 12, 2))
    request(db, "NVDA", "h1", D(2024, 12, 2), D(2024, 12, 2))
    db.execute("UPDATE pgbars.providers SET calls_per_window = 1, window_length = '30 seconds'")

    summary = await work.run(dsn, env, config(max_seconds=3.0))

    assert sorted(r.outcome for r in summary.reports) == ["done", "released", "released"]
    rows = [_chunk(db, t) for t in ("AAPL", "MSFT", "NVDA")]
    assert sorted((r["status"], r["attempts"]) for r in rows) == [("done", 1), ("pending", 0), ("pending", 0)]
    assert len(polygon.requests) == 1
    # Nothing reserved for the calls that did not happen.
    assert scalar(db, "SELECT count(*) FROM pgbars.provider_calls WHERE status <> 'completed'") == 0
    assert scalar(db, "SELECT count(*) FROM pgbars.backfill_chunks WHERE status = 'running'") == 0


class _EchoingPolygon(PolygonServer):
    """A provider (or proxy) that repeats the credential it was sent in its error text."""

    def route(self, request: RecordedRequest, fault: Fault | None) -> Reply:
        sent = request.header("authorization") or ""
        return self.error_reply(500, f"upstream rejected {sent} for {request.target}")


async def test_no_secret_in_logs_stored_errors_or_exceptions(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], caplog: Any, capsys: Any
) -> None:
    capture_worker_logs(caplog)
    request(db, "AAPL", "h1", *WEEK)
    request(db, "MSFT", "h1", *WEEK)
    with _EchoingPolygon(POLYGON_KEY) as echoing:
        summary = await work.run(dsn, {**env, "POLYGON_BASE_URL": echoing.base_url}, config())
        assert len(echoing.requests) == 2

    assert sorted(r.outcome for r in summary.reports) == ["retry", "retry"]
    stored_text = " ".join(
        str(v)
        for row in db.execute(
            "SELECT last_error FROM pgbars.backfill_chunks UNION ALL SELECT error FROM pgbars.provider_calls"
        ).fetchall()
        for v in row
    )
    assert "upstream rejected" in stored_text
    everything = "\n".join(
        [
            stored_text,
            work_log(caplog),
            caplog.text,
            *capsys.readouterr(),
            *(r.detail for r in summary.reports),
        ]
    )
    for secret in (POLYGON_KEY, TRADIER_TOKEN):
        assert secret not in everything


async def test_an_unexpected_error_while_storing_fails_that_lease_and_the_run_goes_on(
    dsn: str, db: psycopg.Connection[Any], env: dict[str, str], polygon: PolygonServer, monkeypatch: Any
) -> None:
    """Whatever escapes the checks (a bug, a value COPY cannot take) fails one lease, never the run."""
    from worker.db import queue

    request(db, "AAPL", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    request(db, "MSFT", "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    stage = queue._stage
    calls = 0

    async def stage_then_overflow(*args: Any) -> None:
        nonlocal calls
        calls += 1
        await stage(*args)
        if calls == 1:
            raise OverflowError("int too big to convert")

    monkeypatch.setattr(queue, "_stage", stage_then_overflow)

    summary = await work.run(dsn, env, config(concurrency=1))

    outcomes = sorted((r.lease.ticker, r.outcome) for r in summary.reports)
    failed = [r for r in summary.reports if r.outcome == "failed"]
    assert len(failed) == 1 and len(outcomes) == 2 and sorted(o for _, o in outcomes) == ["done", "failed"]
    assert failed[0].detail == "polygon: unexpected OverflowError while storing"
    row = _chunk(db, failed[0].lease.ticker)
    assert (row["status"], row["last_error"], row["lease_id"]) == ("failed", failed[0].detail, None)
    # nothing of the failed store was written; the other chunk is whole
    assert stored(db, failed[0].lease.ticker, "h1") == []
    done = next(r for r in summary.reports if r.outcome == "done")
    assert stored(db, done.lease.ticker, "h1") == served(
        done.lease.ticker, "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6)
    )
