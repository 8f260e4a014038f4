"""`pgbars work`: claim chunks, fetch them under the shared rate limit, write them.

The database decides everything (sql/): which chunk comes next, when each
HTTP call may start, what a failure means for the chunk. This module runs
up to `concurrency` chunks at once inside a time budget and reports each
outcome back:

    claim (lease) -> per request: reserve a slot, sleep until it, GET, record the call
                  -> COPY bars and refused rows into staging -> store_chunk_bars (one transaction)

A chunk that could not be started or finished through no fault of its own
(budget spent, shutdown, a 429, a refused credential) is released without
spending an attempt. Only expected failures are classified here; the
mapping from HTTP to error class lives in worker.providers.classify.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from worker import db
from worker.errors import FailureKind, PgbarsError
from worker.providers import (
    CREDENTIALS,
    FetchRequest,
    FetchResult,
    Provider,
    ProviderError,
    RateLimited,
    build_providers,
)

log = logging.getLogger("pgbars.work")
R = TypeVar("R")

Outcome = Literal["done", "retry", "failed", "rerouted", "released", "lost"]
LEASE_LOST = "PB001"
# After the budget, fetches already under way get this long to finish before
# they are abandoned (released); a shutdown signal does not wait at all.
FINISH_GRACE_SECONDS = 20.0
# With chunks in flight and free slots, look for newly due chunks this often.
RECLAIM_SECONDS = 5.0
MIN_WAIT_SECONDS = 0.2
# Live refreshes are claimed in one go (each at most once a run), with a lease that
# outlasts the run, so that none queued behind the others expires meanwhile.
LIVE_CLAIM_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class WorkConfig:
    max_seconds: float = 240.0
    concurrency: int = 4
    tickers: tuple[str, ...] = ()
    lease_seconds: float = 300.0
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    allow_demo_database: bool = False  # only `pgbars demo` works in a database marked as the demo's


@dataclass(slots=True)
class ChunkReport:
    """What happened to one claimed chunk: the per-chunk log line and the summary's input."""

    chunk: db.ClaimedChunk
    outcome: Outcome = "released"
    requests: int = 0
    bars_written: int = 0
    bars_changed: int = 0
    bars_rejected: int = 0
    seconds: float = 0.0
    detail: str = ""


@dataclass(slots=True)
class LiveReport:
    """What happened to one live refresh (today's bars of a symbol from the live provider)."""

    refresh: db.LiveRefresh
    outcome: Literal["done", "released", "failed", "lost"] = "released"
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
    reports: list[ChunkReport] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # HTTP requests per provider
    rate_limited: Counter[str] = field(default_factory=Counter)  # 429 answers per provider
    refused: dict[str, str] = field(default_factory=dict)  # provider -> why it was dropped
    live: list[LiveReport] = field(default_factory=list)  # today's bars, beside the backfill
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


def _record_stored(
    report: ChunkReport | LiveReport, stored: db.StoredChunk, result: FetchResult, *, empty: str
) -> None:
    """What a store wrote, into the chunk's or live refresh's report."""
    report.outcome = "done"
    report.bars_written = stored.bars_written
    report.bars_changed = stored.bars_changed
    report.bars_rejected = stored.bars_rejected
    if stored.bars_written == 0:
        report.detail = empty
    if stored.bars_rejected:
        reasons = Counter(row.reason for row in result.rejected)
        report.detail = "quarantined: " + ", ".join(f"{n} {why}" for why, n in reasons.most_common())


class _Stopping(Exception):
    """A shutdown signal arrived while the chunk waited for its slot."""


class _BudgetSpent(Exception):
    """The next call of the provider would start after the run's budget."""


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


