"""Bars for the reading tests (read_bars, pgbars export): NVDA across a split, and MSFT."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

T0 = dt.datetime(2024, 6, 5, 13, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def add_symbol(conn: psycopg.Connection[Any], ticker: str) -> Any:
    return conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES (%s) RETURNING id", (ticker,)).fetchone()[
        0
    ]  # type: ignore[index]


def add_bar(
    conn: psycopg.Connection[Any],
    symbol_id: Any,
    ts: dt.datetime,
    provider: str,
    close: float,
    *,
    vwap: float | None = None,
    trade_count: int | None = None,
    timeframe: str = "h1",
) -> None:
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume,"
        " vwap, trade_count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (symbol_id, timeframe, ts, provider, close, close + 1, close - 1, close, 1000, vwap, trade_count),
    )


@pytest.fixture
def split_bars(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """NVDA: 6 h1 bars across a 10-for-1 split (two with a rival yahoo bar, one without vwap and
    trade count) and a dividend; MSFT: 2 bars."""
    nvda, msft = add_symbol(conn, "NVDA"), add_symbol(conn, "MSFT")
    for i in range(6):
        ts = T0 + dt.timedelta(days=i)
        close = 1200.0 + i if i < 3 else 120.0 + i
        add_bar(
            conn,
            nvda,
            ts,
            "polygon",
            close,
            vwap=None if i == 1 else close,
            trade_count=None if i == 1 else 7,
        )
        if i in (0, 4):
            add_bar(conn, nvda, ts, "yahoo", close / 2)  # ranks after polygon for h1
    add_bar(
        conn, nvda, T0 + dt.timedelta(days=10), "tradier", 130.0, vwap=130.0, trade_count=3
    )  # only tradier
    for i in range(2):
        add_bar(conn, msft, T0 + i * HOUR, "polygon", 400.0 + i, vwap=400.0, trade_count=9)
    conn.execute(
        "INSERT INTO pgbars.corporate_actions"
        " (symbol_id, kind, ex_date, split_from, split_to, cash_amount, currency, provider, fetched_at)"
        " VALUES (%s, 'split', '2024-06-08', 1, 10, NULL, NULL, 'polygon', now()),"
        " (%s, 'dividend', '2024-06-10', NULL, NULL, 0.01, 'USD', 'polygon', now())",
        (nvda, nvda),
    )
    return conn
