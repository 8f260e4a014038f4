"""Corporate actions: refreshes down the lease path, one raw basis, adjusted reads, conflicts.

A split-adjusted provider's bars (Yahoo) are converted to raw when stored with
the splits known then, and reconciled when a split is learned later; get_bars
adjusts on read; corporate_action_conflicts and price_basis_issues show what
could not be reconciled.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import as_role, scalar, seed, set_clock, stage

NEW_YORK = ZoneInfo("America/New_York")
SPLIT = dt.date(2024, 6, 10)  # NVDA's 10-for-1: the first session on the new basis


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), NEW_YORK)


def claim(
    conn: psycopg.Connection[Any], providers: Sequence[str], kinds: Sequence[str], limit: int = 10
) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM pgbars.claim_leases('w', %s, %s, '5 minutes', NULL, %s)",
        (list(providers), limit, list(kinds)),
    ).fetchall()


def stage_actions(conn: psycopg.Connection[Any], lease_id: Any, actions: Sequence[Sequence[Any]]) -> None:
    """(kind, ex_date, split_from, split_to, cash_amount, currency) rows, as the worker COPYs them."""
    for kind, ex_date, split_from, split_to, amount, currency in actions:
        conn.execute(
            "INSERT INTO pgbars.staged_actions"
            " (lease_id, kind, ex_date, split_from, split_to, cash_amount, currency, reference)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, NULL)",
            (lease_id, kind, ex_date, split_from, split_to, amount, currency),
        )


def store(conn: psycopg.Connection[Any], lease_id: Any) -> tuple[int, int, int]:
    row = conn.execute("SELECT * FROM pgbars.store_lease(%s, 1)", (lease_id,)).fetchone()
    assert row is not None
    return (row[0], row[1], row[2])


def report_actions(
    conn: psycopg.Connection[Any], provider: str, actions: Sequence[Sequence[Any]]
) -> tuple[int, int, int]:
    """Claim the provider's due action refresh and store these actions for it."""
    (lease,) = claim(conn, [provider], ["actions"], limit=1)
    assert lease["kind"] == "actions" and lease["provider"] == provider
    stage_actions(conn, lease["lease_id"], actions)
    return store(conn, lease["lease_id"])


def store_chunk(conn: psycopg.Connection[Any], provider: str, bars: Sequence[Sequence[Any]]) -> None:
    (lease,) = claim(conn, [provider], ["history"], limit=1)
    stage(conn, lease["lease_id"], bars)
    store(conn, lease["lease_id"])


def stored(conn: psycopg.Connection[Any], ticker: str, timeframe: str) -> dict[dt.date, tuple[float, int]]:
    rows = conn.execute(
        "SELECT b.ts, b.close, b.volume FROM pgbars.ohlc_bars_v2 b"
        " JOIN pgbars.symbols s ON s.id = b.symbol_id"
        " WHERE s.ticker = %s AND b.timeframe = %s ORDER BY b.ts",
        (ticker, timeframe),
    ).fetchall()
    return {ts.astimezone(NEW_YORK).date(): (close, volume) for ts, close, volume in rows}


def read(
    conn: psycopg.Connection[Any], ticker: str, timeframe: str, adjust: str
) -> dict[dt.date, tuple[float, float, int]]:
    rows = conn.execute(
        "SELECT ts, open, close, volume FROM pgbars.get_bars(%s, %s, '-infinity', 'infinity', %s)",
        (ticker, timeframe, adjust),
    ).fetchall()
    return {ts.astimezone(NEW_YORK).date(): (o, c, v) for ts, o, c, v in rows}


def daily(day: dt.date, close: float, volume: int) -> tuple[Any, ...]:
    """A d1 bar on the grid (00:00 New York of its session)."""
    return (midnight(day), close, close * 1.01, close * 0.99, close, volume)


@pytest.fixture
def nvda_d1(conn: psycopg.Connection[Any]) -> None:
    """NVDA's d1 job for the fortnight around its split: one Yahoo chunk, action refreshes due."""
    set_clock(conn)
    seed(conn, "NVDA", ["d1"], start=dt.date(2024, 6, 3), end=dt.date(2024, 6, 14))


# --- planning and leases ----------------------------------------------------------------------


