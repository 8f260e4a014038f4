"""The Markdown summary of a `pgbars work` run (`--summary FILE`, e.g. $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .outcomes import WorkSummary

_BAR_WIDTH = 20


def progress_bar(percent: float, width: int = _BAR_WIDTH) -> str:
    """`███████░░░░░░░░░░░░░  35%`: cells and percent both round down, so 100% means done."""
    whole = max(0, min(100, math.floor(percent)))
    filled = whole * width // 100
    return "█" * filled + "░" * (width - filled) + f" {whole:3d}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _live_section(summary: WorkSummary) -> list[str]:
    """Today's bars: what was refreshed, and what could not be (once per provider or symbol)."""
    if not (summary.live or summary.live_skipped or summary.live_no_data or summary.live_error):
        return []
    lines = ["", "### Today's bars", ""]
    if summary.live:
        lines += [
            f"{len(summary.live)} live refreshes ({sum(r.requests for r in summary.live)} requests):"
            f" {sum(r.bars_written for r in summary.live)} bars fetched,"
            f" {sum(r.bars_changed for r in summary.live)} provisional bars new or changed.",
            "",
        ]
    if summary.live_error:
        lines += [f"- The live refreshes stopped: {summary.live_error}."]
    for provider, why in sorted(summary.live_skipped.items()):
        lines += [f"- {provider} was not asked for today's bars: {why}."]
    for ticker, timeframe, provider, why in summary.live_no_data:
        lines += [f"- {ticker} {timeframe}: {why} ({provider})."]
    failed = [r for r in summary.live if r.outcome in ("failed", "lost")]
    for r in failed:
        lines += [f"- {r.lease.ticker} {r.lease.timeframe}: {r.outcome}, {r.detail}."]
    return lines


def _actions_section(summary: WorkSummary) -> list[str]:
    """The run's corporate-action refreshes, when it made any."""
    if not summary.actions:
        return []
    refreshes = summary.actions
    lines = [
        "",
        "### Corporate actions",
        "",
        f"{len(refreshes)} refreshes ({sum(r.requests for r in refreshes)} requests):"
        f" {sum(r.bars_written for r in refreshes)} splits and dividends reported,"
        f" {sum(r.bars_changed for r in refreshes)} in force new or changed,"
        f" {sum(r.bars_rejected for r in refreshes)} rows quarantined.",
    ]
    for r in refreshes:
        if r.outcome != "done":
            lines += [f"- {r.lease.ticker} ({r.lease.provider}): {r.outcome}, {r.detail}."]
    return lines


def summary_markdown(summary: WorkSummary, *, strict: bool = False) -> str:
    """Chunks by outcome, bars, requests and 429s per provider, then the progress table;
    with `strict`, why the run failed (`pgbars work --strict`)."""
    progress = summary.progress
    lines = [
        "## pgbars work",
        "",
        f"Worker `{summary.worker}` ran {summary.seconds:.1f} s and stopped: {summary.stopped_by}.",
        "",
    ]
    rolled = summary.rolled
    if rolled.get("chunks_added"):
        lines += [
            f"Roll-forward to {rolled.get('last_completed_session')}: {rolled.get('jobs_extended')} jobs,"
            f" {rolled.get('chunks_added')} new chunks for {rolled.get('sessions_added')} sessions.",
            "",
        ]
    lines += _table(
        [
            "chunks",
            "done",
            "retry",
            "failed",
            "rerouted",
            "released",
            "lost",
            "bars written",
            "bars rejected",
        ],
        [
            [
                len(summary.reports),
                summary.count("done"),
                summary.count("retry"),
                summary.count("failed"),
                summary.count("rerouted"),
                summary.count("released"),
                summary.count("lost"),
                summary.bars_written,
                summary.bars_rejected,
            ]
        ],
    )
    lines += [""]
    lines += _table(
        ["provider", "requests", "429s", "note"],
        [
            [name, summary.calls[name], summary.rate_limited[name], summary.refused.get(name, "")]
            for name in summary.providers
        ],
    )
    lines += _live_section(summary)
    lines += _actions_section(summary)
    if strict and summary.strict_failures:
        lines += ["", "### Why this run failed (--strict)", ""]
        lines += [f"- {reason}" for reason in summary.strict_failures]
    problems = [r for r in summary.reports if r.outcome in ("failed", "lost")]
    if problems:
        lines += ["", "### Chunks that need a look", ""]
        lines += _table(
            ["symbol", "timeframe", "sessions", "provider", "outcome", "detail"],
            [
                [
                    r.lease.ticker,
                    r.lease.timeframe,
                    f"{r.lease.first_session} .. {r.lease.last_session}",
                    r.lease.provider,
                    r.outcome,
                    r.detail,
                ]
                for r in problems
            ],
        )
    lines += ["", "### Progress", ""]
    if progress:
        lines += _table(
            ["symbol", "timeframe", "status", "progress", "chunks done", "failed", "total", "bars"],
            [
                [
                    p["symbol"],
                    p["timeframe"],
                    p["status"],
                    progress_bar(p["progress"]),
                    p["done"],
                    p["failed"],
                    p["total"],
                    p["bars_written"],
                ]
                for p in progress
            ],
        )
    else:
        lines += ["No backfill jobs yet."]
    return "\n".join(lines) + "\n"
