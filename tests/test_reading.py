"""read_bars: get_bars' rows as pandas, polars and arrow frames, from binary column arrays."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd
import polars as pl
import psycopg
import pyarrow as pa
import pytest

from tests.reading_fixtures import T0, add_bar, add_symbol
from tests.sql.helpers import as_role
from worker import read_bars, read_bars_async
from worker.errors import PgbarsError


def get_bars(conn: psycopg.Connection[Any], ticker: str, adjust: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT ts, open, high, low, close, volume, vwap, trade_count, provider, is_provisional"
        " FROM pgbars.get_bars(%s, 'h1', '-infinity', 'infinity', %s)",
        (ticker, adjust),
    ).fetchall()


def frame_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    rows = []
    for ts, row in frame.iterrows():
        rows.append(
            (
                ts.to_pydatetime(),
                row.open,
                row.high,
                row.low,
                row.close,
                row.volume,
                None if pd.isna(row.vwap) else row.vwap,
                None if pd.isna(row.trade_count) else row.trade_count,
                row.provider,
                row.is_provisional,
            )
        )
    return rows


@pytest.mark.parametrize("adjust", ["none", "splits", "all"])
def test_one_ticker_equals_get_bars(split_bars: psycopg.Connection[Any], dsn: str, adjust: str) -> None:
    frame = read_bars(dsn, "NVDA", "h1", adjust=adjust)  # type: ignore[arg-type]
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.tz) == "UTC" and frame.index.name == "ts"
    assert list(frame.columns) == [
        "open", "high", "low", "close", "volume", "vwap", "trade_count", "provider", "is_provisional"
    ]  # fmt: skip
    assert frame_rows(frame) == get_bars(split_bars, "NVDA", adjust)
    assert frame["trade_count"].dtype == "Int64" and frame["volume"].dtype == "int64"


def test_several_tickers_a_multiindex_and_each_output(split_bars: psycopg.Connection[Any], dsn: str) -> None:
    frame = read_bars(split_bars, [" msft", "NVDA"], "h1", start=T0, end=T0 + dt.timedelta(days=3))
    assert frame.index.names == ["ticker", "ts"]
    assert list(frame.index.get_level_values("ticker")) == ["MSFT", "MSFT", "NVDA", "NVDA", "NVDA"]
    assert list(frame.loc["NVDA"]["close"]) == pytest.approx([120.0, 120.1, 120.2])  # split-adjusted

    table = read_bars(dsn, ["MSFT", "NVDA"], "h1", end=T0 + dt.timedelta(days=3), output="arrow")
    assert isinstance(table, pa.Table)
    assert table.column_names[:2] == ["ticker", "ts"]
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("vwap").null_count == 1 and table.column("trade_count").null_count == 1
    assert table.column("close").to_pylist() == frame["close"].tolist()

    polars = read_bars(
        dsn, ["MSFT", "NVDA"], "h1", end=T0 + dt.timedelta(days=3), output="polars", columns=["close"]
    )
    assert isinstance(polars, pl.DataFrame)
    assert polars.columns == ["ticker", "ts", "close"]
    assert polars["ts"].dtype == pl.Datetime("us", "UTC")
    assert polars["close"].to_list() == frame["close"].tolist()


def test_async_variant_and_the_reader_role(split_bars: psycopg.Connection[Any], dsn: str) -> None:
    async def read() -> pd.DataFrame:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
            await aconn.execute("SET ROLE pgbars_reader")
            return await read_bars_async(aconn, "NVDA", "h1", columns=["close", "provider"])

    frame = asyncio.run(read())
    assert list(frame.columns) == ["close", "provider"]
    assert list(frame["provider"]) == ["polygon"] * 6 + ["tradier"]
    with as_role(split_bars, "pgbars_reader"):
        assert len(read_bars(split_bars, "NVDA", "h1")) == 7


def test_empty_ranges_dates_and_clear_errors(split_bars: psycopg.Connection[Any], dsn: str) -> None:
    empty = read_bars(dsn, "NVDA", "h1", start="2020-01-01", end="2020-01-02")
    assert empty.empty and str(empty.index.tz) == "UTC" and "close" in empty.columns
    # a date is 00:00 New York
    assert len(read_bars(dsn, "NVDA", "h1", start=dt.date(2024, 6, 6), end="2024-06-08")) == 2
    calls: tuple[tuple[Callable[[], Any], str], ...] = (
        (lambda: read_bars(dsn, ["NVDA", "ZZZZ", "QQQQ"], "h1"), "unknown tickers ZZZZ, QQQQ"),
        (lambda: read_bars(dsn, "NVDA", "m7"), "unknown timeframe 'm7'"),
        (lambda: read_bars(dsn, "1AB", "h1"), "invalid ticker"),
        (lambda: read_bars(dsn, "NVDA", "h1", adjust="raw"), "unknown adjustment 'raw'"),  # type: ignore[arg-type]
        (lambda: read_bars(dsn, "NVDA", "h1", start=dt.datetime(2024, 1, 1)), "has no time zone"),
        (lambda: read_bars(dsn, "NVDA", "h1", columns=["closing"]), "unknown column 'closing'"),
        (lambda: read_bars(dsn, "NVDA", "h1", output="excel"), "output must be pandas"),  # type: ignore[arg-type]
        (lambda: read_bars("postgresql://u:s3cr3tpw@127.0.0.1:1/x", "NVDA", "h1"), "cannot connect"),
    )
    for call, message in calls:
        with pytest.raises(PgbarsError, match=message) as caught:
            call()
        assert "s3cr3tpw" not in str(caught.value)


def test_a_missing_extra_is_named(
    split_bars: psycopg.Connection[Any], dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(PgbarsError, match=r"needs polars: pip install 'pgbars-pipeline\[polars\]'"):
        read_bars(dsn, "NVDA", "h1", output="polars")


def test_many_tickers_over_several_connections(split_bars: psycopg.Connection[Any], dsn: str) -> None:
    """From PARALLEL_FROM tickers on, a DSN's read is shared by connections; the frame is the same."""
    tickers = [f"P{n:02d}" for n in range(10)]
    for n, ticker in enumerate(tickers):
        symbol = add_symbol(split_bars, ticker)
        for i in range(n % 3):  # P00, P03, ... have no bar: an empty group must not shift the rest
            add_bar(split_bars, symbol, T0 + dt.timedelta(days=i), "polygon", 10.0 + n + i)
    alone = read_bars(split_bars, tickers, "h1")
    assert len(alone) == sum(n % 3 for n in range(10))
    assert sorted(set(alone.index.get_level_values("ticker"))) == [t for n, t in enumerate(tickers) if n % 3]
    assert list(alone.index.get_level_values("ticker").categories) == tickers
    for connections in (None, 3, 10, 25):
        shared = read_bars(dsn, tickers, "h1", connections=connections)
        pd.testing.assert_frame_equal(shared, alone)

    async def read() -> pd.DataFrame:
        return await read_bars_async(dsn, tickers, "h1", connections=4, output="pandas")

    pd.testing.assert_frame_equal(asyncio.run(read()), alone)
    with pytest.raises(PgbarsError, match="connections > 1 needs a DSN"):
        read_bars(split_bars, tickers, "h1", connections=2)
    with pytest.raises(PgbarsError, match="connections must be a whole number"):
        read_bars(dsn, tickers, "h1", connections=0)
    with pytest.raises(PgbarsError, match="unknown ticker ZZZZ"):  # checked before any connection opens
        read_bars(dsn, [*tickers, "ZZZZ"], "h1", connections=4)