def test_a_new_symbol_gets_a_refresh_per_source_claimed_before_its_chunks(
    conn: psycopg.Connection[Any], nvda_d1: None
) -> None:
    refreshes = conn.execute(
        "SELECT r.provider, r.attempts FROM pgbars.action_refreshes r ORDER BY r.provider"
    ).fetchall()
    assert refreshes == [("polygon", 0), ("yahoo", 0)]
    # One slot: the action refresh comes first, and shares the limit with the chunks.
    (first,) = claim(conn, ["yahoo"], ["actions", "history"], limit=1)
    assert (first["kind"], first["ticker"], first["timeframe"]) == ("actions", "NVDA", None)
    # the ex-dates from the symbol's earliest planned session to today (the planning clock)
    assert (first["first_session"], first["last_session"]) == (dt.date(2024, 6, 3), dt.date(2025, 1, 2))
    (second,) = claim(conn, ["yahoo"], ["actions", "history"], limit=1)
    assert second["kind"] == "history"
    assert claim(conn, ["yahoo"], ["actions", "history"]) == []


@pytest.mark.parametrize(
    ("worker", "limit", "lease", "message"),
    [(" ", 1, "5 minutes", "worker name is missing"), ("w", 0, "5 minutes", "limit must be at least 1"),
     ("w", 1, "0 seconds", "lease must be positive")],
)  # fmt: skip
def test_a_claim_with_bad_arguments_is_refused(
    conn: psycopg.Connection[Any], nvda_d1: None, worker: str, limit: int, lease: str, message: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute(
            "SELECT * FROM pgbars.claim_leases(%s, '{polygon}', %s, %s::interval, NULL, '{actions}')",
            (worker, limit, lease),
        )
    assert scalar(conn, "SELECT count(*) FROM pgbars.action_refreshes WHERE lease_id IS NOT NULL") == 0


def test_a_stored_refresh_is_due_again_after_its_sources_refresh_every(
    conn: psycopg.Connection[Any], nvda_d1: None
) -> None:
    assert report_actions(conn, "polygon", [("split", SPLIT, 1, 10, None, None)]) == (1, 1, 0)
    row = conn.execute(
        "SELECT due_at - refreshed_at, covered_from, covered_to, attempts, lease_id"
        " FROM pgbars.action_refreshes WHERE provider = 'polygon'"
    ).fetchone()
    assert row == (dt.timedelta(days=1), dt.date(2024, 6, 3), dt.date(2025, 1, 2), 0, None)
    assert claim(conn, ["polygon"], ["actions"]) == []
    # a window reaching further back makes it due at once
    seed(conn, "NVDA", ["d1"], start=dt.date(2024, 5, 1), end=dt.date(2024, 6, 14))
    (again,) = claim(conn, ["polygon"], ["actions"])
    assert again["first_session"] == dt.date(2024, 5, 1)


def test_failures_follow_the_lease_policy(conn: psycopg.Connection[Any], nvda_d1: None) -> None:
    def settle(kind: str, retry_after: float | None = None) -> str:
        conn.execute("UPDATE pgbars.action_refreshes SET due_at = now() - interval '1 hour'")
        (lease,) = claim(conn, ["polygon"], ["actions"])
        return str(
            scalar(
                conn,
                "SELECT outcome FROM pgbars.settle_lease(%s, %s, 'polygon: HTTP 500 apiKey=SECRET',"
                " make_interval(secs => %s))",
                (lease["lease_id"], kind, retry_after),
            )
        )

    conn.execute("UPDATE pgbars.providers SET retry_backoff = '1 second'")
    assert settle("rate_limited", 30) == "released"
    assert scalar(conn, "SELECT paused_until > now() FROM pgbars.providers WHERE name = 'polygon'")
    conn.execute("UPDATE pgbars.providers SET paused_until = NULL")
    assert scalar(conn, "SELECT attempts FROM pgbars.action_refreshes WHERE provider = 'polygon'") == 0
    assert [settle("transient"), settle("transient"), settle("transient")] == ["retry", "retry", "failed"]
    row = conn.execute(
        "SELECT attempts, due_at > now() + interval '23 hours', last_error, refreshed_at"
        " FROM pgbars.action_refreshes WHERE provider = 'polygon'"
    ).fetchone()
    assert row is not None
    assert row[:2] == (0, True)
    assert "SECRET" not in row[2] and row[3] is None
    issues = conn.execute(
        "SELECT issue, detail FROM pgbars.price_basis_issues WHERE symbol = 'NVDA'"
    ).fetchall()
    assert ("actions_not_fetched", "polygon: splits and dividends could not be fetched: " + row[2]) in issues
    # a lease no longer held
    with pytest.raises(psycopg.Error, match="no longer held") as caught:
        store(conn, "00000000-0000-0000-0000-000000000000")
    assert caught.value.sqlstate == "PB001"


def test_two_actions_of_one_kind_and_date_are_refused_whole(
    conn: psycopg.Connection[Any], nvda_d1: None
) -> None:
    (lease,) = claim(conn, ["polygon"], ["actions"])
    stage_actions(
        conn, lease["lease_id"], [("split", SPLIT, 1, 10, None, None), ("split", SPLIT, 1, 4, None, None)]
    )
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="share an ex-date"):
        store(conn, lease["lease_id"])
    assert scalar(conn, "SELECT count(*) FROM pgbars.corporate_action_reports") == 0