class _Pacer:
    """The Pace of one chunk or live refresh: a ledger reservation before each request, its outcome after."""

    def __init__(self, worker: Worker, provider: str, chunk_id: int | None) -> None:
        self._worker = worker
        self._provider = provider
        self._chunk_id = chunk_id
        self._call_id: int | None = None
        self._sent = False
        self._started = 0.0
        self._status: int | None = None
        self._answered = False
        self.requests = 0

    async def __call__(self) -> None:
        await self.close(None)
        worker, provider = self._worker, self._provider
        if worker.stopping:
            raise _Stopping
        async with worker.pool.connection() as conn:
            reservation = await db.reserve_call(
                conn, provider, worker.config.worker_name, self._chunk_id, worker.not_after
            )
        if reservation.call_id is None:
            raise _BudgetSpent(
                f"next {provider} slot at {reservation.starts_at:%H:%M:%S} UTC is after the budget"
            )
        self._call_id, self._sent, self._answered, self._status = reservation.call_id, False, False, None
        if reservation.wait_seconds > 0 and await worker.sleep(reservation.wait_seconds):
            await self.cancel()
            raise _Stopping
        self._sent = True
        self._started = time.monotonic()
        self.requests += 1
        worker.summary.calls[provider] += 1

    def answered(self, status: int | None) -> None:
        self._status, self._answered = status, True
        if status == 429:
            self._worker.summary.rate_limited[self._provider] += 1

    async def close(self, error: str | None) -> None:
        """Record the open call's outcome in the ledger (with `error` if the fetch failed)."""
        call_id, self._call_id = self._call_id, None
        if call_id is None:
            return
        duration = round((time.monotonic() - self._started) * 1000)
        async with self._worker.pool.connection() as conn:
            await db.complete_call(conn, call_id, self._status, duration, error)

    async def cancel(self) -> None:
        """Give back a reservation whose request was never sent."""
        call_id, self._call_id = self._call_id, None
        if call_id is not None:
            async with self._worker.pool.connection() as conn:
                await db.cancel_call(conn, call_id)

    async def abandon(self) -> None:
        """After a cancellation: cancel an unsent call, record a sent one as abandoned."""
        if self._call_id is not None and not self._sent:
            await self.cancel()
        elif self._call_id is not None:
            await self.close(None if self._answered else "abandoned: the worker stopped")


@dataclass(slots=True)
class _Running(Generic[R]):
    task: asyncio.Task[R]
    phase: Literal["fetch", "settle"] = "fetch"  # stop() cancels fetches only


