"""pgbars.derive_bars: h4 from h1 and w1 from d1, computed in SQL when a source chunk is stored.

Source bars come from the emulator's synthetic market and go through the real write path
(claim, the worker's staging tables, store_chunk_bars); the derived rows are compared with
bars computed here in Python, independently of the SQL, and with the emulator's own h4 and w1.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.sql.helpers import chunks, scalar, seed, set_clock, stage
from worker.emulator import synthetic
from worker.providers.grid import is_on_grid

NEW_YORK = ZoneInfo("America/New_York")
TICKER = "AAPL"
# DST starts 2024-03-10 and ends 2024-11-03; Thanksgiving week 2024-11-25 has a holiday
# (Thursday 28) and an early close (Friday 29, after-hours end 17:00). Whole weeks.
WINDOWS = [(dt.date(2024, 3, 4), dt.date(2024, 3, 15)), (dt.date(2024, 10, 28), dt.date(2024, 12, 6))]


@dataclass(frozen=True, slots=True)
class Bar:
    ts: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    vwap: float | None
    trade_count: int | None


def enable_w1(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE pgbars.derived_routes SET enabled = true WHERE timeframe = 'w1'")


def claim_all(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM pgbars.claim_backfill_chunks('test', '{polygon,yahoo}', 100)")
        .fetchall()
    )


def source_bars(ticker: str, timeframe: str, first: dt.date, last: dt.date) -> list[Bar]:
    return [
        Bar(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count)
        for b in synthetic.bars(ticker, timeframe, first, last)
    ]


def store(
    conn: psycopg.Connection[Any], claimed: dict[str, Any], bars: Sequence[Bar] | None = None
) -> tuple[int, int, int]:
    """What the worker does with a claimed chunk: stage its bars, store_chunk_bars, one transaction.

    Without `bars`, the synthetic market's bars of the chunk's ticker, timeframe and sessions.
    """
    if bars is None:
        bars = source_bars(
            claimed["ticker"], claimed["timeframe"], claimed["first_session"], claimed["last_session"]
        )
    with conn.transaction():
        stage(
            conn,
            claimed["lease_id"],
            [(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count) for b in bars],
        )
        row = conn.execute(
            "SELECT bars_written, bars_changed, bars_rejected FROM pgbars.store_chunk_bars(%s, %s)",
            (claimed["chunk_id"], claimed["lease_id"]),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def fetch_everything(conn: psycopg.Connection[Any]) -> None:
    """Claim and store every claimable chunk with the synthetic market's bars."""
    while claimed := claim_all(conn):
        for c in claimed:
            store(conn, c)


def stored(
    conn: psycopg.Connection[Any], timeframe: str, provider: str | None = None
) -> list[dict[str, Any]]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT xmin::text AS xmin, b.* FROM pgbars.ohlc_bars_v2 AS b WHERE timeframe = %s"
            " AND (%s::text IS NULL OR provider = %s) ORDER BY ts, provider",
            (timeframe, provider, provider),
        )
        .fetchall()
    )


def as_bars(rows: Iterable[dict[str, Any]]) -> list[Bar]:
    return [
        Bar(r["ts"], r["open"], r["high"], r["low"], r["close"], r["volume"], r["vwap"], r["trade_count"])
        for r in rows
    ]


def symbol_id(conn: psycopg.Connection[Any], ticker: str = TICKER) -> uuid.UUID:
    found = scalar(conn, "SELECT id FROM pgbars.symbols WHERE ticker = %s", (ticker,))
    assert isinstance(found, uuid.UUID)
    return found


def reopen(conn: psycopg.Connection[Any], chunk_id: int) -> dict[str, Any]:
    """Put a done chunk back to pending and claim it again (a re-fetch)."""
    conn.execute(
        "UPDATE pgbars.backfill_chunks SET status = 'pending', completed_at = NULL, next_attempt_at = now()"
        " WHERE id = %s",
        (chunk_id,),
    )
    (claimed,) = claim_all(conn)
    assert claimed["chunk_id"] == chunk_id
    return claimed


# --- the Python oracle: written from the rules, not from the SQL ---------------------------------


def h4_start(ts: dt.datetime) -> dt.datetime:
    """4-hour bucket of the New York wall clock, counted from midnight of the bar's New York date."""
    local = ts.astimezone(NEW_YORK)
    floored = dt.datetime(local.year, local.month, local.day, local.hour - local.hour % 4, tzinfo=NEW_YORK)
    return floored.astimezone(dt.UTC)