def test_rejected_rows_are_quarantined_with_secrets_masked(
    conn: psycopg.Connection[Any], nvda_d1: None
) -> None:
    (lease,) = claim(conn, ["polygon"], ["actions"])
    stage(
        conn,
        lease["lease_id"],
        [],
        [(None, {"split_to": 0, "url": "x?apiKey=SECRET"}, "split_to is not positive")],
    )
    assert store(conn, lease["lease_id"]) == (0, 0, 1)
    raw, reason = conn.execute("SELECT raw::text, reason FROM pgbars.rejected_actions").fetchone() or ("", "")
    assert reason == "split_to is not positive" and "SECRET" not in raw


# --- one raw basis ------------------------------------------------------------------------------


def test_yahoo_bars_are_stored_raw_when_the_split_is_known(
    conn: psycopg.Connection[Any], nvda_d1: None
) -> None:
    report_actions(conn, "polygon", [("split", SPLIT, 1, 10, None, None)])
    # Yahoo serves split-adjusted values: before the split, a tenth of the traded price
    store_chunk(conn, "yahoo", [daily(dt.date(2024, 6, 7), 120.0, 4_000), daily(SPLIT, 121.0, 3_900)])
    assert stored(conn, "NVDA", "d1") == {dt.date(2024, 6, 7): (1200.0, 400), SPLIT: (121.0, 3_900)}
    # adjusted on read; the split day itself is as traded
    assert read(conn, "NVDA", "d1", "none") == {
        dt.date(2024, 6, 7): (1200.0, 1200.0, 400),
        SPLIT: (121.0, 121.0, 3_900),
    }
    splits = read(conn, "NVDA", "d1", "splits")
    assert splits[dt.date(2024, 6, 7)][1:] == pytest.approx((120.0, 4_000))
    assert splits[SPLIT] == (121.0, 121.0, 3_900)
    assert read(conn, "NVDA", "d1", "all") == splits


def test_a_split_learned_after_the_bars_reconciles_them_without_a_request(
    conn: psycopg.Connection[Any], nvda_d1: None
) -> None:
    store_chunk(
        conn,
        "yahoo",
        [
            daily(dt.date(2024, 6, 5), 119.0, 5_000),
            daily(dt.date(2024, 6, 7), 120.0, 4_000),
            daily(SPLIT, 121.0, 3_900),
        ],
    )
    # This bar was fetched before the split: Yahoo served it as traded, and it stays so.
    conn.execute(
        "UPDATE pgbars.ohlc_bars_v2 SET close = 1190, open = 1190, high = 1200, low = 1180, volume = 500,"
        " fetched_at = '2024-06-06 20:00 America/New_York' WHERE ts = %s",
        (midnight(dt.date(2024, 6, 5)),),
    )
    assert stored(conn, "NVDA", "d1")[dt.date(2024, 6, 7)] == (120.0, 4_000)  # unreconciled, and said so
    assert "actions_not_fetched" in {
        issue for (issue,) in conn.execute("SELECT issue FROM pgbars.price_basis_issues").fetchall()
    }
    calls = scalar(conn, "SELECT count(*) FROM pgbars.provider_calls")

    assert report_actions(conn, "polygon", [("split", SPLIT, 1, 10, None, None)]) == (1, 1, 0)
    assert stored(conn, "NVDA", "d1") == {
        dt.date(2024, 6, 5): (1190.0, 500),
        dt.date(2024, 6, 7): (1200.0, 400),
        SPLIT: (121.0, 3_900),
    }
    assert read(conn, "NVDA", "d1", "splits")[dt.date(2024, 6, 5)][1:] == pytest.approx((119.0, 5_000))
    assert scalar(conn, "SELECT count(*) FROM pgbars.provider_calls") == calls
    # the same report again changes nothing
    conn.execute("UPDATE pgbars.action_refreshes SET due_at = now()")
    assert report_actions(conn, "polygon", [("split", SPLIT, 1, 10, None, None)]) == (1, 0, 0)
    assert stored(conn, "NVDA", "d1")[dt.date(2024, 6, 7)] == (1200.0, 400)


