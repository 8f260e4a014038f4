"""`pgbars export`: bars into Parquet or CSV files, one per ticker and timeframe, written atomically.

Each file holds `get_bars`' rows for the window (read_bars, output arrow), with
columns ts (UTC), open, high, low, close, volume, vwap, trade_count, provider,
is_provisional. A file is written under a temporary name in the same folder
and renamed over the old one, so a reader never sees half a file and a run
that fails keeps the previous export.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from .db import frames
from .errors import PgbarsError
from .reading import Adjust, read_bars

__all__ = ["Exported", "export_bars"]

Format = Literal["parquet", "csv"]


@dataclass(frozen=True, slots=True)
class Exported:
    ticker: str
    timeframe: str
    rows: int
    path: Path


def file_name(ticker: str, timeframe: str, fmt: Format) -> str:
    return f"{ticker}_{timeframe}.{fmt}"


def export_bars(
    conn: psycopg.Connection[Any],
    tickers: Sequence[str],
    timeframe: str,
    start: dt.date | None,
    end: dt.date | None,
    adjust: Adjust,
    fmt: Format,
    out: Path,
    advance: Callable[[str], None] = lambda ticker: None,
) -> list[Exported]:
    """Write one file per ticker into `out` (created if missing); `advance(ticker)` after each.

    `start`/`end` are session dates, both included. Every ticker, the timeframe and
    the adjustment are checked before any file is written.
    """
    until = None if end is None else end + dt.timedelta(days=1)
    # every ticker as pgbars writes it (BRK.B), for the file names; then one empty read of them
    # all: an unknown ticker, a bad timeframe or adjustment fails before any file is written
    names = frames.known_tickers(conn, tickers)
    read_bars(conn, names, timeframe, dt.date(2000, 1, 3), dt.date(2000, 1, 3), adjust, ["close"])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PgbarsError(f"cannot create {out}: {exc.strerror}") from None
    written = []
    for ticker, name in zip(tickers, names, strict=True):
        table = read_bars(conn, name, timeframe, start, until, adjust, output="arrow")
        path = out / file_name(name, timeframe, fmt)
        _write_atomically(table, path, fmt)
        written.append(Exported(name, timeframe, table.num_rows, path))
        advance(ticker)
    return written


def _write_atomically(table: Any, path: Path, fmt: Format) -> None:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        if fmt == "parquet":
            pq.write_table(table, temporary)
        else:
            pa_csv.write_csv(table, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
