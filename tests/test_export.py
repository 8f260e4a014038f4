"""`pgbars export`: one Parquet or CSV file per ticker and timeframe, get_bars' rows, replaced atomically."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from worker.main import cli


def export(dsn: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["export", *args], env={"DATABASE_URL": dsn})


def get_bars(conn: psycopg.Connection[Any], ticker: str, adjust: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT ts, close, volume FROM pgbars.get_bars(%s, 'h1', '-infinity', 'infinity', %s)",
        (ticker, adjust),
    ).fetchall()


def test_parquet_files_hold_get_bars_rows_and_a_rerun_replaces_them(
    split_bars: psycopg.Connection[Any], dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "bars"
    result = export(dsn, "nvda", "MSFT", "--format", "parquet", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["MSFT_h1.parquet", "NVDA_h1.parquet"]
    table = pq.read_table(out / "NVDA_h1.parquet")
    assert list(
        zip(*(table.column(c).to_pylist() for c in ("ts", "close", "volume")), strict=True)
    ) == get_bars(split_bars, "NVDA", "splits")
    counts = {line.split()[0]: line.split()[2] for line in result.output.splitlines()[2:4]}
    assert counts == {"NVDA": "7", "MSFT": "2"}  # the row counts at the end
    assert "9 bars in 2 files (parquet, splits)" in result.output

    before = (out / "NVDA_h1.parquet").stat().st_ino
    again = export(dsn, "NVDA", "--format", "parquet", "--out", str(out), "--adjust", "none")
    assert again.exit_code == 0, again.output
    # a new file renamed over the old one, no temporary left behind
    assert (out / "NVDA_h1.parquet").stat().st_ino != before
    assert sorted(p.name for p in out.iterdir()) == ["MSFT_h1.parquet", "NVDA_h1.parquet"]
    closes = pq.read_table(out / "NVDA_h1.parquet").column("close").to_pylist()
    assert closes == [row[1] for row in get_bars(split_bars, "NVDA", "none")]


def test_csv_with_a_window_of_sessions(split_bars: psycopg.Connection[Any], dsn: str, tmp_path: Path) -> None:
    result = export(
        dsn, "NVDA", "--format", "csv", "--out", str(tmp_path), "--start", "2024-06-06", "--end", "2024-06-07"
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "NVDA_h1.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["ts"][:10] for r in rows] == ["2024-06-06", "2024-06-07"]  # --end is included
    assert rows[0]["provider"] == "polygon" and rows[0]["trade_count"] == ""  # the bar without one


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NVDA", "ZZZZ"], "unknown ticker ZZZZ"),
        (["NVDA", "--timeframe", "m7"], "unknown timeframe 'm7'"),
    ],
)
def test_bad_input_writes_nothing(
    split_bars: psycopg.Connection[Any], dsn: str, tmp_path: Path, args: list[str], message: str
) -> None:
    result = export(dsn, *args, "--format", "csv", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_export_needs_a_format_and_a_folder(dsn: str) -> None:
    result = export(dsn, "NVDA")
    assert result.exit_code == 2 and "Missing option '--format'" in result.output
    result = export(dsn, "NVDA", "--format", "csv", "--out", "x", "--start", "June")
    assert result.exit_code == 2 and "'June' is not a date" in result.output