def w1_start(ts: dt.datetime) -> dt.datetime:
    """00:00 New York of the Monday of the ISO week of the bar's New York date."""
    day = ts.astimezone(NEW_YORK).date()
    monday = day - dt.timedelta(days=day.isoweekday() - 1)
    return dt.datetime(monday.year, monday.month, monday.day, tzinfo=NEW_YORK).astimezone(dt.UTC)


def aggregate(bars: Iterable[Bar], bucket: Callable[[dt.datetime], dt.datetime]) -> list[Bar]:
    groups: dict[dt.datetime, list[Bar]] = defaultdict(list)
    for bar in sorted(bars, key=lambda b: b.ts):
        groups[bucket(bar.ts)].append(bar)
    out = []
    for start, parts in sorted(groups.items()):
        weighted = [p for p in parts if p.vwap is not None and p.volume > 0]
        counts = [p.trade_count for p in parts if p.trade_count is not None]
        out.append(
            Bar(
                ts=start,
                open=parts[0].open,
                high=max(p.high for p in parts),
                low=min(p.low for p in parts),
                close=parts[-1].close,
                volume=sum(p.volume for p in parts),
                vwap=(
                    sum(p.vwap * p.volume for p in weighted if p.vwap is not None)
                    / sum(p.volume for p in weighted)
                    if weighted
                    else None
                ),
                trade_count=sum(counts) if counts else None,
            )
        )
    return out


def assert_same_bars(got: Sequence[Bar], want: Sequence[Bar], *, vwap_abs: float | None = None) -> None:
    """Equal ts, OHLC, volume and trade count; vwap to 1e-12 relative (or `vwap_abs`)."""
    assert [b.ts for b in got] == [b.ts for b in want]
    for g, w in zip(got, want, strict=True):
        assert (g.ts, g.open, g.high, g.low, g.close, g.volume, g.trade_count) == (
            w.ts,
            w.open,
            w.high,
            w.low,
            w.close,
            w.volume,
            w.trade_count,
        )
        if w.vwap is None:
            assert g.vwap is None, g.ts
        elif vwap_abs is None:
            assert g.vwap == pytest.approx(w.vwap, rel=1e-12), g.ts
        else:
            assert g.vwap == pytest.approx(w.vwap, abs=vwap_abs), g.ts


# --- derived bars equal the oracle -------------------------------------------------------------