def test_polygon_bars_are_raw_already_and_never_converted(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    conn.execute(
        "UPDATE pgbars.provider_routes SET enabled = false WHERE timeframe = 'd1' AND provider = 'yahoo'"
    )
    seed(conn, "NVDA", ["d1"], start=dt.date(2024, 6, 3), end=dt.date(2024, 6, 14))
    report_actions(conn, "polygon", [("split", SPLIT, 1, 10, None, None)])
    store_chunk(conn, "polygon", [daily(dt.date(2024, 6, 7), 1200.0, 400)])
    report_actions(conn, "yahoo", [("split", SPLIT, 1, 10, None, None)])
    assert stored(conn, "NVDA", "d1") == {dt.date(2024, 6, 7): (1200.0, 400)}


def test_a_changed_ratio_rescales_what_it_converted(conn: psycopg.Connection[Any], nvda_d1: None) -> None:
    report_actions(conn, "yahoo", [("split", SPLIT, 1, 4, None, None)])
    store_chunk(conn, "yahoo", [daily(dt.date(2024, 6, 7), 120.0, 4_000)])
    assert stored(conn, "NVDA", "d1") == {dt.date(2024, 6, 7): (480.0, 1_000)}
    # Polygon, the preferred source, says 10-for-1: it is in force, and the conflict is shown
    report_actions(conn, "polygon", [("split", SPLIT, 1, 10, None, None)])
    assert stored(conn, "NVDA", "d1") == {dt.date(2024, 6, 7): (1200.0, 400)}
    conflict = conn.execute(
        "SELECT kind, ex_date, issue, in_force_from, reports FROM pgbars.corporate_action_conflicts"
    ).fetchall()
    assert conflict == [
        (
            "split",
            SPLIT,
            "the providers report different ratios",
            "polygon",
            {"polygon": "10-for-1", "yahoo": "4-for-1"},
        )
    ]
    assert scalar(conn, "SELECT count(*) FROM pgbars.price_basis_issues WHERE issue = 'action_conflict'") == 1


# --- reads ----------------------------------------------------------------------------------------


def test_a_dividend_moves_all_and_not_splits(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    conn.execute(
        "UPDATE pgbars.provider_routes SET enabled = false WHERE timeframe = 'd1' AND provider = 'yahoo'"
    )
    seed(conn, "NVDA", ["d1"], start=dt.date(2024, 3, 1), end=dt.date(2024, 3, 8))
    ex = dt.date(2024, 3, 5)
    report_actions(
        conn, "polygon", [("dividend", ex, None, None, 0.04, "USD"), ("split", SPLIT, 1, 10, None, None)]
    )
    store_chunk(conn, "polygon", [daily(dt.date(2024, 3, 4), 800.0, 100), daily(ex, 810.0, 100)])
    none = read(conn, "NVDA", "d1", "none")
    splits = read(conn, "NVDA", "d1", "splits")
    every = read(conn, "NVDA", "d1", "all")
    assert none[ex] == (810.0, 810.0, 100)
    assert splits[dt.date(2024, 3, 4)] == pytest.approx((80.0, 80.0, 1_000))
    assert splits[ex] == pytest.approx((81.0, 81.0, 1_000))
    factor = 1 - 0.04 / 800.0  # CRSP: the amount over the previous session's close
    assert every[dt.date(2024, 3, 4)] == pytest.approx((80.0 * factor, 80.0 * factor, 1_000))
    assert every[ex] == splits[ex]  # the ex-date itself is after the dividend
    # Yahoo reports the same dividend split-adjusted (0.004): made raw, it agrees
    report_actions(
        conn, "yahoo", [("dividend", ex, None, None, 0.004, "USD"), ("split", SPLIT, 1, 10, None, None)]
    )
    assert conn.execute("SELECT count(*) FROM pgbars.corporate_action_conflicts").fetchone() == (0,)
    # learned later, a dividend changes `all` at once (no bar touched)
    before = conn.execute("SELECT max(fetched_at) FROM pgbars.ohlc_bars_v2").fetchone()
    conn.execute("UPDATE pgbars.action_refreshes SET due_at = now() WHERE provider = 'polygon'")
    report_actions(
        conn,
        "polygon",
        [
            ("dividend", ex, None, None, 0.04, "USD"),
            ("dividend", dt.date(2024, 3, 6), None, None, 8.1, "USD"),
            ("split", SPLIT, 1, 10, None, None),
        ],
    )
    assert read(conn, "NVDA", "d1", "all")[ex][1] == pytest.approx(81.0 * (1 - 8.1 / 810.0))
    assert conn.execute("SELECT max(fetched_at) FROM pgbars.ohlc_bars_v2").fetchone() == before
    # a dividend with no close before it cannot be applied, and says so
    conn.execute("UPDATE pgbars.action_refreshes SET due_at = now() WHERE provider = 'yahoo'")
    report_actions(conn, "yahoo", [("dividend", dt.date(2024, 3, 7), None, None, 0.004, "USD")])
    assert conn.execute(
        "SELECT issue FROM pgbars.price_basis_issues WHERE issue = 'dividend_not_applied'"
    ).fetchall() == [("dividend_not_applied",)]


def test_a_week_holding_a_split_is_derived_on_its_last_sessions_basis(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    conn.execute(
        "UPDATE pgbars.provider_routes SET enabled = false WHERE timeframe = 'd1' AND provider = 'yahoo'"
    )
    seed(conn, "NVDA", ["d1", "w1"], start=dt.date(2024, 6, 3), end=dt.date(2024, 6, 14))
    ex = dt.date(2024, 6, 12)  # a Wednesday, to split a week
    days = [dt.date(2024, 6, d) for d in (3, 4, 5, 6, 7, 10, 11, 12, 13, 14)]
    store_chunk(conn, "polygon", [daily(d, 1000.0 if d < ex else 100.0, 10) for d in days])
    report_actions(conn, "polygon", [("split", ex, 1, 10, None, None)])
    weeks = read(conn, "NVDA", "w1", "none")
    # Monday June 10: its Monday and Tuesday at a tenth, so open and close compare
    assert weeks[dt.date(2024, 6, 10)] == pytest.approx((100.0, 100.0, 100 + 100 + 10 * 3))
    assert weeks[dt.date(2024, 6, 3)] == (1000.0, 1000.0, 50)
    adjusted = read(conn, "NVDA", "w1", "splits")
    assert adjusted[dt.date(2024, 6, 3)] == pytest.approx((100.0, 100.0, 500))
    assert adjusted[dt.date(2024, 6, 10)] == weeks[dt.date(2024, 6, 10)]


def test_an_unknown_adjustment_is_refused(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown adjustment 'raw'"):
        conn.execute("SELECT * FROM pgbars.get_bars('NVDA', 'd1', '-infinity', 'infinity', 'raw')")
    assert conn.execute(
        "SELECT count(*) FROM pgbars.get_bars('NVDA', 'd1', '-infinity', 'infinity', ' ALL ')"
    ).fetchone() == (0,)


# --- roles ----------------------------------------------------------------------------------------


def test_the_worker_role_writes_actions_only_through_its_lease(
    conn: psycopg.Connection[Any], nvda_d1: None
) -> None:
    with as_role(conn, "pgbars_worker"):
        assert report_actions(conn, "polygon", [("split", SPLIT, 1, 10, None, None)]) == (1, 1, 0)
        for statement in (
            "UPDATE pgbars.corporate_actions SET split_to = 4",
            "DELETE FROM pgbars.corporate_action_reports",
            "SELECT pgbars._apply_corporate_actions(gen_random_uuid())",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with as_role(conn, "pgbars_reader"):
        assert read(conn, "NVDA", "d1", "splits") == {}
        assert conn.execute("SELECT count(*) FROM pgbars.corporate_actions").fetchone() == (1,)


@pytest.mark.parametrize("first", ["bars", "split"])
def test_a_split_learned_while_yahoo_bars_are_stored_is_applied_once(
    conn: psycopg.Connection[Any], nvda_d1: None, connect: Callable[[], psycopg.Connection[Any]], first: str
) -> None:
    """Two sessions at once: whichever commits first, the bars end raw, converted exactly once."""
    (chunk,) = claim(conn, ["yahoo"], ["history"])
    (refresh,) = claim(conn, ["polygon"], ["actions"])
    bars_session, split_session = connect(), connect()
    for session in (bars_session, split_session):
        set_clock(session)
    stage(conn, chunk["lease_id"], [daily(dt.date(2024, 6, 7), 120.0, 4_000)])
    stage_actions(conn, refresh["lease_id"], [("split", SPLIT, 1, 10, None, None)])
    holder, waiter = (bars_session, split_session) if first == "bars" else (split_session, bars_session)
    held = chunk if first == "bars" else refresh
    waiting = refresh if first == "bars" else chunk
    with holder.transaction():
        holder.execute("SELECT * FROM pgbars.store_lease(%s, 1)", (held["lease_id"],))
        other = threading.Thread(
            target=lambda: waiter.execute("SELECT * FROM pgbars.store_lease(%s, 1)", (waiting["lease_id"],))
        )
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive()  # it waits for the symbol's actions lock
    other.join(timeout=10)
    assert not other.is_alive()
    assert stored(conn, "NVDA", "d1") == {dt.date(2024, 6, 7): (1200.0, 400)}
