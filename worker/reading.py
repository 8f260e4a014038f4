"""`read_bars`: bars into a pandas or polars DataFrame, or a pyarrow Table, through `get_bars`.

    from pgbars import read_bars
    frame = read_bars(dsn, "AAPL", "h1", start="2025-01-01")            # pandas, split-adjusted
    frames = read_bars(conn, ["AAPL", "MSFT"], "d1", adjust="none", output="polars")

The rows are `pgbars.get_bars`' (the best provider per timestamp, adjusted on
read: docs/reading.md), for every ticker in one statement per connection
(worker/db/frames.py). Each asked-for column travels as one array in its
binary form and becomes a numpy column without a Python object per value.
Given a DSN and PARALLEL_FROM tickers or more, consecutive groups of them are
read over several connections at once. pandas comes with pgbars (its
calendar needs it); polars and pyarrow are optional extras
(`pgbars-pipeline[polars]`, `pgbars-pipeline[arrow]`), named in the error
when missing. docs/reading.md has the figures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import psycopg

from .db import frames
from .db.connection import connect
from .db.frames import PROVIDERS, connect_blocking
from .errors import PgbarsError

__all__ = ["COLUMNS", "PARALLEL_FROM", "connect_blocking", "read_bars", "read_bars_async"]

Output = Literal["pandas", "polars", "arrow"]
Adjust = Literal["none", "splits", "all"]
# The columns read_bars can return, in order (the index: ts, and ticker for several tickers).
COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trade_count", "provider", "is_provisional")
# Given a DSN and at least this many tickers, read_bars reads them over several connections.
PARALLEL_FROM = 8
_DEFAULT_CONNECTIONS = 4
_EXTRAS = {"polars": "polars", "arrow": "pyarrow"}
# PostgreSQL's epoch (2000-01-01) in microseconds since the Unix epoch.
_PG_EPOCH_US = 946_684_800_000_000
_ARRAY_HEADER = 20  # a one-dimensional array: ndim, flags, element type, length, lower bound


def read_bars(
    conn_or_dsn: psycopg.Connection[Any] | str,
    tickers: str | Sequence[str],
    timeframe: str,
    start: dt.datetime | dt.date | str | None = None,
    end: dt.datetime | dt.date | str | None = None,
    adjust: Adjust = "splits",
    columns: Sequence[str] | None = None,
    output: Output = "pandas",
    connections: int | None = None,
) -> Any:
    """Bars of `tickers` and `timeframe` with start <= ts < end, as `get_bars` returns them.

    One ticker (a str): indexed by ts (UTC). Several (a list): indexed by (ticker,
    ts) for pandas; a `ticker` column for polars and arrow. `start`/`end`: a
    timezone-aware datetime, a date (00:00 New York) or an ISO string; None is
    open. `adjust`: none, splits (default) or all. `columns`: a subset of COLUMNS.
    `connections`: given a DSN, how many connections share the tickers (default:
    4 from PARALLEL_FROM tickers on, else 1); on a connection, 1.
    A ticker pgbars does not know raises PgbarsError naming it; invalid input
    (ticker, timeframe, bounds, adjust) raises PgbarsError with get_bars' message.
    """
    request = _Request.of(tickers, timeframe, start, end, adjust, columns, output)
    if not isinstance(conn_or_dsn, str):
        _one_connection(connections)
        names = frames.known_tickers(conn_or_dsn, request.names)
        return request.frame([request.read(conn_or_dsn, names)], [names])
    dsn = conn_or_dsn

    def read_group(group: list[str]) -> tuple[bytes | None, ...]:
        with connect_blocking(dsn) as other:
            return request.read(other, group)

    with connect_blocking(dsn) as conn:
        groups = _groups(frames.known_tickers(conn, request.names), connections)
        with ThreadPoolExecutor(max(len(groups) - 1, 1)) as pool:
            others = pool.map(read_group, groups[1:])
            parts = [request.read(conn, groups[0]), *others]
    return request.frame(parts, groups)


async def read_bars_async(
    conn_or_dsn: psycopg.AsyncConnection[Any] | str,
    tickers: str | Sequence[str],
    timeframe: str,
    start: dt.datetime | dt.date | str | None = None,
    end: dt.datetime | dt.date | str | None = None,
    adjust: Adjust = "splits",
    columns: Sequence[str] | None = None,
    output: Output = "pandas",
    connections: int | None = None,
) -> Any:
    """`read_bars` on an asyncio connection (or a DSN: its connections opened and closed here)."""
    request = _Request.of(tickers, timeframe, start, end, adjust, columns, output)
    if not isinstance(conn_or_dsn, str):
        _one_connection(connections)
        names = await frames.known_tickers_async(conn_or_dsn, request.names)
        return request.frame([await request.read_async(conn_or_dsn, names)], [names])
    dsn = conn_or_dsn

    async def read_group(group: list[str]) -> tuple[bytes | None, ...]:
        other = await connect(dsn)
        try:
            return await request.read_async(other, group)
        finally:
            await other.close()

    conn = await connect(dsn)
    try:
        groups = _groups(await frames.known_tickers_async(conn, request.names), connections)
        parts = await asyncio.gather(request.read_async(conn, groups[0]), *map(read_group, groups[1:]))
    finally:
        await conn.close()
    return request.frame(parts, groups)


@dataclass(frozen=True, slots=True)
class _Request:
    """One call's checked arguments: what to read (FIELDS' names) and how to shape it."""

    tickers: str | Sequence[str]
    names: list[str]
    wanted: list[str]
    fields: list[str]
    window: tuple[str, frames.Bound, frames.Bound, str]
    output: Output

    @classmethod
    def of(
        cls,
        tickers: str | Sequence[str],
        timeframe: str,
        start: dt.datetime | dt.date | str | None,
        end: dt.datetime | dt.date | str | None,
        adjust: str,
        columns: Sequence[str] | None,
        output: Output,
    ) -> _Request:
        names, wanted = _check(tickers, columns, output)
        window = (timeframe, _bound(start, open_end="-infinity"), _bound(end, open_end="infinity"), adjust)
        return cls(tickers, names, wanted, _fields(tickers, wanted), window, output)

    def read(self, conn: psycopg.Connection[Any], group: list[str]) -> tuple[bytes | None, ...]:
        return frames.bar_arrays(conn, group, self.fields, *self.window)

    async def read_async(
        self, conn: psycopg.AsyncConnection[Any], group: list[str]
    ) -> tuple[bytes | None, ...]:
        return await frames.bar_arrays_async(conn, group, self.fields, *self.window)

    def frame(self, parts: Sequence[tuple[bytes | None, ...]], groups: Sequence[list[str]]) -> Any:
        """The groups' answers (in order) as one frame of the wanted output."""
        names = [name for group in groups for name in group]
        return _frame(
            parts, [len(g) for g in groups], self.fields, self.tickers, names, self.wanted, self.output
        )


