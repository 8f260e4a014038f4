"""docs/grafana/pgbars.json: every panel's query runs as pgbars_reader, with Grafana's macros filled in."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import as_role, seed, set_clock
from tests.sql.test_get_bars import add_bar

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana" / "pgbars.json"
TIME_FROM = dt.datetime(2024, 12, 1, tzinfo=dt.UTC)
TIME_TO = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
BARS = [dt.datetime(2024, 12, 2, 15, tzinfo=dt.UTC) + dt.timedelta(hours=k) for k in range(3)]


def load() -> dict[str, Any]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(dashboard, dict)
    return dashboard


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in load()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # rows hold their panels when collapsed
    return found


def queries() -> list[tuple[str, str]]:
    """(panel title, rawSql) of every panel target, then of every query variable."""
    found = [(panel["title"], target["rawSql"]) for panel in panels() for target in panel.get("targets", [])]
    variables = load()["templating"]["list"]
    found += [(f"${v['name']}", v["query"]) for v in variables if v["type"] == "query"]
    return found


def literal(instant: dt.datetime) -> str:
    return f"'{instant.isoformat()}'::timestamptz"


def expand(sql: str) -> str:
    """The SQL Grafana's PostgreSQL data source sends, for AAPL h1 over December 2024."""
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN {literal(TIME_FROM)} AND {literal(TIME_TO)}", sql
    )
    sql = sql.replace("$__timeFrom()", literal(TIME_FROM)).replace("$__timeTo()", literal(TIME_TO))
    sql = re.sub(r"\$\{?ticker\}?", "AAPL", sql)
    sql = re.sub(r"\$\{?timeframe\}?", "h1", sql)
    assert "$" not in sql, sql
    return sql


def test_dashboard_shape() -> None:
    dashboard = load()
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS"]["type"] == "datasource"
    assert variables["DS"]["query"] == "grafana-postgresql-datasource"
    assert {"ticker", "timeframe"} <= set(variables)
    types = [panel["type"] for panel in panels()]
    assert "candlestick" in types
    sql = "\n".join(raw for _, raw in queries())
    for view in ("backfill_progress", "provider_usage", "failed_chunks", "live_status", "price_basis_issues"):
        assert f"pgbars.{view}" in sql, view


@pytest.mark.parametrize("panel", panels(), ids=lambda panel: str(panel["title"]))
def test_every_panel_has_a_datasource_and_a_query(panel: dict[str, Any]) -> None:
    assert panel["datasource"]["uid"] == "${DS}"
    assert panel["targets"]
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == "${DS}"
        assert target["rawSql"].strip()


@pytest.fixture
def aapl_bars(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """AAPL with an h1 backfill job (so the monitoring views have a row) and three h1 bars."""
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    row = conn.execute("SELECT id FROM pgbars.symbols WHERE ticker = 'AAPL'").fetchone()
    assert row is not None
    for k, ts in enumerate(BARS):
        add_bar(conn, row[0], "h1", ts, "polygon", 100.0 + k)
    return conn


@pytest.mark.parametrize(("title", "sql"), queries(), ids=[title for title, _ in queries()])
def test_every_query_runs_as_the_reader(aapl_bars: psycopg.Connection[Any], title: str, sql: str) -> None:
    with as_role(aapl_bars, "pgbars_reader"):
        rows = aapl_bars.execute(expand(sql).encode()).fetchall()
    if "get_bars" in sql:
        assert [(ts, close) for ts, _, _, _, close, _ in rows] == [
            (ts, 100.0 + k) for k, ts in enumerate(BARS)
        ]
    if title == "$ticker":
        assert rows == [("AAPL",)]
