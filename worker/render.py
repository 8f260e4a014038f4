"""What the CLI prints: plain-text tables, progress bars, ETAs, JSON values, repair lines.

Kept apart from worker/main.py, which parses commands and calls the database;
this module only turns rows into text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from . import db
from .demo import DemoResult
from .report import progress_bar

# C0, DEL and C1 (U+0080-U+009F: some terminals read U+009B as an escape)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """`value` as text with control characters (terminal escapes, line breaks) shown as '?'."""
    return _CONTROL.sub("?", str(value))


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], right: Collection[str] = ()) -> str:
    """A plain-text table; columns named in `right` are right-aligned (numbers). Cells never
    carry control characters: a name stored before they were refused cannot drive the terminal."""
    cells = [[("" if r[c] is None else printable(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if c in right else v.ljust(w) for c, v, w in zip(columns, values, widths, strict=True)
        )

    lines = [line(columns), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


PROGRESS_COLUMNS = (
    "symbol",
    "timeframe",
    "status",
    "progress",
    "done",
    "pending",
    "running",
    "failed",
    "total",
    "bars_written",
    "first_session",
    "last_session",
)


def upgrade_text(report: db.UpgradeReport) -> str:
    """What `pgbars db upgrade` did, in one line."""
    if not report.changed:
        return f"schema is up to date ({report.seconds:.2f} s)"
    parts = []
    if report.fresh_install:
        parts.append("installed the schema")
    if report.migrations_applied:
        parts.append("applied " + ", ".join(report.migrations_applied))
    if report.routines_applied:
        parts.append("updated functions, views and triggers")
    if report.sessions_added:
        parts.append(f"loaded {report.sessions_added} market sessions")
    if report.partitions_added:
        parts.append(f"created {report.partitions_added} year partitions of the bars")
    if report.queue_statements:
        parts.append("installed or upgraded the schedules' tables (pgbars_queue)")
    return "; ".join(parts) + f" ({report.seconds:.2f} s)"


STATUS_COLUMNS = ("symbol", "timeframe", "status", "progress", "chunks", "failed", "bars", "eta")
BAR_CELLS = 10


def progress_cell(percent: float) -> str:
    return progress_bar(percent, BAR_CELLS)


def duration_text(seconds: float) -> str:
    """`now` (under a minute), `~3 min`, `~2 h 10 min`, `~1 d 4 h`."""
    if seconds < 60:
        return "now"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"~{minutes} min"
    if minutes < 24 * 60:
        hours, minutes = divmod(minutes, 60)
        return f"~{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(round(seconds / 3600), 24)
    return f"~{days} d" + (f" {hours} h" if hours else "")


def eta_text(row: dict[str, Any]) -> str:
    if not row["remaining_requests"]:
        return "—"  # done, or only failed chunks left: they need a person, not time
    if row["eta_seconds"] is None:
        return f"— ({row['provider']} disabled)"
    text = duration_text(row["eta_seconds"])
    if row["paused_until"] is not None:
        text += f" (paused until {row['paused_until'].astimezone():%H:%M})"
    return text


def status_cells(row: dict[str, Any]) -> dict[str, Any]:
    """A row of backfill_progress_with_eta as the cells of the status table."""
    return {
        "symbol": row["symbol"],
        "timeframe": (
            f"{row['timeframe']} (from {row['derived_from']})"
            if row.get("derived_from")
            else row["timeframe"]
        ),
        "status": row["status"],
        # progress is rounded to 0.1: 99.96 % must not show a full bar while work is left
        "progress": progress_cell(
            min(float(row["progress"]), 99.9) if row["status"] in ("pending", "running") else row["progress"]
        ),
        "chunks": f"{row['done']}/{row['total']}",
        "failed": row["failed"],
        "bars": f"{row['bars']:,}",
        "eta": eta_text(row),
    }


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def status_json(row: dict[str, Any], issues: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A job's status row; `price_basis_issues` lists its symbol's (pgbars.price_basis_issues)."""
    out = {key: json_value(value) for key, value in row.items()}
    if row["eta_seconds"] is not None:
        out["eta_seconds"] = round(row["eta_seconds"])
    out["price_basis_issues"] = [
        {"issue": i["issue"], "detail": i["detail"]} for i in issues if i["symbol"] == row["symbol"]
    ]
    return out


COVERAGE_COLUMNS = (
    "symbol",
    "timeframe",
    "bars",
    "first_bar",
    "last_bar",
    "units_planned",
    "units_with_bars",
    "units_missing",
    "coverage",
)


def dates_text(dates: Sequence[dt.date], shown: int = 5) -> str:
    """`2024-12-04, 2024-12-24`, or the first `shown` and `and 7 more`."""
    text = ", ".join(d.isoformat() for d in dates[:shown])
    return text + (f" and {len(dates) - shown} more" if len(dates) > shown else "")


def repair_line(row: dict[str, Any]) -> str:
    sessions = row["sessions"]
    count = f"{len(sessions)} session{'' if len(sessions) == 1 else 's'}"
    chunk = f"chunk {row['first_session']} .. {row['last_session']}"
    what = {
        "requeued_empty": f"re-queued {chunk} for {count} answered without bars: {dates_text(sessions)}",
        "requeued_failed": f"re-queued failed {chunk} ({count} missing) with fresh attempts",
        "confirmed_empty": f"{count} empty again after the re-fetch, now confirmed empty"
        f" (never fetched again): {dates_text(sessions)}",
    }[row["action"]]
    return f"{row['symbol']} {row['timeframe']}: {what}"


def demo_report(result: DemoResult) -> str:
    """What `pgbars demo` prints after its run: progress, coverage, requests and bars."""
    lines = ["", format_table(result.progress, PROGRESS_COLUMNS), ""]
    lines += ["coverage (sessions with bars of the sessions planned):"]
    lines += [format_table(result.coverage, COVERAGE_COLUMNS)]
    if result.split:
        lines += [
            "",
            "NVDA d1 across its 10-for-1 split of 2024-06-10, stored as traded (get_bars p_adjust 'none')"
            " and read split-adjusted ('splits', the default):",
            format_table(
                result.split,
                ["session", "close (none)", "close (splits)", "volume (none)", "volume (splits)", "provider"],
                right=("close (none)", "close (splits)", "volume (none)", "volume (splits)"),
            ),
        ]
    summary = result.summary
    if summary is not None:
        requests = sum(r.requests for r in summary.reports)
        lines += [
            "",
            f"{len(summary.reports)} chunks fetched with {requests} requests,"
            f" {summary.bars_written:,} bars written, {summary.bars_rejected} rejected;"
            f" demo finished in {result.seconds:.1f} s",
        ]
        if summary.actions:
            lines += [
                f"corporate actions: {len(summary.actions)} refreshes with"
                f" {sum(r.requests for r in summary.actions)} requests,"
                f" {sum(r.bars_written for r in summary.actions)} splits and dividends reported"
            ]
        if summary.live:
            # Only while a session trades (04:00-20:00 New York): today's bars from the Tradier server.
            lines += [
                f"today's bars: {len(summary.live)} live refreshes with"
                f" {sum(r.requests for r in summary.live)} requests,"
                f" {sum(r.bars_written for r in summary.live):,} provisional bars"
            ]
    lines += ["remove everything the demo wrote with: pgbars demo --remove"]
    return "\n".join(lines)