def _one_connection(connections: int | None) -> None:
    if connections not in (None, 1):
        raise PgbarsError("connections > 1 needs a DSN (read_bars opens them); a connection reads alone")


def _groups(names: list[str], connections: int | None) -> list[list[str]]:
    """The tickers in consecutive groups, one per connection (their order kept)."""
    if connections is None:
        connections = _DEFAULT_CONNECTIONS if len(names) >= PARALLEL_FROM else 1
    if not isinstance(connections, int) or connections < 1:
        raise PgbarsError(f"connections must be a whole number of at least 1, not {connections!r}")
    count = min(connections, len(names))
    size, extra = divmod(len(names), count)
    groups, at = [], 0
    for i in range(count):
        taken = size + (1 if i < extra else 0)
        groups.append(names[at : at + taken])
        at += taken
    return groups


def _check(
    tickers: str | Sequence[str], columns: Sequence[str] | None, output: str
) -> tuple[list[str], list[str]]:
    if isinstance(tickers, str):
        names = [tickers]
    else:
        names = list(tickers)
        if not names:
            raise PgbarsError("no ticker given")
        if not all(isinstance(t, str) for t in names):
            raise PgbarsError("tickers must be strings")
    wanted = list(COLUMNS if columns is None else columns)
    unknown = [c for c in wanted if c not in COLUMNS]
    if unknown or not wanted:
        raise PgbarsError(
            f"unknown column {', '.join(map(repr, unknown))}" if unknown else "no column asked for"
        )
    if output not in ("pandas", "polars", "arrow"):
        raise PgbarsError(f"output must be pandas, polars or arrow, not {output!r}")
    return names, wanted


def _bound(value: dt.datetime | dt.date | str | None, *, open_end: str) -> dt.datetime | str:
    """A bound for get_bars: aware datetimes as they are, dates at 00:00 New York, None open."""
    if value is None:
        return open_end
    if isinstance(value, str):
        try:
            value = (
                dt.datetime.fromisoformat(value)
                if "T" in value or " " in value
                else dt.date.fromisoformat(value)
            )
        except ValueError:
            raise PgbarsError(f"not an ISO date or time: {value!r}") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise PgbarsError(f"{value.isoformat()} has no time zone: give an aware datetime (UTC, say)")
        return value
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(value, dt.time(), ZoneInfo("America/New_York"))