class Worker:
    """One `pgbars work` run. `run()` returns its summary; it never raises for a chunk's failure."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        providers: Mapping[str, Provider],
        config: WorkConfig,
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self.pool = pool
        self.providers = dict(providers)
        self.config = config
        self.unavailable = dict(unavailable or {})  # provider -> why this run cannot use it
        self.summary = WorkSummary(config.worker_name, sorted(providers))
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        self._deadline = self._started + config.max_seconds
        self.not_after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=config.max_seconds)
        self._spent: set[str] = set()  # providers whose next slot is past the budget
        self._running: dict[int, _Running[ChunkReport]] = {}
        self._live_running: dict[tuple[uuid.UUID, str], _Running[LiveReport]] = {}

    # --- control -------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, reason: str = "signal") -> None:
        """Stop claiming and abandon fetches (their chunks are released); writes finish."""
        if not self._stop.is_set():
            self.summary.stopped_by = reason
            log.info(logfmt("stopping", reason=reason, worker=self.config.worker_name))
            self._stop.set()
            tasks: list[asyncio.Task[Any]] = [r.task for r in self._running.values() if r.phase == "fetch"]
            tasks += [r.task for r in self._live_running.values() if r.phase == "fetch"]
            for task in tasks:
                task.cancel()

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a stop cut it short."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        return True

    def _usable(self) -> list[str]:
        return sorted(set(self.providers) - set(self.summary.refused) - self._spent)

    # --- the run -------------------------------------------------------------------

    async def run(self) -> WorkSummary:
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests) or no signal support
        log.info(
            logfmt(
                "start",
                worker=self.config.worker_name,
                providers=",".join(self.summary.providers),
                concurrency=self.config.concurrency,
                budget_s=self.config.max_seconds,
                tickers=",".join(self.config.tickers) or None,
            )
        )
        # Today's bars and the backfill run side by side: a long watchlist's live
        # refreshes (one provider) do not hold up the history (another).
        live = asyncio.create_task(self._refresh_live(), name="live")
        try:
            await self._claim_loop()
            await self._finish()
            await live
        finally:
            if not live.done():
                live.cancel()
                await asyncio.gather(live, return_exceptions=True)
            for signum in installed:
                loop.remove_signal_handler(signum)
        self.summary.seconds = time.monotonic() - self._started
        self._log_summary()
        return self.summary

    async def _claim_loop(self) -> None:
        tickers = self.config.tickers or None
        while not self.stopping:
            if time.monotonic() >= self._deadline:
                self.summary.stopped_by = "budget spent"
                return
            usable = self._usable()
            if not usable:
                if not self._running:
                    self.summary.stopped_by = "no provider left" if self.summary.refused else "budget spent"
                    return
                await self._wait_for_running(None)
                continue
            free = self.config.concurrency - len(self._running)
            claimed: list[db.ClaimedChunk] = []
            if free > 0:
                async with self.pool.connection() as conn:
                    claimed = await db.claim_chunks(
                        conn, self.config.worker_name, usable, free, self.config.lease_seconds, tickers
                    )
                for chunk in claimed:
                    task = asyncio.create_task(self._process(chunk), name=f"chunk-{chunk.chunk_id}")
                    self._running[chunk.chunk_id] = _Running(task)
            if self._running:
                # Wake when a chunk finishes; with free slots also now and then, for chunks
                # that become due meanwhile.
                await self._wait_for_running(
                    RECLAIM_SECONDS if len(self._running) < self.config.concurrency else None
                )
                continue
            async with self.pool.connection() as conn:
                wait = await db.seconds_until_claimable(conn, usable, tickers)
            if wait is None:
                self.summary.stopped_by = "queue empty"
                return
            if time.monotonic() + wait >= self._deadline:
                self.summary.stopped_by = "nothing due before the budget ends"
                return
            if wait >= 1.0:
                log.info(logfmt("waiting", seconds=round(wait, 1), reason="next chunk not due yet"))
            # At least a moment: a chunk due "now" that the claim did not return (another
            # worker's claim held it) must not turn this loop into a spin.
            await self.sleep(max(wait, MIN_WAIT_SECONDS))

    async def _wait_for_running(self, at_most: float | None) -> None:
        tasks = [r.task for r in self._running.values()]
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait([*tasks, stop], timeout=at_most, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        self._reap()

    def _reap(self) -> None:
        for chunk_id, running in list(self._running.items()):
            if running.task.done():
                del self._running[chunk_id]
                self.summary.reports.append(running.task.result())

    async def _finish(self) -> None:
        """After the claim loop: let chunks in flight end (abandon fetches on a stop)."""
        if not self._running:
            return
        remaining = self._deadline + FINISH_GRACE_SECONDS - time.monotonic()
        tasks = [r.task for r in self._running.values()]
        stop = asyncio.create_task(self._stop.wait())
        try:
            while tasks and not self.stopping and remaining > 0:
                await asyncio.wait([*tasks, stop], timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                tasks = [t for t in tasks if not t.done()]
                remaining = self._deadline + FINISH_GRACE_SECONDS - time.monotonic()
        finally:
            stop.cancel()
        if tasks and not self.stopping:
            self.stop("grace period over")
        await asyncio.gather(*(r.task for r in self._running.values()))
        self._reap()

    # --- today's bars ----------------------------------------------------------------

    async def _refresh_live(self) -> None:
        """While a session trades: today's bars of every due (symbol, live timeframe).

        The database says which refreshes are due (claim_live_refreshes); each is one
        request under the provider's shared rate limit, `concurrency` at a time. A
        database error here is reported and ends only this part: the backfill goes on.
        """
        try:
            await self._refresh_live_or_raise()
        except psycopg.Error as exc:
            self.summary.live_error = db.describe_error(exc)
            log.error(logfmt("live_error", error=self.summary.live_error))

    async def _refresh_live_or_raise(self) -> None:
        tickers = self.config.tickers or None
        async with self.pool.connection() as conn:
            state = await db.live_state(conn, tickers)
            if state.session is None:
                return
            for provider, wanted in state.wanted.items():
                if provider not in self.providers:
                    why = self.unavailable.get(provider, f"{provider} is not usable")
                    self.summary.live_skipped[provider] = why
                    log.warning(logfmt("live_skipped", provider=provider, refreshes=wanted, reason=why))
            refreshes = await db.claim_live(
                conn,
                self.config.worker_name,
                self._usable(),
                LIVE_CLAIM_LIMIT,
                max(self.config.lease_seconds, self.config.max_seconds + FINISH_GRACE_SECONDS),
                tickers,
            )
        gate = asyncio.Semaphore(self.config.concurrency)
        for refresh in refreshes:
            task = asyncio.create_task(self._live_one(refresh, gate), name=f"live-{refresh.ticker}")
            self._live_running[(refresh.symbol_id, refresh.timeframe)] = _Running(task)
        try:
            self.summary.live.extend(await asyncio.gather(*(r.task for r in self._live_running.values())))
        finally:
            self._live_running.clear()
        async with self.pool.connection() as conn:
            state = await db.live_state(conn, tickers)
        # Once per run and symbol, not per bar or per request.
        self.summary.live_no_data = state.no_data
        for ticker, timeframe, provider, why in state.no_data:
            log.warning(
                logfmt("live_no_data", ticker=ticker, timeframe=timeframe, provider=provider, reason=why)
            )

    async def _live_one(self, refresh: db.LiveRefresh, gate: asyncio.Semaphore) -> LiveReport:
        """Fetch and store one live refresh. Never raises: the report says what happened."""
        report = LiveReport(refresh)
        started = time.monotonic()
        pacer = _Pacer(self, refresh.provider, None)
        try:
            async with gate:
                await self._live_fetch_and_store(refresh, pacer, report)
        except asyncio.CancelledError:
            # stop() while waiting for the gate or fetching: give the refresh back.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await pacer.abandon()
            await self._settle(
                refresh.lease_id,
                refresh.provider,
                report,
                "unfinished",
                "the worker stopped before the bars were written",
            )
        except psycopg.Error as exc:
            await self._database_error(refresh.lease_id, refresh.provider, report, exc)
        report.requests = pacer.requests
        report.seconds = time.monotonic() - started
        self._log_live(report)
        return report

    async def _live_fetch_and_store(self, refresh: db.LiveRefresh, pacer: _Pacer, report: LiveReport) -> None:
        provider = refresh.provider
        if self.stopping or provider in self.summary.refused or provider in self._spent:
            why = self.summary.refused.get(provider) or ("stopping" if self.stopping else "budget spent")
            await self._settle(refresh.lease_id, provider, report, "unfinished", why)
            return
        request = FetchRequest(
            ticker=refresh.ticker,
            timeframe=refresh.timeframe,
            start=refresh.range_start,
            end=refresh.range_end,
            first_session=refresh.session_date,
            last_session=refresh.session_date,
        )
        fetched = await self._fetch(provider, request, pacer)
        if not isinstance(fetched, FetchResult):
            await self._settle_failure(refresh.lease_id, provider, pacer, report, fetched)
            return
        result = fetched
        # From here a stop waits: the outcome is being recorded.
        self._live_running[(refresh.symbol_id, refresh.timeframe)].phase = "settle"
        await pacer.close(None)
        rejected = [(row.ts, row.raw, row.reason) for row in result.rejected]
        async with self.pool.connection() as conn:
            stored = await db.store_live(conn, refresh, result.bars, rejected, pacer.requests)
        _record_stored(report, stored, result, empty="no bars yet")

    def _log_live(self, report: LiveReport) -> None:
        refresh = report.refresh
        line = logfmt(
            "live",
            ticker=refresh.ticker,
            timeframe=refresh.timeframe,
            targets=",".join(refresh.targets),
            session=refresh.session_date,
            provider=refresh.provider,
            requests=report.requests,
            bars_written=report.bars_written,
            bars_changed=report.bars_changed,
            bars_rejected=report.bars_rejected,
            seconds=f"{report.seconds:.2f}",
            outcome=report.outcome,
            detail=report.detail or None,
        )
        log.log(logging.WARNING if report.outcome in ("failed", "lost") else logging.INFO, line)

    # --- one chunk -----------------------------------------------------------------

    async def _process(self, chunk: db.ClaimedChunk) -> ChunkReport:
        """Fetch, write and report one chunk. Never raises: the report says what happened."""
        report = ChunkReport(chunk)
        started = time.monotonic()
        pacer = _Pacer(self, chunk.provider, chunk.chunk_id)
        try:
            try:
                request = FetchRequest(
                    ticker=chunk.ticker,
                    timeframe=chunk.timeframe,
                    start=chunk.range_start,
                    end=chunk.range_end,
                    first_session=chunk.first_session,
                    last_session=chunk.last_session,
                )
                fetched = await self._fetch(chunk.provider, request, pacer)
            except asyncio.CancelledError:
                # stop() during the fetch: give the chunk back. Swallowed on purpose:
                # this task was cancelled by its own worker, which collects its report.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                await pacer.abandon()
                await self._settle(
                    chunk.lease_id,
                    chunk.provider,
                    report,
                    "unfinished",
                    "the worker stopped before the chunk was written",
                )
            else:
                # From here a stop waits for this chunk: its outcome is being recorded.
                self._running[chunk.chunk_id].phase = "settle"
                if isinstance(fetched, FetchResult):
                    await pacer.close(None)
                    await self._store(chunk, fetched, pacer.requests, report)
                else:
                    await self._settle_failure(chunk.lease_id, chunk.provider, pacer, report, fetched)
        except psycopg.Error as exc:
            await self._database_error(chunk.lease_id, chunk.provider, report, exc)
        report.requests = pacer.requests
        report.seconds = time.monotonic() - started
        self._log_chunk(report)
        return report

    async def _fetch(self, provider: str, request: FetchRequest, pacer: _Pacer) -> FetchResult | Exception:
        """The provider's answer, or the exception that stands for it (CancelledError on a stop)."""
        try:
            return await self.providers[provider].fetch(request, pacer)
        except _Stopping:
            raise asyncio.CancelledError from None
        except (ProviderError, _BudgetSpent) as exc:
            return exc
        except Exception as exc:  # a bug in a provider: recorded, retried, never silent
            log.exception("unexpected error while fetching %s %s", request.ticker, request.timeframe)
            return exc

    # --- a lease that ended without bars: Python names the failure, SQL settles it -------

    async def _settle_failure(
        self,
        lease_id: uuid.UUID,
        provider: str,
        pacer: _Pacer,
        report: ChunkReport | LiveReport,
        exc: Exception,
    ) -> None:
        """Reduce what the fetch raised to a failure kind, close its ledger call, settle the lease."""
        if isinstance(exc, _BudgetSpent):
            await pacer.cancel()
            self._spent.add(provider)
            await self._settle(lease_id, provider, report, "unfinished", f"budget: {exc}")
        elif isinstance(exc, ProviderError):
            await pacer.close(str(exc))
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            await self._settle(lease_id, provider, report, exc.kind, str(exc), retry_after)
        else:
            # The type only: an unexpected exception's text is not known to be free of secrets.
            what = f"{provider}: unexpected {type(exc).__name__}"
            await pacer.close(what)
            await self._settle(lease_id, provider, report, "transient", what)

    async def _database_error(
        self, lease_id: uuid.UUID, provider: str, report: ChunkReport | LiveReport, exc: psycopg.Error
    ) -> None:
        """A statement of this lease failed: a lost lease, or the database itself."""
        if exc.sqlstate == LEASE_LOST:
            report.outcome, report.detail = "lost", db.describe_error(exc)
            return
        try:
            await self._settle(lease_id, provider, report, "transient", f"database: {db.describe_error(exc)}")
        except psycopg.Error as again:
            # Not even the failure could be recorded: the lease runs out and the work returns.
            log.error(logfmt("unrecorded", lease=lease_id, error=db.describe_error(again)))
            report.outcome, report.detail = "lost", f"outcome not recorded: {db.describe_error(exc)}"

    async def _settle(
        self,
        lease_id: uuid.UUID,
        provider: str,
        report: ChunkReport | LiveReport,
        kind: FailureKind,
        error: str,
        retry_after: float | None = None,
    ) -> None:
        """pgbars.settle_lease decides; the run only stops using a provider that refused its credential."""
        async with self.pool.connection() as conn:
            settled = await db.settle(conn, lease_id, kind, error, retry_after)
        if kind == "refused":
            self._refuse(provider, error)
        report.outcome = settled.outcome  # type: ignore[assignment]
        if settled.paused_until is not None:
            report.detail = f"{error}; {provider} paused until {settled.paused_until:%H:%M:%S} UTC"
        elif settled.outcome == "rerouted":
            report.detail = f"{error}; moved to {settled.moved_to}"
        elif kind == "not_covered" and isinstance(report, ChunkReport):
            report.detail = f"{error}; no other route"
        else:
            report.detail = error

    async def _store(
        self, chunk: db.ClaimedChunk, result: FetchResult, requests: int, report: ChunkReport
    ) -> None:
        rejected = [(row.ts, row.raw, row.reason) for row in result.rejected]
        async with self.pool.connection() as conn:
            stored = await db.store_chunk(conn, chunk, result.bars, rejected, requests)
        _record_stored(report, stored, result, empty="no bars for these sessions")

    def _refuse(self, provider: str, why: str) -> None:
        """A refused credential: the provider is dropped for this run, said once."""
        if provider not in self.summary.refused:
            self.summary.refused[provider] = why
            log.warning(logfmt("provider_refused", provider=provider, reason=why))

    # --- logging -------------------------------------------------------------------

    def _log_chunk(self, report: ChunkReport) -> None:
        chunk = report.chunk
        line = logfmt(
            "chunk",
            ticker=chunk.ticker,
            timeframe=chunk.timeframe,
            sessions=chunk.session_count,
            first=chunk.first_session,
            last=chunk.last_session,
            provider=chunk.provider,
            attempt=chunk.attempt,
            requests=report.requests,
            bars_written=report.bars_written,
            bars_changed=report.bars_changed,
            bars_rejected=report.bars_rejected,
            seconds=f"{report.seconds:.2f}",
            outcome=report.outcome,
            detail=report.detail or None,
        )
        level = logging.WARNING if report.outcome in ("failed", "lost") else logging.INFO
        log.log(level, line)

    def _log_summary(self) -> None:
        s = self.summary
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


