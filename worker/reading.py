"""`read_bars`: bars into a pandas or polars DataFrame, or a pyarrow Table, through `get_bars`.

    from pgbars import read_bars
    frame = read_bars(dsn, "AAPL", "h1", start="2025-01-01")            # pandas, split-adjusted
    frames = read_bars(conn, ["AAPL", "MSFT"], "d1", adjust="none", output="polars")

The rows are `pgbars.get_bars`' (the best provider per timestamp, adjusted on
read: docs/reading.md), for every ticker in one statement. Each column travels
as one array in its binary form (`array_send(array_agg(...))`, one bytea per
column) and becomes a numpy column without a Python object per value: every
element has a fixed width (a NULL vwap is sent as NaN, a NULL trade count as
-1, the provider as its number). A binary COPY was tried first: psycopg reads
it one message, so one Python call, per row, which cost more than the rows.
pandas comes with pgbars (its calendar needs it); polars and pyarrow are
optional extras (`pgbars-pipeline[polars]`, `pgbars-pipeline[arrow]`), named
in the error when missing. docs/reading.md has the figures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import sql

from .db.connection import _first_line, connect, scrub_password, session_kwargs
from .errors import PgbarsError

__all__ = ["COLUMNS", "connect_sync", "read_bars", "read_bars_async"]

Output = Literal["pandas", "polars", "arrow"]
Adjust = Literal["none", "splits", "all"]
# The columns read_bars can return, in order (the index: ts, and ticker for several tickers).
COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trade_count", "provider", "is_provisional")
PROVIDERS = ("polygon", "yahoo", "tradier")  # the provider column's codes: 1, 2, 3 (0: another)
_EXTRAS = {"polars": "polars", "arrow": "pyarrow"}
# PostgreSQL's epoch (2000-01-01) in microseconds since the Unix epoch.
_PG_EPOCH_US = 946_684_800_000_000

# The columns, as get_bars gives them, each aggregated into one array and sent as the
# array's binary form (array_send: a header, then per element its length and value).
_FIELDS = (
    ("n", "t.n::int4", ">i4"),
    ("ts", "g.ts", ">i8"),
    ("open", "g.open", ">f8"),
    ("high", "g.high", ">f8"),
    ("low", "g.low", ">f8"),
    ("close", "g.close", ">f8"),
    ("volume", "g.volume", ">i8"),
    ("vwap", "coalesce(g.vwap, 'NaN'::float8)", ">f8"),
    ("trade_count", "coalesce(g.trade_count, -1)", ">i8"),
    ("provider", "coalesce(array_position({providers}::text[], g.provider), 0)::int2", ">i2"),
    ("is_provisional", "g.is_provisional", "u1"),
)
_ARRAY_HEADER = 20  # a one-dimensional array: ndim, flags, element type, length, lower bound
# Composed from the constants above only; values are bound by _statement as sql.Literal.
_QUERY = (
    "SELECT "  # noqa: S608
    + ", ".join(f"array_send(array_agg({expression}))" for _, expression, _ in _FIELDS)
    + """
    FROM unnest({tickers}::text[]) WITH ORDINALITY AS t (ticker, n)
    CROSS JOIN LATERAL pgbars.get_bars(t.ticker, {timeframe}, {start}, {end}, {adjust}) AS g"""
)


def read_bars(
    conn_or_dsn: psycopg.Connection[Any] | str,
    tickers: str | Sequence[str],
    timeframe: str,
    start: dt.datetime | dt.date | str | None = None,
    end: dt.datetime | dt.date | str | None = None,
    adjust: Adjust = "splits",
    columns: Sequence[str] | None = None,
    output: Output = "pandas",
) -> Any:
    """Bars of `tickers` and `timeframe` with start <= ts < end, as `get_bars` returns them.

    One ticker (a str): indexed by ts (UTC). Several (a list): indexed by (ticker,
    ts) for pandas; a `ticker` column for polars and arrow. `start`/`end`: a
    timezone-aware datetime, a date (00:00 New York) or an ISO string; None is
    open. `adjust`: none, splits (default) or all. `columns`: a subset of COLUMNS.
    A ticker pgbars does not know raises PgbarsError naming it; invalid input
    (ticker, timeframe, bounds, adjust) raises PgbarsError with get_bars' message.
    """
    names, wanted = _check(tickers, columns, output)
    if isinstance(conn_or_dsn, str):
        with connect_sync(conn_or_dsn) as conn:
            return _read(conn, tickers, names, timeframe, start, end, adjust, wanted, output)
    return _read(conn_or_dsn, tickers, names, timeframe, start, end, adjust, wanted, output)


async def read_bars_async(
    conn_or_dsn: psycopg.AsyncConnection[Any] | str,
    tickers: str | Sequence[str],
    timeframe: str,
    start: dt.datetime | dt.date | str | None = None,
    end: dt.datetime | dt.date | str | None = None,
    adjust: Adjust = "splits",
    columns: Sequence[str] | None = None,
    output: Output = "pandas",
) -> Any:
    """`read_bars` on an asyncio connection (or a DSN, opened and closed here)."""
    names, wanted = _check(tickers, columns, output)
    conn = await connect(conn_or_dsn) if isinstance(conn_or_dsn, str) else conn_or_dsn
    try:
        try:
            names = _normalised(await (await conn.execute(_KNOWN, (names, names))).fetchone())
            query = _statement(names, timeframe, start, end, adjust)
            data = await (await conn.execute(query, binary=True)).fetchone()
        except psycopg.Error as exc:
            raise _error(exc) from None
    finally:
        if isinstance(conn_or_dsn, str):
            await conn.close()
    return _frame(data, tickers, names, wanted, output)


def connect_sync(dsn: str) -> psycopg.Connection[Any]:
    """A blocking autocommit connection (as db.connect's): PgbarsError, never the password, on failure."""
    try:
        return psycopg.connect(dsn, autocommit=True, prepare_threshold=None, **session_kwargs(dsn))
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise PgbarsError(
            f"cannot connect to the database: {scrub_password(_first_line(exc), dsn)}"
        ) from None


def _read(
    conn: psycopg.Connection[Any],
    tickers: str | Sequence[str],
    names: list[str],
    timeframe: str,
    start: Any,
    end: Any,
    adjust: str,
    wanted: list[str],
    output: Output,
) -> Any:
    try:
        names = _normalised(conn.execute(_KNOWN, (names, names)).fetchone())
        query = _statement(names, timeframe, start, end, adjust)
        data = conn.execute(query, binary=True).fetchone()
    except psycopg.Error as exc:
        raise _error(exc) from None
    return _frame(data, tickers, names, wanted, output)


# The tickers as pgbars writes them, and those it does not know (one clear error, not an empty
# frame).
_KNOWN = (
    "SELECT ARRAY(SELECT pgbars.normalize_ticker(u.t)::text"
    " FROM unnest(%s::text[]) WITH ORDINALITY AS u (t, n) ORDER BY u.n), pgbars.unknown_tickers(%s)"
)


def _normalised(row: Any) -> list[str]:
    """The tickers normalised; PgbarsError naming the unknown ones."""
    assert row is not None
    unknown = list(row[1] or [])
    if unknown:
        raise PgbarsError(
            f"unknown ticker{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}:"
            " pgbars has no symbol for it (request it with `pgbars request`)"
        )
    return list(row[0])


def _error(exc: psycopg.Error) -> PgbarsError:
    diag = exc.diag
    return PgbarsError(diag.message_primary or type(exc).__name__)


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


def _statement(names: list[str], timeframe: str, start: Any, end: Any, adjust: str) -> sql.Composed:
    return sql.SQL(_QUERY).format(
        providers=sql.Literal(list(PROVIDERS)),
        tickers=sql.Literal(names),
        timeframe=sql.Literal(timeframe),
        start=sql.Literal(_bound(start, open_end="-infinity")),
        end=sql.Literal(_bound(end, open_end="infinity")),
        adjust=sql.Literal(adjust),
    )


def _columns(row: Any) -> dict[str, np.ndarray[Any, Any]]:
    """The answer's arrays (binary, one per column) as native numpy columns."""
    out: dict[str, np.ndarray[Any, Any]] = {}
    for (name, _, kind), sent in zip(_FIELDS, row, strict=True):
        if sent is None:  # no rows: array_agg of nothing
            out[name] = np.empty(0, dtype=kind.replace(">", "="))
            continue
        element = np.dtype([("length", ">i4"), ("value", kind)])
        values = np.frombuffer(sent, dtype=element, offset=_ARRAY_HEADER)["value"]
        out[name] = values.astype(kind.replace(">", "=")) if kind.startswith(">") else values.astype(bool)
    out["ts"] = (out["ts"] + _PG_EPOCH_US).astype("datetime64[us]")
    return out


def _frame(
    data: Any, tickers: str | Sequence[str], names: list[str], wanted: list[str], output: Output
) -> Any:
    cols = _columns(data)
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