def test_h4_derived_from_stored_h1_equals_python_and_the_synthetic_h4(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    for first, last in WINDOWS:
        seed(conn, TICKER, ["h4"], start=first, end=last)
    fetch_everything(conn)

    h1 = [b for first, last in WINDOWS for b in source_bars(TICKER, "h1", first, last)]
    assert len(h1) > 500
    rows = stored(conn, "h4")
    got = as_bars(rows)
    assert_same_bars(got, aggregate(h1, h4_start))
    assert {(r["provider"], r["is_forecast"], r["is_provisional"]) for r in rows} == {
        ("polygon", False, False)  # history: is_provisional only marks provisional bars
    }
    assert all(is_on_grid(b.ts, "h4") for b in got)
    local_hours = {b.ts.astimezone(NEW_YORK).hour for b in got}
    assert local_hours == {4, 8, 12, 16}
    # both sides of both DST changes are in
    assert {b.ts.astimezone(NEW_YORK).utcoffset() for b in got} == {
        dt.timedelta(hours=-5),
        dt.timedelta(hours=-4),
    }
    # the early close: the 16:00 bucket holds the one h1 bar after 16:00 (the session ends at 17:00)
    (h1_last,) = [b for b in h1 if b.ts == dt.datetime(2024, 11, 29, 16, tzinfo=NEW_YORK)]
    (h4_last,) = [b for b in got if b.ts == dt.datetime(2024, 11, 29, 16, tzinfo=NEW_YORK)]
    assert (h4_last.open, h4_last.close, h4_last.volume) == (h1_last.open, h1_last.close, h1_last.volume)
    # no bar on the Thanksgiving holiday
    assert not [b for b in got if b.ts.astimezone(NEW_YORK).date() == dt.date(2024, 11, 28)]

    # a second oracle: the emulator's own h4, aggregated from minute bars (its vwap rounded to 4 places)
    emulated = [
        Bar(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count)
        for first, last in WINDOWS
        for b in synthetic.bars(TICKER, "h4", first, last)
    ]
    assert_same_bars(got, emulated, vwap_abs=1.1e-4)

    # nothing was fetched for h4, and no h4 job exists
    assert chunks(conn, TICKER, "h4") == []
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs WHERE timeframe = 'h4'") == 0


def test_w1_derived_from_stored_d1_equals_python_and_the_synthetic_w1(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    enable_w1(conn)
    for first, last in WINDOWS:
        seed(conn, TICKER, ["w1"], start=first, end=last)
    assert chunks(conn, TICKER, "w1") == []
    fetch_everything(conn)

    d1 = [b for first, last in WINDOWS for b in source_bars(TICKER, "d1", first, last)]
    rows = stored(conn, "w1")
    got = as_bars(rows)
    assert_same_bars(got, aggregate(d1, w1_start))
    assert {(r["provider"], r["is_provisional"]) for r in rows} == {("yahoo", False)}
    assert all(is_on_grid(b.ts, "w1") for b in got)
    assert [b.ts.astimezone(NEW_YORK).date() for b in got] == [
        dt.date(2024, 3, 4),
        dt.date(2024, 3, 11),  # the Monday after DST started
        dt.date(2024, 10, 28),
        dt.date(2024, 11, 4),  # the Monday after DST ended
        dt.date(2024, 11, 11),
        dt.date(2024, 11, 18),
        dt.date(2024, 11, 25),
        dt.date(2024, 12, 2),
    ]
    # Thanksgiving week: four sessions, the last an early close
    thanksgiving = [
        b for b in d1 if dt.date(2024, 11, 25) <= b.ts.astimezone(NEW_YORK).date() <= dt.date(2024, 11, 29)
    ]
    assert len(thanksgiving) == 4
    assert got[6].volume == sum(b.volume for b in thanksgiving)
    assert got[6].close == thanksgiving[-1].close

    emulated = [
        Bar(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count)
        for first, last in WINDOWS
        for b in synthetic.bars(TICKER, "w1", first, last)
    ]
    assert_same_bars(got, emulated, vwap_abs=1.1e-4)


def test_vwap_skips_bars_without_one_and_trade_count_is_null_only_when_all_are(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 2))
    (claimed,) = claim_all(conn)

    def at(hour: int) -> dt.datetime:
        return dt.datetime(2024, 12, 2, hour, tzinfo=NEW_YORK)

    bars = [
        # 08:00 bucket: vwap from the bars that have one and trade, trade counts summed over the known
        Bar(at(8), 10.0, 12.0, 9.0, 11.0, 100, 10.5, 7),
        Bar(at(9), 11.0, 11.5, 10.0, 10.25, 300, None, None),
        Bar(at(10), 10.25, 13.0, 10.0, 12.5, 0, 12.0, 0),
        Bar(at(11), 12.5, 12.75, 12.0, 12.0, 50, 12.2, 3),
        # 12:00 bucket: no vwap at all, no trade count at all
        Bar(at(12), 12.0, 12.0, 11.0, 11.5, 20, None, None),
        Bar(at(13), 11.5, 11.75, 11.25, 11.5, 0, 11.6, None),
    ]
    assert store(conn, claimed, bars) == (6, 6, 0)
    got = as_bars(stored(conn, "h4"))
    assert_same_bars(got, aggregate(bars, h4_start))
    assert_same_bars(
        got,
        [
            Bar(at(8), 10.0, 13.0, 9.0, 12.0, 450, (10.5 * 100 + 12.2 * 50) / 150, 10),
            Bar(at(12), 12.0, 12.0, 11.0, 11.5, 20, None, None),
        ],
    )


# --- what is recomputed, and only that ----------------------------------------------------------


def test_a_corrected_source_bar_rewrites_its_bucket_only_and_a_second_derive_changes_nothing(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 13))
    seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    first, second = chunks(conn, TICKER, "h1")
    fetch_everything(conn)
    before = {r["ts"]: r for r in stored(conn, "h4")}
    # 21 sessions (not the 25th), four buckets each: the early close of the 24th has its 16:00 bucket
    assert len(before) == 4 * 21

    # derive again, by hand, over everything: nothing changes
    sid = symbol_id(conn)
    assert scalar(conn, "SELECT pgbars.derive_bars(%s, 'h1', '2024-12-02', '2024-12-31')", (sid,)) == 0
    assert {r["ts"]: r for r in stored(conn, "h4")} == before

    # the first chunk is fetched again with one bar corrected
    bars = source_bars(TICKER, "h1", first["first_session"], first["last_session"])
    corrected = dt.datetime(2024, 12, 10, 14, tzinfo=NEW_YORK)
    (index,) = [i for i, b in enumerate(bars) if b.ts == corrected]
    bar = bars[index]
    bars[index] = Bar(bar.ts, bar.open, bar.high + 1.0, bar.low, bar.close, bar.volume + 10, bar.vwap, 1)
    assert store(conn, reopen(conn, first["id"]), bars)[1] == 1

    after = {r["ts"]: r for r in stored(conn, "h4")}
    changed = [ts for ts in after if after[ts]["xmin"] != before[ts]["xmin"]]
    assert changed == [dt.datetime(2024, 12, 10, 12, tzinfo=NEW_YORK)]
    bucket = after[changed[0]]
    assert (bucket["high"], bucket["volume"]) == (
        max(before[changed[0]]["high"], bar.high + 1.0),
        before[changed[0]]["volume"] + 10,
    )
    assert bucket["fetched_at"] > before[changed[0]]["fetched_at"]
    # every other bucket, the second chunk's included, is the same row version, fetched_at kept
    assert all(after[ts] == before[ts] for ts in after if ts not in changed)
    assert any(ts.date() >= second["first_session"] for ts in after)