async def prepare(
    pool: AsyncConnectionPool, configured: Sequence[str], *, allow_demo_database: bool = False
) -> list[str]:
    """Check the schema and return the configured providers the database has enabled.

    Raises PgbarsError (one line) when the worker cannot run at all, or when the
    database is the demo's (its synthetic bars never meet real ones).
    """
    async with pool.connection() as conn:
        await db.ensure_schema_current(conn)
        if not allow_demo_database:
            await db.require_not_demo(conn)
        usable = await db.enabled_providers(conn, configured)
    if not usable:
        raise PgbarsError(
            "no usable provider: configured "
            + (", ".join(configured) or "none")
            + ", enabled in pgbars.providers: none of them"
            " (set POLYGON_API_KEY or TRADIER_TOKEN, or enable yahoo)"
        )
    return usable


async def _roll_forward(pool: AsyncConnectionPool) -> dict[str, Any]:
    """First, every open-ended job gets chunks for the sessions completed since it was planned."""
    async with pool.connection() as conn:
        rolled = await db.roll_forward(conn)
    log.info(
        logfmt(
            "roll_forward",
            last_completed_session=rolled.get("last_completed_session"),
            jobs_extended=rolled.get("jobs_extended"),
            chunks_added=rolled.get("chunks_added"),
            sessions_added=rolled.get("sessions_added"),
        )
    )
    for skipped in rolled.get("skipped") or []:
        log.warning(
            logfmt(
                "roll_forward_skipped",
                ticker=skipped.get("ticker"),
                timeframe=skipped.get("timeframe"),
                error=skipped.get("error"),
            )
        )
    return rolled


