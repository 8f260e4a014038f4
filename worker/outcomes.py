"""What a `pgbars work` run reports: one report per lease, the run's summary, their log lines.

A lease is a history chunk, a live refresh or an action refresh (worker.db.Lease);
each ends in one outcome, logged as one greppable logfmt line (`chunk ...`,
`live ...` or `actions ...`);
the summary feeds the closing `summary` line, `pgbars work --summary`'s
Markdown (worker/report.py) and `--strict`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from . import db
from .providers import ActionsResult, FetchResult

log = logging.getLogger("pgbars.work")

Outcome = Literal["done", "retry", "failed", "rerouted", "released", "lost"]


def logfmt(event: str, **fields: object) -> str:
    """`event key=value ...`, values with spaces quoted, None left out: one greppable line."""
    parts = [event]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if not text or any(c in text for c in ' "='):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


@dataclass(slots=True)
class LeaseReport:
    """What happened to one lease (a history chunk or a live refresh): its log line and the summary's input.

    outcome: done, retry, failed, rerouted, released or lost (a live refresh is done,
    released, failed or lost: it spends no attempts and has no other route).
    """

    lease: db.Lease
    outcome: Outcome = "released"
    requests: int = 0
    bars_written: int = 0
    bars_changed: int = 0
    bars_rejected: int = 0
    seconds: float = 0.0
    detail: str = ""


@dataclass(slots=True)
class WorkSummary:
    worker: str
    providers: list[str]
    progress: list[dict[str, Any]] = field(default_factory=list)  # backfill_progress after the run
    rolled: dict[str, Any] = field(default_factory=dict)  # roll_forward_backfills() at the start
    reports: list[LeaseReport] = field(default_factory=list)  # history chunks
    calls: Counter[str] = field(default_factory=Counter)  # HTTP requests per provider
    rate_limited: Counter[str] = field(default_factory=Counter)  # 429 answers per provider
    refused: dict[str, str] = field(default_factory=dict)  # provider -> why it was dropped
    live: list[LeaseReport] = field(default_factory=list)  # today's bars, beside the backfill
    actions: list[LeaseReport] = field(default_factory=list)  # corporate-action refreshes
    live_skipped: dict[str, str] = field(default_factory=dict)  # live provider -> why it was not asked
    live_no_data: list[tuple[str, str, str, str]] = field(default_factory=list)  # (ticker, tf, provider, why)
    live_error: str | None = None  # the database refused the live part of the run
    provisional_deleted: int = 0  # provisional bars cleaned up at the start
    stopped_by: str = "queue empty"
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.reports if r.outcome == outcome)

    @property
    def strict_failures(self) -> list[str]:
        """Why `pgbars work --strict` fails this run: chunks that ended failed, refused credentials."""
        reasons = []
        failed = self.count("failed")
        if failed:
            reasons.append(f"{failed} chunk{'' if failed == 1 else 's'} ended failed")
        reasons += [f"{provider}: {why}" for provider, why in sorted(self.refused.items())]
        return reasons

    @property
    def bars_written(self) -> int:
        return sum(r.bars_written for r in self.reports)

    @property
    def bars_rejected(self) -> int:
        return sum(r.bars_rejected for r in self.reports)


def record_stored(
    report: LeaseReport, stored: db.StoredChunk, result: FetchResult | ActionsResult, *, empty: str
) -> None:
    """What a store wrote, into the lease's report (an action refresh's counts are actions)."""
    report.outcome = "done"
    report.bars_written = stored.bars_written
    report.bars_changed = stored.bars_changed
    report.bars_rejected = stored.bars_rejected
    if stored.bars_written == 0 and empty:
        report.detail = empty
    if stored.bars_rejected:
        reasons = Counter(row.reason for row in result.rejected)
        report.detail = "quarantined: " + ", ".join(f"{n} {why}" for why, n in reasons.most_common())


def log_lease(report: LeaseReport) -> None:
    """One line per lease: `chunk ...` for history, `live ...` for today's bars, `actions ...`."""
    lease = report.lease
    where: dict[str, object]
    if lease.kind == "history":
        where = {
            "sessions": lease.session_count,
            "first": lease.first_session,
            "last": lease.last_session,
            "provider": lease.provider,
            "attempt": lease.attempt,
        }
    elif lease.kind == "live":
        where = {
            "targets": ",".join(lease.targets),
            "session": lease.session_date,
            "provider": lease.provider,
        }
    else:
        where = {
            "provider": lease.provider,
            "first": lease.first_session,
            "last": lease.last_session,
            "attempt": lease.attempt,
        }
    # an action refresh counts actions (reported, changed, rejected), the others bars
    names = ("reported", "changed", "rejected") if lease.kind == "actions" else _BAR_COUNTS
    counts = dict(zip(names, (report.bars_written, report.bars_changed, report.bars_rejected), strict=True))
    line = logfmt(
        {"history": "chunk", "live": "live", "actions": "actions"}[lease.kind],
        ticker=lease.ticker,
        timeframe=lease.timeframe,  # None, left out, for an action refresh
        **where,
        requests=report.requests,
        **counts,
        seconds=f"{report.seconds:.2f}",
        outcome=report.outcome,
        detail=report.detail or None,
    )
    log.log(logging.WARNING if report.outcome in ("failed", "lost") else logging.INFO, line)


_BAR_COUNTS = ("bars_written", "bars_changed", "bars_rejected")


def log_summary(s: WorkSummary) -> None:
    """The run's closing lines: one `summary`, then one `provider` line each."""
    log.info(
        logfmt(
            "summary",
            worker=s.worker,
            chunks=len(s.reports),
            done=s.count("done"),
            retry=s.count("retry"),
            failed=s.count("failed"),
            rerouted=s.count("rerouted"),
            released=s.count("released"),
            lost=s.count("lost"),
            bars_written=s.bars_written,
            bars_rejected=s.bars_rejected,
            live=len(s.live),
            live_bars_written=sum(r.bars_written for r in s.live),
            action_refreshes=len(s.actions),
            requests=sum(s.calls.values()),
            rate_limited=sum(s.rate_limited.values()),
            seconds=f"{s.seconds:.1f}",
            stopped_by=s.stopped_by,
        )
    )
    for name in s.providers:
        log.info(
            logfmt(
                "provider",
                name=name,
                requests=s.calls[name],
                rate_limited=s.rate_limited[name],
                refused=s.refused.get(name),
            )
        )