def _fields(tickers: str | Sequence[str], wanted: list[str]) -> list[str]:
    """What the server sends: each ticker's position for several tickers, ts, the wanted columns."""
    return [*(() if isinstance(tickers, str) else ("n",)), "ts", *wanted]


def _columns(
    parts: Sequence[tuple[bytes | None, ...]], groups: Sequence[int], fields: Sequence[str]
) -> dict[str, Any]:
    """The answers' arrays (binary, one per column and connection) as native numpy columns.

    `groups`: how many tickers each part read; a part's ticker positions (n) count from 1
    within it and are shifted to count across all of them.
    """
    out: dict[str, Any] = {}
    shifts = np.cumsum([0, *groups[:-1]])
    kinds = {name: kind for name, _, kind in frames.FIELDS}
    for index, name in enumerate(fields):
        kind = kinds[name]
        native = kind.replace(">", "=") if kind.startswith(">") else "bool"
        element = np.dtype([("length", ">i4"), ("value", kind)])
        pieces = []
        for part, shift in zip(parts, shifts, strict=True):
            sent = part[index]
            if sent is None:  # no rows: array_agg of nothing
                continue
            values = np.frombuffer(sent, dtype=element, offset=_ARRAY_HEADER)["value"].astype(native)
            pieces.append(values + shift if name == "n" else values)
        out[name] = np.concatenate(pieces) if pieces else np.empty(0, dtype=native)
    out["ts"] = (out["ts"] + _PG_EPOCH_US).astype("datetime64[us]")
    return out


def _frame(
    parts: Sequence[tuple[bytes | None, ...]],
    groups: Sequence[int],
    fields: Sequence[str],
    tickers: str | Sequence[str],
    names: list[str],
    wanted: list[str],
    output: Output,
) -> Any:
    cols = _columns(parts, groups, fields)
    several = not isinstance(tickers, str)
    # rows come per ticker, in ts order; the provider's code back to its name
    provider_names = np.array(["", *PROVIDERS], dtype=object)
    if output == "pandas":
        import pandas as pd

        values: dict[str, Any] = {}
        for name in wanted:
            if name == "trade_count":
                counts = cols["trade_count"]
                values[name] = pd.arrays.IntegerArray(counts, counts < 0)
            elif name == "provider":
                values[name] = pd.Categorical.from_codes(cols["provider"], categories=["other", *PROVIDERS])
            else:
                values[name] = cols[name]
        ts = pd.DatetimeIndex(cols["ts"], name="ts").tz_localize("UTC")
        if several:
            ticker = pd.Categorical.from_codes(cols["n"] - 1, categories=names)
            index: Any = pd.MultiIndex.from_arrays([ticker, ts], names=["ticker", "ts"])
        else:
            index = ts
        return pd.DataFrame(values, index=index, columns=wanted)
    module = _extra(output)
    if output == "arrow":
        pa = module
        arrays: dict[str, Any] = {}
        if several:
            arrays["ticker"] = pa.DictionaryArray.from_arrays(
                pa.array(cols["n"] - 1, pa.int32()), pa.array(names, pa.string())
            )
        arrays["ts"] = pa.array(cols["ts"], pa.timestamp("us", tz="UTC"))
        for name in wanted:
            if name == "trade_count":
                arrays[name] = pa.array(cols[name], mask=cols[name] < 0)
            elif name == "vwap":
                arrays[name] = pa.array(cols[name], mask=np.isnan(cols[name]))
            elif name == "provider":
                arrays[name] = pa.array(provider_names[cols["provider"]], pa.string())
            else:
                arrays[name] = pa.array(cols[name])
        return pa.table(arrays)
    pl = module
    series = []
    if several:
        series.append(pl.Series("ticker", np.array(names, dtype=object)[cols["n"] - 1], dtype=pl.Categorical))
    series.append(pl.Series("ts", cols["ts"]).dt.replace_time_zone("UTC"))
    for name in wanted:
        if name == "trade_count":
            series.append(pl.Series(name, cols[name]).set(pl.Series(cols[name] < 0), None))
        elif name == "vwap":
            series.append(pl.Series(name, cols[name]).fill_nan(None))
        elif name == "provider":
            series.append(pl.Series(name, provider_names[cols["provider"]], dtype=pl.String))
        else:
            series.append(pl.Series(name, cols[name]))
    return pl.DataFrame(series)


def _extra(output: str) -> Any:
    module = _EXTRAS[output]
    try:
        return __import__(module)
    except ImportError:
        raise PgbarsError(
            f"output={output!r} needs {module}: pip install 'pgbars-pipeline[{output}]'"
        ) from None
