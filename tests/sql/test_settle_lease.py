"""pgbars.settle_lease: the failure policy, for history chunks and live refreshes alike."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunk, scalar, seed, set_clock

IN_SESSION = "2025-01-02 12:00 America/New_York"


def claim_chunk(conn: psycopg.Connection[Any], providers: tuple[str, ...] = ("polygon",)) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks('worker-a', %s, 1)", (list(providers),)
    ).fetchone()
    assert row is not None
    return row


def claim_refresh(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute("SELECT * FROM pgbars.claim_live_refreshes('worker-a', '{tradier}', 1)").fetchone()
    assert row is not None
    return row


def settle(
    conn: psycopg.Connection[Any],
    lease_id: uuid.UUID,
    kind: str,
    error: str | None = "polygon: HTTP 502",
    retry_after: dt.timedelta | None = None,
) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute(
        "SELECT * FROM pgbars.settle_lease(%s, %s, %s, %s)", (lease_id, kind, error, retry_after)
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def leased(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """A claimed h1 chunk of AAPL (one chunk, December 2024)."""
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    return claim_chunk(conn)


def test_rate_limited_pauses_the_provider_and_releases_without_an_attempt(
    conn: psycopg.Connection[Any], leased: dict[str, Any]
) -> None:
    now = scalar(conn, "SELECT now()")
    settled = settle(conn, leased["lease_id"], "rate_limited", "HTTP 429", dt.timedelta(seconds=30))
    paused = scalar(conn, "SELECT paused_until FROM pgbars.providers WHERE name = 'polygon'")
    assert settled == {"outcome": "released", "paused_until": paused, "moved_to": None}
    assert dt.timedelta(seconds=29) < paused - now <= dt.timedelta(seconds=31)
    row = chunk(conn, leased["chunk_id"])
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("pending", 0, paused)


def test_rate_limited_without_retry_after_pauses_one_window(
    conn: psycopg.Connection[Any], leased: dict[str, Any]
) -> None:
    now = scalar(conn, "SELECT now()")
    settled = settle(conn, leased["lease_id"], "rate_limited", "HTTP 429")
    assert abs(settled["paused_until"] - now - dt.timedelta(seconds=60)) < dt.timedelta(seconds=1)  # a window


@pytest.mark.parametrize("kind", ["refused", "unfinished"])
def test_refused_and_unfinished_give_the_chunk_back_unspent(
    conn: psycopg.Connection[Any], leased: dict[str, Any], kind: str
) -> None:
    assert settle(conn, leased["lease_id"], kind, "why")["outcome"] == "released"
    row = chunk(conn, leased["chunk_id"])
    assert (row["status"], row["attempts"], row["lease_id"]) == ("pending", 0, None)
    assert scalar(conn, "SELECT paused_until FROM pgbars.providers WHERE name = 'polygon'") is None


def _breaker(conn: psycopg.Connection[Any], provider: str = "polygon") -> tuple[int, Any]:
    row = conn.execute(
        "SELECT unreachable_streak, paused_until FROM pgbars.providers WHERE name = %s", (provider,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_unreachable_gives_the_chunk_back_unspent_and_the_third_in_a_row_pauses_the_provider(
    conn: psycopg.Connection[Any], leased: dict[str, Any]
) -> None:
    now = scalar(conn, "SELECT now()")
    lease_id = leased["lease_id"]
    settled = []
    for _ in range(3):
        settled.append(settle(conn, lease_id, "unreachable", "polygon: unreachable, connection failed"))
        row = chunk(conn, leased["chunk_id"])
        assert (row["status"], row["attempts"], row["lease_id"]) == ("pending", 0, None)
        if settled[-1]["paused_until"] is None:
            lease_id = claim_chunk(conn)["lease_id"]  # due again at once: the breaker is closed

    assert [s["outcome"] for s in settled] == ["released"] * 3
    assert [s["paused_until"] is None for s in settled] == [True, True, False]
    streak, paused = _breaker(conn)
    assert streak == 3 and settled[-1]["paused_until"] == paused
    assert dt.timedelta(seconds=30) <= paused - now < dt.timedelta(seconds=31)
    row = chunk(conn, leased["chunk_id"])
    # The pause alone holds the chunk back: an owner who clears it frees the chunk at once.
    assert row["next_attempt_at"] <= scalar(conn, "SELECT now()")
    assert row["last_error"] == "polygon: unreachable, connection failed"
    # every worker: paused providers are not claimed
    assert (
        conn.execute("SELECT * FROM pgbars.claim_backfill_chunks('worker-b', '{polygon}', 1)").fetchall()
        == []
    )


@pytest.mark.parametrize(
    ("streak_before", "pause"),
    [(2, "30 seconds"), (3, "60 seconds"), (4, "120 seconds"), (7, "15 minutes"), (5000, "15 minutes")],
)
def test_the_breakers_pause_doubles_with_each_further_failure_up_to_15_minutes(
    conn: psycopg.Connection[Any], leased: dict[str, Any], streak_before: int, pause: str
) -> None:
    conn.execute(
        "UPDATE pgbars.providers SET unreachable_streak = %s WHERE name = 'polygon'", (streak_before,)
    )
    before = scalar(conn, "SELECT now()")
    settled = settle(conn, leased["lease_id"], "unreachable")
    expected = scalar(conn, "SELECT %s::interval", (pause,))
    assert expected <= settled["paused_until"] - before < expected + dt.timedelta(seconds=1)
    assert _breaker(conn)[0] == streak_before + 1


def test_the_breaker_never_shortens_a_longer_pause(
    conn: psycopg.Connection[Any], leased: dict[str, Any]
) -> None:
    conn.execute(
        "UPDATE pgbars.providers SET unreachable_streak = 2, paused_until = now() + interval '1 hour'"
        " WHERE name = 'polygon'"
    )
    paused = scalar(conn, "SELECT paused_until FROM pgbars.providers WHERE name = 'polygon'")
    assert settle(conn, leased["lease_id"], "unreachable")["paused_until"] == paused


def test_a_live_refresh_counts_towards_the_breaker_too(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn, IN_SESSION)
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    conn.execute("UPDATE pgbars.providers SET unreachable_streak = 2 WHERE name = 'tradier'")

    settled = settle(conn, claim_refresh(conn)["lease_id"], "unreachable", "tradier: unreachable")

    assert settled["outcome"] == "released"
    assert settled["paused_until"] == _breaker(conn, "tradier")[1] is not None
    again = conn.execute("SELECT count(*) FROM pgbars.claim_live_refreshes('worker-b', '{tradier}', 1)")
    assert again.fetchone() == (0,)  # not before the pause ends


def test_transient_is_retried_after_a_backoff_then_fails_after_the_last_attempt(
    conn: psycopg.Connection[Any], leased: dict[str, Any]
) -> None:
    outcomes = [settle(conn, leased["lease_id"], "transient")["outcome"]]
    for _ in range(2):
        conn.execute("UPDATE pgbars.backfill_chunks SET next_attempt_at = now() - interval '1 second'")
        outcomes.append(settle(conn, claim_chunk(conn)["lease_id"], "transient")["outcome"])
    assert outcomes == ["retry", "retry", "failed"]
    row = chunk(conn, leased["chunk_id"])
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 3, "polygon: HTTP 502")


def test_permanent_fails_at_once(conn: psycopg.Connection[Any], leased: dict[str, Any]) -> None:
    assert settle(conn, leased["lease_id"], "permanent", "HTTP 400 bad request")["outcome"] == "failed"
    assert chunk(conn, leased["chunk_id"])["status"] == "failed"


def test_not_covered_moves_the_chunk_to_the_next_route_or_fails_it(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "SPY", ["d1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    first = claim_chunk(conn, ("yahoo",))
    assert settle(conn, first["lease_id"], "not_covered", "yahoo: HTTP 404")["moved_to"] == "polygon"
    assert chunk(conn, first["chunk_id"])["provider"] == "polygon"
    second = claim_chunk(conn, ("polygon",))
    settled = settle(conn, second["lease_id"], "not_covered", "polygon: NOT_AUTHORIZED")
    assert settled == {"outcome": "failed", "paused_until": None, "moved_to": None}


def test_errors_are_stored_without_secrets(conn: psycopg.Connection[Any], leased: dict[str, Any]) -> None:
    settle(conn, leased["lease_id"], "permanent", "GET /v2?apiKey=pk-secret-123 refused")
    assert "pk-secret-123" not in chunk(conn, leased["chunk_id"])["last_error"]


def test_a_lease_no_longer_held_raises_pb001_and_changes_nothing(
    conn: psycopg.Connection[Any], leased: dict[str, Any]
) -> None:
    settle(conn, leased["lease_id"], "unfinished", "stopping")
    before = chunk(conn, leased["chunk_id"])
    with pytest.raises(psycopg.Error) as raised:
        settle(conn, leased["lease_id"], "permanent")
    assert raised.value.sqlstate == "PB001"
    assert chunk(conn, leased["chunk_id"]) == before


def test_an_unknown_kind_is_refused(conn: psycopg.Connection[Any], leased: dict[str, Any]) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown failure kind 'oops'"):
        settle(conn, leased["lease_id"], "oops")
    assert chunk(conn, leased["chunk_id"])["status"] == "running"


# --- live refreshes: released in every case, the error kept unless it was a 429 -------------


@pytest.mark.parametrize(
    ("kind", "outcome", "error_kept"),
    [
        ("rate_limited", "released", False),
        ("refused", "released", True),
        ("unfinished", "released", True),
        ("unreachable", "released", True),
        ("not_covered", "failed", True),
        ("transient", "failed", True),
        ("permanent", "failed", True),
    ],
)
def test_a_live_refresh_is_released_and_due_again_or_failed_and_due_at_its_retry_at(
    conn: psycopg.Connection[Any], kind: str, outcome: str, error_kept: bool
) -> None:
    set_clock(conn, IN_SESSION)
    conn.execute("SELECT pgbars.add_to_watchlist('AAPL')")
    refresh = claim_refresh(conn)

    settled = settle(conn, refresh["lease_id"], kind, "tradier: HTTP 503")

    assert settled["outcome"] == outcome
    assert (settled["paused_until"] is not None) == (kind == "rate_limited")
    row = conn.execute(
        "SELECT lease_id, last_error, failures, retry_at > now() FROM pgbars.live_refreshes"
    ).fetchone()
    failed = outcome == "failed"
    assert row == (None, "tradier: HTTP 503" if error_kept else None, int(failed), True if failed else None)
    again = conn.execute("SELECT count(*) FROM pgbars.claim_live_refreshes('worker-b', '{tradier}', 1)")
    # released: due again at once (after a 429, once the provider's pause is over);
    # failed: at its retry_at, 5 s on
    assert again.fetchone() == ((0,) if kind == "rate_limited" or failed else (1,))
    if failed:
        conn.execute("UPDATE pgbars.live_refreshes SET retry_at = now()")
        again = conn.execute("SELECT count(*) FROM pgbars.claim_live_refreshes('worker-b', '{tradier}', 1)")
        assert again.fetchone() == (1,)


def test_the_worker_role_may_settle(conn: psycopg.Connection[Any], leased: dict[str, Any]) -> None:
    conn.execute("SET ROLE pgbars_worker")
    try:
        assert settle(conn, leased["lease_id"], "transient")["outcome"] == "retry"
    finally:
        conn.execute("RESET ROLE")
