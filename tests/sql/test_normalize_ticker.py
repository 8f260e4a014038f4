"""normalize_ticker and the ticker domain: one stored spelling per ticker, share classes with a dot.

Also what follows from it for the callers (watchlists, requests, readers), and
migration 0013, which brings symbols stored under a hyphen (BRK-B) to the dot.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import scalar, seed, set_clock
from worker import db

OLD_RULE = r"^[A-Z][A-Z0-9]{0,9}([.-][A-Z0-9]{1,4})?$"  # the domain before migration 0013


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("AAPL", "AAPL"),
        (" aapl ", "AAPL"),
        ("\tspy\n", "SPY"),
        ("A2", "A2"),
        ("brk.b", "BRK.B"),
        # a share class the way other providers and people write it
        ("BRK-B", "BRK.B"),  # Yahoo
        ("BRK/B", "BRK.B"),  # Tradier
        ("brk-b", "BRK.B"),
        ("BRK / B", "BRK.B"),
        (" brk . b ", "BRK.B"),
        ("BF-B", "BF.B"),
        ("BRK.A", "BRK.A"),
        ("MOG/A", "MOG.A"),
        ("ABCDEFGHIJ-WS12", "ABCDEFGHIJ.WS12"),
    ],
)
def test_valid_tickers_are_normalised(conn: psycopg.Connection[Any], given: str, stored: str) -> None:
    assert scalar(conn, "SELECT pgbars.normalize_ticker(%s)", (given,)) == stored


@pytest.mark.parametrize(
    "given",
    [
        "'; DROP TABLE pgbars.symbols; --",
        "A" * 40,
        "",
        "   ",
        "1ABC",
        "AA PL",  # a bare space is no separator: never read as AA.PL
        "BRK B",
        "BRK.",
        "BRK-",
        "BRK/",
        "-B",
        ".B",
        "BRK--B",
        "BRK-/B",
        "BRK.B.C",
        "BRK-B-C",
        "BRK_B",
        "BRK:B",
        "BRK\\B",
        "BRK-ABCDE",
        "1-B",
        "ÄPFEL",
        "BRK-Ä",
    ],
)
def test_invalid_tickers_raise_a_clear_error(conn: psycopg.Connection[Any], given: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="ticker") as raised:
        conn.execute("SELECT pgbars.normalize_ticker(%s)", (given,))
    if given.strip():
        assert "BRK-B or BRK/B" in (raised.value.diag.message_hint or "")


def test_no_two_tickers_become_one(conn: psycopg.Connection[Any]) -> None:
    """Every spelling of a share class gives its one form, and different tickers stay different."""
    bases = ["BRK", "BF", "A", "GOOG", "GOOGL", "BRKB", "X1"]
    classes = ["A", "B", "WS", "B2"]
    tickers = bases + [f"{base}.{cls}" for base in bases for cls in classes]
    spellings = [
        (ticker, spelled)
        for ticker in tickers
        for spelled in (
            [ticker, ticker.lower()]
            + [ticker.replace(".", sep) for sep in ("-", "/", " - ", " / ", " . ") if "." in ticker]
        )
    ]
    normalised = conn.execute(
        "SELECT t.given, pgbars.normalize_ticker(t.given)::text"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS t (given, n) ORDER BY t.n",
        ([spelled for _, spelled in spellings],),
    ).fetchall()
    assert [stored for _, stored in normalised] == [ticker for ticker, _ in spellings]
    assert len(set(tickers)) == len(tickers)  # so the one form per ticker keeps them apart
    again = conn.execute(
        "SELECT pgbars.normalize_ticker(pgbars.normalize_ticker(t)) = pgbars.normalize_ticker(t)"
        " FROM unnest(%s::text[]) AS t",
        ([spelled for _, spelled in spellings],),
    ).fetchall()
    assert again == [(True,)] * len(spellings)
    assert len(spellings) > 150
    assert list(itertools.islice((s for t, s in spellings if t == "BRK.B"), 3)) == ["BRK.B", "brk.b", "BRK-B"]


def test_domain_rejects_lower_case_padding_and_other_class_spellings(conn: psycopg.Connection[Any]) -> None:
    for bad in ("aapl", "AAPL ", "'; DROP", "BRK-B", "BRK/B", "BRK B"):
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES (%s)", (bad,))
    assert scalar(conn, "SELECT count(*) FROM pgbars.symbols") == 0
    conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('BRK.B')")


def test_share_class_spellings_are_one_symbol_for_watchlists_requests_and_readers(
    conn: psycopg.Connection[Any],
) -> None:
    set_clock(conn)
    added = [
        scalar(conn, "SELECT pgbars.add_to_watchlist(%s)", (t,))
        for t in ("BRK-B", "BRK.B", "brk/b", " brk-b")
    ]
    assert [(a["ticker"], a["added"]) for a in added] == [
        ("BRK.B", True),
        ("BRK.B", False),
        ("BRK.B", False),
        ("BRK.B", False),
    ]
    assert conn.execute("SELECT ticker::text FROM pgbars.symbols").fetchall() == [("BRK.B",)]
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_jobs") == 1

    result = seed(conn, "brk-b", ["d1"], years=1)
    assert result["ticker"] == "BRK.B"
    assert conn.execute(
        "SELECT s.ticker::text, j.timeframe FROM pgbars.backfill_jobs AS j"
        " JOIN pgbars.symbols AS s ON s.id = j.symbol_id ORDER BY j.timeframe"
    ).fetchall() == [("BRK.B", "d1"), ("BRK.B", "h1")]

    symbol_id = scalar(conn, "SELECT id FROM pgbars.symbols")
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " VALUES (%s, 'd1', '2024-12-31 05:00+00', 'yahoo', 470, 472, 468, 471, 1000)",
        (symbol_id,),
    )
    for spelled in ("BRK.B", "BRK-B", "brk/b"):
        assert scalar(conn, "SELECT pgbars.has_backfill_data(%s, 'd1')", (spelled,)) is True
        status = conn.execute("SELECT timeframe FROM pgbars.backfill_status(%s)", (spelled,)).fetchall()
        assert sorted(status) == [("d1",), ("h1",)]
        bars = conn.execute(
            "SELECT close FROM pgbars.get_bars(%s, 'd1', '2024-12-01', '2025-01-01')", (spelled,)
        ).fetchall()
        assert bars == [(471.0,)]
    assert scalar(conn, "SELECT pgbars.remove_from_watchlist('BRK/B')") is True
    assert scalar(conn, "SELECT count(*) FROM pgbars.watchlist_items") == 0


# --- migration 0013: symbols stored under a hyphen ----------------------------------------------


def _as_before_0013(conn: psycopg.Connection[Any]) -> None:
    """The ticker domain as it was: a hyphen admitted beside the dot."""
    conn.execute("ALTER DOMAIN pgbars.ticker DROP CONSTRAINT ticker_check")
    conn.execute(f"ALTER DOMAIN pgbars.ticker ADD CONSTRAINT ticker_check CHECK (value ~ '{OLD_RULE}')")


def _migrate(conn: psycopg.Connection[Any]) -> None:
    migration = next(f for f in db.migration_files() if f.name == "0013_share_class_tickers.sql")
    conn.execute(migration.text)


def _symbol(conn: psycopg.Connection[Any], ticker: str) -> Any:
    return scalar(conn, "INSERT INTO pgbars.symbols (ticker) VALUES (%s) RETURNING id", (ticker,))


def _watch(conn: psycopg.Connection[Any], watchlist: str, symbol_id: Any) -> None:
    conn.execute("INSERT INTO pgbars.watchlists (name) VALUES (%s) ON CONFLICT DO NOTHING", (watchlist,))
    conn.execute(
        "INSERT INTO pgbars.watchlist_items (watchlist_id, symbol_id)"
        " SELECT id, %s FROM pgbars.watchlists WHERE name = %s",
        (symbol_id, watchlist),
    )


def _bar(conn: psycopg.Connection[Any], symbol_id: Any, timeframe: str, ts: str, close: float) -> None:
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " VALUES (%s, %s, %s, 'polygon', %s, %s, %s, %s, 100)",
        (symbol_id, timeframe, ts, close, close, close, close),
    )


def test_migration_0013_renames_a_lone_hyphen_spelling_in_place(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    _as_before_0013(conn)
    bf = _symbol(conn, "BF-B")
    msft = _symbol(conn, "MSFT")
    _watch(conn, "default", bf)
    _bar(conn, bf, "h1", "2024-12-31 15:00+00", 40.5)
    chunks_before = scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks")
    assert chunks_before > 0

    _migrate(conn)

    assert conn.execute("SELECT id, ticker::text FROM pgbars.symbols ORDER BY ticker").fetchall() == [
        (bf, "BF.B"),
        (msft, "MSFT"),
    ]
    assert scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks") == chunks_before
    assert scalar(conn, "SELECT close FROM pgbars.ohlc_bars_v2 WHERE symbol_id = %s", (bf,)) == 40.5
    assert scalar(conn, "SELECT pgbars.add_to_watchlist('bf-b')")["added"] is False
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('BF-B')")


def test_migration_0013_merges_both_spellings_into_the_dot(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    _as_before_0013(conn)
    hyphen = _symbol(conn, "BRK-B")
    dot = _symbol(conn, "BRK.B")
    _watch(conn, "both", hyphen)
    _watch(conn, "both", dot)
    _watch(conn, "hyphen only", hyphen)  # seeds the hyphen's h1 job; the dot's h1 job comes from "both"
    conn.execute("SELECT pgbars.seed_backfill_for_symbol(%s, '{h4}')", (hyphen,))  # h4 derived from its h1
    conn.execute("SELECT pgbars.seed_backfill_for_symbol(%s, '{d1}', p_years => 1)", (hyphen,))
    d1_job = scalar(
        conn, "SELECT id FROM pgbars.backfill_jobs WHERE symbol_id = %s AND timeframe = 'd1'", (hyphen,)
    )
    d1_chunks = scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks WHERE job_id = %s", (d1_job,))
    dot_h1_job = scalar(
        conn, "SELECT id FROM pgbars.backfill_jobs WHERE symbol_id = %s AND timeframe = 'h1'", (dot,)
    )
    _bar(conn, hyphen, "h1", "2024-12-30 15:00+00", 470.0)  # both have it: the dot's is kept
    _bar(conn, dot, "h1", "2024-12-30 15:00+00", 471.0)
    _bar(conn, hyphen, "h1", "2024-12-31 15:00+00", 472.0)  # only the hyphen's: moves
    _bar(conn, hyphen, "d1", "2024-12-31 05:00+00", 473.0)
    conn.execute(
        "INSERT INTO pgbars.rejected_bars (symbol_id, timeframe, provider, raw, reason)"
        " VALUES (%s, 'h1', 'polygon', '{}', 'high below low')",
        (hyphen,),
    )
    conn.execute(
        "INSERT INTO pgbars.live_refreshes (symbol_id, timeframe, provider, session_date, targets)"
        " VALUES (%s, 'm5', 'tradier', %s, '{m5,h1}')",
        (hyphen, dt.date(2024, 12, 31)),
    )

    _migrate(conn)

    assert conn.execute("SELECT id, ticker::text FROM pgbars.symbols").fetchall() == [(dot, "BRK.B")]
    assert conn.execute(
        "SELECT w.name, i.symbol_id FROM pgbars.watchlist_items AS i"
        " JOIN pgbars.watchlists AS w ON w.id = i.watchlist_id ORDER BY w.name"
    ).fetchall() == [("both", dot), ("hyphen only", dot)]
    jobs = conn.execute(
        "SELECT timeframe, id FROM pgbars.backfill_jobs WHERE symbol_id = %s ORDER BY timeframe", (dot,)
    ).fetchall()
    assert jobs == [("d1", d1_job), ("h1", dot_h1_job)]  # the d1 job moved whole; the dot's h1 stays
    assert (
        scalar(conn, "SELECT count(*) FROM pgbars.backfill_chunks WHERE job_id = %s", (d1_job,)) == d1_chunks
    )
    assert conn.execute("SELECT source_job_id, timeframe FROM pgbars.derived_jobs").fetchall() == [
        (dot_h1_job, "h4")
    ]
    assert conn.execute(
        "SELECT timeframe, ts, close FROM pgbars.ohlc_bars_v2 WHERE symbol_id = %s ORDER BY timeframe, ts",
        (dot,),
    ).fetchall() == [
        ("d1", dt.datetime(2024, 12, 31, 5, tzinfo=dt.UTC), 473.0),
        ("h1", dt.datetime(2024, 12, 30, 15, tzinfo=dt.UTC), 471.0),
        ("h1", dt.datetime(2024, 12, 31, 15, tzinfo=dt.UTC), 472.0),
    ]
    assert scalar(conn, "SELECT count(*) FROM pgbars.ohlc_bars_v2") == 3
    assert conn.execute("SELECT symbol_id FROM pgbars.rejected_bars").fetchall() == [(dot,)]
    assert conn.execute("SELECT symbol_id, timeframe FROM pgbars.live_refreshes").fetchall() == [(dot, "m5")]
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES ('BRK-B')")


def test_migration_0013_leaves_a_database_without_hyphens_as_it_was(conn: psycopg.Connection[Any]) -> None:
    set_clock(conn)
    seed(conn, "AAPL")
    seed(conn, "BRK.B", ["d1"])
    before = conn.execute("SELECT id, ticker::text FROM pgbars.symbols ORDER BY ticker").fetchall()
    _as_before_0013(conn)
    _migrate(conn)
    assert conn.execute("SELECT id, ticker::text FROM pgbars.symbols ORDER BY ticker").fetchall() == before
    rule = scalar(
        conn,
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint AS c"
        " WHERE c.contypid = 'pgbars.ticker'::regtype AND c.conname = 'ticker_check'",
    )
    assert "[.-]" not in rule and r"(\.[A-Z0-9]{1,4})" in rule