async def _clean_up(pool: AsyncConnectionPool) -> int:
    """Provisional bars whose session history now covers, older than live_settings.keep_provisional."""
    async with pool.connection() as conn:
        deleted = await db.cleanup_provisional(conn)
    if deleted:
        log.info(logfmt("provisional_cleanup", deleted=deleted))
    return deleted


async def run(
    dsn: str, env: Mapping[str, str], config: WorkConfig, *, http_timeout: float = 30.0
) -> WorkSummary:
    """A whole `pgbars work` run: providers from `env`, a pool sized to the concurrency.

    Raises PgbarsError when it cannot run at all (no database, schema missing
    or out of date, no usable provider); chunk failures are in the summary.
    """
    timeout = httpx.Timeout(http_timeout, connect=min(10.0, http_timeout))
    limits = httpx.Limits(max_connections=config.concurrency * 2)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        configured = build_providers(client, env)
        # One connection per chunk in flight, one for claiming.
        pool = await db.open_worker_pool(dsn, config.concurrency + 1)
        try:
            usable = await prepare(pool, sorted(configured), allow_demo_database=config.allow_demo_database)
            rolled = await _roll_forward(pool)
            deleted = await _clean_up(pool)
            unavailable = {
                name: f"{CREDENTIALS[name]} is not set"
                if name not in configured
                else f"{name} is not enabled in pgbars.providers"
                for name in CREDENTIALS
                if name not in usable
            }
            worker = Worker(pool, {name: configured[name] for name in usable}, config, unavailable)
            summary = await worker.run()
            summary.rolled = rolled
            summary.provisional_deleted = deleted
            async with pool.connection() as conn:
                summary.progress = await db.backfill_progress(conn, tickers=config.tickers or None)
            return summary
        finally:
            await pool.close()