def test_derived_bars_deleted_are_derived_again_and_counted(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 6))
    fetch_everything(conn)
    before = as_bars(stored(conn, "h4"))
    deleted = conn.execute(
        "DELETE FROM pgbars.ohlc_bars_v2 WHERE timeframe = 'h4' AND ts >= '2024-12-04 00:00 America/New_York'"
        " AND ts < '2024-12-05 00:00 America/New_York'"
    ).rowcount
    assert deleted == 4
    sid = symbol_id(conn)
    # only the sessions asked for: Dec 3's buckets are left as they are
    assert scalar(conn, "SELECT pgbars.derive_bars(%s, 'h1', '2024-12-03', '2024-12-03')", (sid,)) == 0
    assert scalar(conn, "SELECT pgbars.derive_bars(%s, 'h1', '2024-12-04', '2024-12-04')", (sid,)) == 4
    assert scalar(conn, "SELECT pgbars.derive_bars(%s, 'h1', '2024-12-02', '2024-12-06')", (sid,)) == 0
    assert as_bars(stored(conn, "h4")) == before


def test_a_week_split_over_two_d1_chunks_is_whole_once_both_are_stored(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    enable_w1(conn)
    # two d1 chunks that split the week of 2024-12-09 after Wednesday
    seed(conn, TICKER, ["w1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 11))
    seed(conn, TICKER, ["w1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 20))
    early, late = chunks(conn, TICKER, "d1")
    assert (early["last_session"], late["first_session"]) == (dt.date(2024, 12, 11), dt.date(2024, 12, 12))
    claimed = {c["chunk_id"]: c for c in claim_all(conn)}
    week = dt.datetime(2024, 12, 9, tzinfo=NEW_YORK)
    d1 = source_bars(TICKER, "d1", dt.date(2024, 12, 2), dt.date(2024, 12, 20))

    store(conn, claimed[late["id"]])
    (partial,) = [b for b in as_bars(stored(conn, "w1")) if b.ts == week]
    assert partial == aggregate([b for b in d1 if dt.date(2024, 12, 12) <= b.ts.date()], w1_start)[0]

    store(conn, claimed[early["id"]])
    assert_same_bars(as_bars(stored(conn, "w1")), aggregate(d1, w1_start))
    (whole,) = [b for b in as_bars(stored(conn, "w1")) if b.ts == week]
    assert whole.volume == sum(b.volume for b in d1 if w1_start(b.ts) == week)


def test_two_chunks_of_one_week_stored_at_once_still_give_the_whole_week(
    conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    """The second store waits for the first (advisory lock), then reads its committed days."""
    set_clock(conn)
    enable_w1(conn)
    seed(conn, TICKER, ["w1"], start=dt.date(2024, 12, 9), end=dt.date(2024, 12, 11))
    seed(conn, TICKER, ["w1"], start=dt.date(2024, 12, 9), end=dt.date(2024, 12, 13))
    claimed = claim_all(conn)
    assert len(claimed) == 2
    first_conn, second_conn = connect(), connect()
    errors: list[BaseException] = []

    with first_conn.transaction():
        bars = source_bars(TICKER, "d1", claimed[0]["first_session"], claimed[0]["last_session"])
        stage(
            first_conn,
            claimed[0]["lease_id"],
            [(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count) for b in bars],
        )
        first_conn.execute(
            "SELECT * FROM pgbars.store_chunk_bars(%s, %s)", (claimed[0]["chunk_id"], claimed[0]["lease_id"])
        )

        def second() -> None:
            try:
                store(second_conn, claimed[1])
            except BaseException as error:  # reported by the main thread
                errors.append(error)

        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 10
        while not scalar(conn, "SELECT count(*) FROM pg_locks WHERE NOT granted"):
            assert time.monotonic() < deadline, "the second store never waited"
            time.sleep(0.02)
    thread.join(10)
    assert not thread.is_alive()
    assert errors == []

    d1 = source_bars(TICKER, "d1", dt.date(2024, 12, 9), dt.date(2024, 12, 13))
    assert_same_bars(as_bars(stored(conn, "w1")), aggregate(d1, w1_start))
    assert len(d1) == 5


def test_a_week_two_providers_served_is_whole_under_each(conn: psycopg.Connection[Any]) -> None:
    """A chunk rerouted mid-week: the best source bar per day (yahoo before polygon), one bar per provider."""
    set_clock(conn)
    enable_w1(conn)
    seed(conn, TICKER, ["w1"], start=dt.date(2024, 12, 9), end=dt.date(2024, 12, 11))
    seed(conn, TICKER, ["w1"], start=dt.date(2024, 12, 9), end=dt.date(2024, 12, 13))
    early, late = chunks(conn, TICKER, "d1")
    conn.execute("UPDATE pgbars.backfill_chunks SET provider = 'polygon' WHERE id = %s", (late["id"],))
    d1 = source_bars(TICKER, "d1", dt.date(2024, 12, 9), dt.date(2024, 12, 13))
    # polygon's Friday differs from what yahoo would have served; yahoo has no Friday
    friday = d1[-1]
    polygon_friday = Bar(friday.ts, friday.open, friday.high + 2, friday.low, friday.close, 1, None, None)
    claimed = {c["chunk_id"]: c for c in claim_all(conn)}
    store(conn, claimed[early["id"]])
    store(conn, claimed[late["id"]], [*d1[3:4], polygon_friday])
    # and yahoo's Thursday too, later (yahoo outranks polygon for d1)
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume,"
        " vwap, trade_count) VALUES (%s, 'd1', %s, 'yahoo', %s, %s, %s, %s, %s, %s, %s)",
        (symbol_id(conn), d1[3].ts, d1[3].open, d1[3].high, d1[3].low, d1[3].close, 7, 100.0, 1),
    )
    sid = symbol_id(conn)
    assert scalar(conn, "SELECT pgbars.derive_bars(%s, 'd1', '2024-12-12', '2024-12-12')", (sid,)) == 2

    thursday_yahoo = Bar(d1[3].ts, d1[3].open, d1[3].high, d1[3].low, d1[3].close, 7, 100.0, 1)
    (want,) = aggregate([*d1[:3], thursday_yahoo, polygon_friday], w1_start)
    for provider in ("yahoo", "polygon"):
        assert_same_bars(as_bars(stored(conn, "w1", provider)), [want])


# --- seeding: a derived timeframe plans its source ------------------------------------------------


def test_requesting_h4_plans_h1_and_no_h4_request(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    result = seed(conn, TICKER, ["h4"])
    assert [(j["timeframe"], j["created"], j["chunks_added"]) for j in result["jobs"]] == [("h1", True, 10)]
    h1_job = result["jobs"][0]["job_id"]
    assert result["derived"] == [
        {
            "timeframe": "h4",
            "source_timeframe": "h1",
            "source_job_id": h1_job,
            "created": True,
            "bars_derived": 0,
        }
    ]
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs WHERE timeframe = 'h4'") == 0
    claimable = claim_all(conn)
    assert len(claimable) == 10
    assert {(c["timeframe"], c["provider"]) for c in claimable} == {("h1", "polygon")}

    # asking again (with h1 as well) adds nothing; h1 is planned once
    again = seed(conn, TICKER, ["h4", "h1"])
    assert [(j["timeframe"], j["created"], j["chunks_added"]) for j in again["jobs"]] == [("h1", False, 0)]
    assert again["derived"][0]["created"] is False
    assert scalar(conn, "SELECT count(*) FROM pgbars.derived_jobs") == 1


def test_h1_alone_derives_nothing(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    result = seed(conn, TICKER, ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 6))
    assert result["derived"] == []
    fetch_everything(conn)
    assert len(stored(conn, "h1")) > 0
    assert stored(conn, "h4") == []


def test_requesting_h4_after_h1_was_fetched_derives_at_once(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, TICKER, ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 6))
    seed(conn, TICKER, ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 13))
    (claimed, _) = sorted(claim_all(conn), key=lambda c: c["first_session"])
    store(conn, claimed)  # the first week only; the second stays leased

    result = seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 13))
    assert result["jobs"][0]["chunks_added"] == 0
    assert result["derived"][0]["bars_derived"] == 20
    h1 = source_bars(TICKER, "h1", dt.date(2024, 12, 2), dt.date(2024, 12, 6))
    assert_same_bars(as_bars(stored(conn, "h4")), aggregate(h1, h4_start))


def test_a_disabled_derived_route_fetches_h4_from_its_provider_route(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    conn.execute("UPDATE pgbars.derived_routes SET enabled = false WHERE timeframe = 'h4'")
    result = seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 6))
    assert [j["timeframe"] for j in result["jobs"]] == ["h4"]
    assert result["derived"] == []
    assert [c["provider"] for c in chunks(conn, TICKER, "h4")] == ["polygon"]


def test_a_derived_job_whose_route_is_disabled_later_is_no_longer_derived(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 6))
    conn.execute("UPDATE pgbars.derived_routes SET enabled = false WHERE timeframe = 'h4'")
    fetch_everything(conn)
    assert len(stored(conn, "h1")) > 0
    assert stored(conn, "h4") == []


def test_the_default_rules_and_no_others(conn: psycopg.Connection[Any]) -> None:
    assert conn.execute("SELECT * FROM pgbars.derived_routes ORDER BY timeframe").fetchall() == [
        ("h4", "h1", True),
        ("w1", "d1", True),
    ]
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO pgbars.derived_routes VALUES ('m15', 'm5', true)")
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE pgbars.derived_routes SET source_timeframe = 'm30' WHERE timeframe = 'h4'")


def test_bad_arguments_raise_22023(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 6))
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT pgbars.derive_bars(%s, 'h1', '2024-12-06', '2024-12-02')", (symbol_id(conn),))


def test_the_worker_role_stores_and_derives(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 6))
    conn.execute("SET ROLE pgbars_worker")
    try:
        claim = (
            "SELECT * FROM pgbars.claim_leases('w', '{polygon,yahoo}', 100, '5 minutes', NULL, '{history}')"
        )
        while claimed := conn.cursor(row_factory=dict_row).execute(claim).fetchall():
            for c in claimed:
                bars = source_bars(c["ticker"], c["timeframe"], c["first_session"], c["last_session"])
                with conn.transaction():
                    stage(
                        conn, c["lease_id"], [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars]
                    )
                    conn.execute("SELECT * FROM pgbars.store_lease(%s)", (c["lease_id"],))
        # deriving is the store's business: the worker role cannot call it on its own
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "SELECT pgbars.derive_bars(%s, 'h1', '2024-12-02', '2024-12-06')", (symbol_id(conn),)
            )
    finally:
        conn.execute("RESET ROLE")
    assert len(stored(conn, "h4")) == 20


def test_an_h4_job_planned_before_the_route_was_enabled_rolls_forward_as_h1(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    conn.execute("UPDATE pgbars.derived_routes SET enabled = false WHERE timeframe = 'h4'")
    seed(conn, TICKER, ["h4"], start=dt.date(2024, 12, 2))
    h4_chunks = chunks(conn, TICKER, "h4")
    conn.execute("UPDATE pgbars.derived_routes SET enabled = true WHERE timeframe = 'h4'")

    set_clock(conn, "2025-01-07 12:00 America/New_York")  # 2025-01-02, 03 and 06 have closed
    rolled = scalar(conn, "SELECT pgbars.roll_forward_backfills()")
    assert rolled["chunks_added"] == 1
    assert chunks(conn, TICKER, "h4") == h4_chunks
    (h1,) = chunks(conn, TICKER, "h1")
    assert (h1["first_session"], h1["last_session"]) == (dt.date(2025, 1, 2), dt.date(2025, 1, 6))
    assert conn.execute("SELECT timeframe FROM pgbars.derived_jobs").fetchall() == [("h4",)]
    # the next run finds both jobs current
    assert scalar(conn, "SELECT pgbars.roll_forward_backfills()")["chunks_added"] == 0
