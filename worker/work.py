"""`pgbars work`: claim leases, fetch them under the shared rate limit, store or settle them.

The database decides everything (sql/): which work comes next (claim_leases:
a symbol's corporate actions first, history chunks round-robin, today's live
refreshes while a session trades),
when each HTTP call may start (the ledger, worker/pacer.py), what a failure
means (settle_lease). This module runs up to `concurrency` chunks at once
inside a time budget, today's refreshes beside them, and every lease of
any kind down one path:

    claim_leases -> per request: reserve a slot, sleep until it, GET, record the call
                 -> bars or actions: COPY into staging -> store_lease (one transaction)
                 -> a failure: its kind -> settle_lease

The only decision kept here is to stop using a provider whose credential was
refused, for the rest of the run. Reports and log lines are worker/outcomes.py.

Why over 400 lines: Worker is one class because the claim loop, the live
refreshes, the signal handling and the per-lease path share one run's state
(the stop event, the budget, the providers still in use, the leases in
flight); split up, each piece would need all of it passed around.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from . import db, failpoints
from .errors import FailureKind, PgbarsError
from .outcomes import LeaseReport, WorkSummary, log_lease, log_summary, logfmt, record_stored
from .pacer import BudgetSpent, Pacer, Stopping
from .providers import (
    CREDENTIALS,
    ActionsRequest,
    ActionsResult,
    FetchResult,
    Provider,
    ProviderError,
    RateLimited,
    action_source,
    build_providers,
    misconfigured_providers,
)
from .providers.http import DEFAULT_TOTAL_SECONDS

__all__ = ["LeaseReport", "WorkConfig", "WorkSummary", "Worker", "clean_up", "prepare", "roll_forward", "run"]

log = logging.getLogger("pgbars.work")
R = TypeVar("R")
A = TypeVar("A")

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
# Under serve, a provider whose next slot lies beyond half a lease is left alone this long.
SERVE_SPENT_SECONDS = 30.0
# Under serve, after a database error in today's bars' loop, try again after this long.
SERVE_LIVE_RETRY_SECONDS = 15.0
# What a lease's report says when the worker stopped before writing it, or the answer was empty.
_STOPPED = {
    "history": "the worker stopped before the chunk was written",
    "live": "the worker stopped before the bars were written",
    "actions": "the worker stopped before the actions were written",
}
_EMPTY = {"history": "no bars for these sessions", "live": "no bars yet", "actions": ""}


@dataclass(frozen=True, slots=True)
class WorkConfig:
    max_seconds: float = 240.0
    concurrency: int = 4
    tickers: tuple[str, ...] = ()
    lease_seconds: float = 300.0
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    allow_demo_database: bool = False  # only `pgbars demo` works in a database marked as the demo's
    # pgbars serve (worker/serve.py): no budget; with nothing to claim the run waits for a
    # wake-up or the next due time instead of ending, and today's bars are refreshed again
    # whenever they come due. The service handles the signals.
    serve: bool = False


@dataclass(slots=True)
class _Running(Generic[R]):
    task: asyncio.Task[R]
    # stop() cancels fetches only: a lease not yet started (or waiting for the gate) sees
    # the stop itself and is given back; one being settled finishes.
    phase: Literal["queued", "fetch", "settle"] = "queued"


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
        self._deadline = math.inf if config.serve else self._started + config.max_seconds
        self._not_after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=config.max_seconds)
        # providers whose next slot is past the budget, until when (monotonic) they are left alone
        self._spent: dict[str, float] = {}
        # set by wake() (serve: a NOTIFY on pgbars_wake or a schedule): look for work now
        self._wake = asyncio.Event()
        self._live_wake = asyncio.Event()
        self._no_data_said: set[tuple[str, str, str, str]] = set()
        # leases in flight, by lease id: history chunks (the claim loop's) and live refreshes
        self._running: dict[uuid.UUID, _Running[LeaseReport]] = {}
        self._live_running: dict[uuid.UUID, _Running[LeaseReport]] = {}

    # --- control -------------------------------------------------------------------

    @property
    def worker_name(self) -> str:
        return self.config.worker_name

    @property
    def calls(self) -> Counter[str]:
        """HTTP requests per provider in this run."""
        return self.summary.calls

    @property
    def rate_limited(self) -> Counter[str]:
        """429 answers per provider in this run."""
        return self.summary.rate_limited

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def not_after(self) -> dt.datetime:
        """A request whose slot comes later is not started: the budget's end, or (serve) half a lease."""
        if self.config.serve:
            return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.config.lease_seconds / 2)
        return self._not_after

    def wake(self, reason: str = "") -> None:
        """Look for claimable work and due refreshes now (serve: a wake-up arrived)."""
        log.debug(logfmt("wake", reason=reason or None))
        self._wake.set()
        self._live_wake.set()

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

    async def _idle(self, event: asyncio.Event, seconds: float | None) -> None:
        """Wait until `event` is set (a wake-up), `seconds` pass (None: no limit) or a stop."""
        waiters = [asyncio.create_task(event.wait()), asyncio.create_task(self._stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _usable(self) -> list[str]:
        now = time.monotonic()
        spent = {name for name, until in self._spent.items() if until > now}
        return sorted(set(self.providers) - set(self.summary.refused) - spent)

    # --- the run -------------------------------------------------------------------

    async def run(self) -> WorkSummary:
        loop = asyncio.get_running_loop()
        installed = []
        for signum in () if self.config.serve else (signal.SIGTERM, signal.SIGINT):
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
                budget_s=None if self.config.serve else self.config.max_seconds,
                tickers=",".join(self.config.tickers) or None,
            )
        )
        # Today's bars and the backfill run side by side: a long watchlist's live
        # refreshes (one provider) do not hold up the history (another).
        live = asyncio.create_task(self._refresh_live(), name="live")
        try:
            if self.config.serve:
                # Both loops run until a stop; an error in either (the database gone) ends the run.
                claims = asyncio.create_task(self._claim_loop(), name="claims")
                await asyncio.wait([claims, live], return_when=asyncio.FIRST_EXCEPTION)
                for loop_task in (claims, live):
                    error = loop_task.exception() if loop_task.done() and not loop_task.cancelled() else None
                    if error is not None:
                        claims.cancel()
                        await self._abandon()
                        raise error
            else:
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
        log_summary(self.summary)
        return self.summary

    async def _claim_loop(self) -> None:
        tickers = self.config.tickers or None
        while not self.stopping:
            if time.monotonic() >= self._deadline:
                self.summary.stopped_by = "budget spent"
                return
            usable = self._usable()
            if not usable:
                if self.config.serve and not self._running:
                    # every provider refused or past its slot: wait for the earliest to come back
                    now = time.monotonic()
                    back = [until - now for until in self._spent.values() if until > now]
                    await self._idle(self._wake, min(back) if back else None)
                    self._wake.clear()
                    continue
                if not self._running:
                    refused = set(self.summary.refused) & set(self.providers)
                    self.summary.stopped_by = "no provider left" if refused else "budget spent"
                    return
                await self._wait_for_running(None)
                continue
            free = self.config.concurrency - len(self._running)
            claimed: list[db.Lease] = []
            if free > 0:
                self._wake.clear()  # before the claim: a wake-up during it is not lost
                async with self.pool.connection() as conn:
                    claimed = await db.claim(
                        conn,
                        self.config.worker_name,
                        usable,
                        free,
                        self.config.lease_seconds,
                        tickers,
                        kinds=("actions", "history"),
                    )
                if claimed:
                    failpoints.hit("after-claim")
                for lease in claimed:
                    task = asyncio.create_task(self._run_lease(lease), name=f"{lease.kind}-{lease.ticker}")
                    self._running[lease.lease_id] = _Running(task)
            if self._running:
                # Wake when a chunk finishes; with free slots also now and then, for chunks
                # that become due meanwhile.
                await self._wait_for_running(
                    RECLAIM_SECONDS if len(self._running) < self.config.concurrency else None
                )
                continue
            async with self.pool.connection() as conn:
                wait = await db.seconds_until_claimable(conn, usable, tickers)
            if self.config.serve:
                # Nothing claimable: sleep until the next chunk comes due (a backoff, a pause,
                # a lease's expiry) or a wake-up, whichever is first. No polling.
                if wait is None or wait >= 1.0:
                    log.debug(logfmt("idle", next_due_s=None if wait is None else round(wait, 1)))
                await self._idle(self._wake, None if wait is None else max(wait, MIN_WAIT_SECONDS))
                continue
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
        """Until a lease in flight ends, `at_most` passes, a stop, or (with a slot free) a wake-up."""
        tasks = [r.task for r in self._running.values()]
        waiters = [asyncio.create_task(self._stop.wait())]
        if len(self._running) < self.config.concurrency and self._usable():
            waiters.append(asyncio.create_task(self._wake.wait()))
        try:
            await asyncio.wait([*tasks, *waiters], timeout=at_most, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._reap()

    def _reap(self) -> None:
        for lease_id, running in list(self._running.items()):
            if running.task.done():
                del self._running[lease_id]
                report = running.task.result()
                if self.config.serve:
                    continue  # logged one line each (log_lease); a service keeps no list of them
                if report.lease.kind == "actions":
                    self.summary.actions.append(report)
                else:
                    self.summary.reports.append(report)

    async def _abandon(self, seconds: float = 5.0) -> None:
        """After an error that ends the run: stop, and give its leases in flight `seconds` to settle.

        What cannot settle (the database is gone) is left to its lease's expiry.
        """
        self.stop("database error")
        tasks = [r.task for r in [*self._running.values(), *self._live_running.values()]]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=seconds)
            for task in pending:
                task.cancel()
            # Every task's end is collected here, whatever it was: none is left unretrieved.
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                    log.error(logfmt("lease_error", error=type(outcome).__name__))
        self._running.clear()
        self._live_running.clear()

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
        if self.config.serve:
            await self._serve_live()
            return
        try:
            await self._refresh_live_or_raise()
        except psycopg.Error as exc:
            self.summary.live_error = db.describe_error(exc)
            log.error(logfmt("live_error", error=self.summary.live_error))

    async def _serve_live(self) -> None:
        """Under serve: a pass whenever a refresh comes due (the database's timer) or a wake-up
        arrives. A database error is logged and the loop tries again; when the database is
        gone the claim loop's error ends the run and the service reconnects."""
        while not self.stopping:
            self._live_wake.clear()
            try:
                await self._refresh_live_or_raise()
                async with self.pool.connection() as conn:
                    # a failed refresh's retry_at counts: it is not asked again in a loop
                    wait = await db.seconds_until_live_refresh(conn, self._usable())
            except psycopg.Error as exc:
                log.error(logfmt("live_error", error=db.describe_error(exc)))
                wait = SERVE_LIVE_RETRY_SECONDS
            if wait is not None and wait > 0:
                log.debug(logfmt("live_idle", next_due_s=round(wait, 1)))
            await self._idle(self._live_wake, None if wait is None else max(wait, MIN_WAIT_SECONDS))

    async def _refresh_live_or_raise(self) -> list[LeaseReport]:
        """One pass over the due refreshes (serve: a batch of `concurrency`); their reports."""
        tickers = self.config.tickers or None
        async with self.pool.connection() as conn:
            state = await db.live_state(conn, tickers)
            if state.session is None:
                return []
            for provider, wanted in state.wanted.items():
                if provider not in self.providers and provider not in self.summary.live_skipped:
                    why = self.unavailable.get(provider, f"{provider} is not usable")
                    self.summary.live_skipped[provider] = why
                    log.warning(logfmt("live_skipped", provider=provider, refreshes=wanted, reason=why))
            lease_seconds = (
                self.config.lease_seconds
                if self.config.serve
                else max(self.config.lease_seconds, self.config.max_seconds + FINISH_GRACE_SECONDS)
            )
            refreshes = await db.claim(
                conn,
                self.config.worker_name,
                self._usable(),
                # serve: a batch it starts at once, so no lease expires while queued here
                self.config.concurrency if self.config.serve else LIVE_CLAIM_LIMIT,
                lease_seconds,
                tickers,
                kinds=("live",),
            )
        gate = asyncio.Semaphore(self.config.concurrency)
        for lease in refreshes:
            task = asyncio.create_task(self._run_lease(lease, gate), name=f"live-{lease.ticker}")
            self._live_running[lease.lease_id] = _Running(task)
        try:
            done = await asyncio.gather(*(r.task for r in self._live_running.values()))
        finally:
            self._live_running.clear()
        if not self.config.serve:
            self.summary.live.extend(done)
        async with self.pool.connection() as conn:
            state = await db.live_state(conn, tickers)
        # Once per run (serve: once per process) and symbol, not per bar or per request.
        self.summary.live_no_data = state.no_data
        for ticker, timeframe, provider, why in state.no_data:
            if (ticker, timeframe, provider, why) in self._no_data_said:
                continue
            self._no_data_said.add((ticker, timeframe, provider, why))
            log.warning(
                logfmt("live_no_data", ticker=ticker, timeframe=timeframe, provider=provider, reason=why)
            )
        return done

    # --- one lease, of any kind -------------------------------------------------------

    async def _run_lease(self, lease: db.Lease, gate: asyncio.Semaphore | None = None) -> LeaseReport:
        """Fetch, validate and store (or settle) one lease. Never raises: the report says what happened.

        `gate` bounds the live refreshes in flight; history chunks are bounded by the claim loop.
        """
        report = LeaseReport(lease)
        started = time.monotonic()
        pacer = Pacer(self, lease.provider, lease.chunk_id)
        try:
            async with gate or contextlib.nullcontext():
                running = self._running.get(lease.lease_id) or self._live_running.get(lease.lease_id)
                if running is not None:
                    running.phase = "fetch"
                await self._fetch_and_store(lease, pacer, report)
        except asyncio.CancelledError:
            # stop() while waiting for the gate or fetching: give the lease back. Swallowed on
            # purpose: this task was cancelled by its own worker, which collects its report.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            # The call and the lease each on their own: the database may have gone too (a restart).
            try:
                await pacer.abandon()
            except psycopg.Error as exc:
                log.error(
                    logfmt("unrecorded", lease=lease.lease_id, what="call", error=db.describe_error(exc))
                )
            await self._settle_or_lose(lease, report, "unfinished", _STOPPED[lease.kind])
        except psycopg.Error as exc:
            await self._database_error(lease, report, exc)
        except Exception as exc:
            # A bug, or a value the checks let through, while storing: this lease fails,
            # the run goes on. The type only: the text is not known to be free of secrets.
            log.exception("unexpected error while storing %s %s", lease.ticker, lease.timeframe)
            what = f"{lease.provider}: unexpected {type(exc).__name__} while storing"
            await self._settle_or_lose(lease, report, "permanent", what)
        report.requests = pacer.requests
        report.seconds = time.monotonic() - started
        log_lease(report)
        return report

    async def _fetch_and_store(self, lease: db.Lease, pacer: Pacer, report: LeaseReport) -> None:
        provider = lease.provider
        if self.stopping or provider in self.summary.refused or provider not in self._usable():
            why = self.summary.refused.get(provider) or ("stopping" if self.stopping else "budget spent")
            await self._settle(lease, report, "unfinished", why)
            return
        fetch: Awaitable[FetchResult | ActionsResult]
        if lease.kind == "actions":
            source = action_source(self.providers[provider])
            if source is None:
                await self._settle(lease, report, "permanent", f"{provider} reports no corporate actions")
                return
            fetch = source.fetch_actions(
                ActionsRequest(lease.ticker, lease.first_session, lease.last_session), pacer
            )
        else:
            fetch = self.providers[provider].fetch(lease.fetch_request(), pacer)
        fetched: FetchResult | ActionsResult | Exception = await self._answer(fetch, lease)
        # From here a stop waits for this lease: its outcome is being recorded.
        running = self._running.get(lease.lease_id) or self._live_running.get(lease.lease_id)
        if running is not None:
            running.phase = "settle"
        if isinstance(fetched, Exception):
            await self._settle_failure(lease, pacer, report, fetched)
            return
        await pacer.close(None)
        rejected = [(row.ts, row.raw, row.reason) for row in fetched.rejected]
        async with self.pool.connection() as conn:
            if isinstance(fetched, ActionsResult):
                stored = await db.store_actions(conn, lease, fetched.actions, rejected, pacer.requests)
            else:
                stored = await db.store(conn, lease, fetched.bars, rejected, pacer.requests)
        record_stored(report, stored, fetched, empty=_EMPTY[lease.kind])

    async def _answer(self, fetch: Awaitable[A], lease: db.Lease) -> A | Exception:
        """The provider's answer, or the exception that stands for it (CancelledError on a stop).

        A database error (the ledger's, through the pacer) is raised for _run_lease to settle.
        """
        try:
            return await fetch
        except Stopping:
            raise asyncio.CancelledError from None
        except (ProviderError, BudgetSpent) as exc:
            return exc
        except psycopg.Error:
            raise
        except Exception as exc:  # a bug in a provider: recorded, retried, never silent
            log.exception(
                "unexpected error while fetching %s %s", lease.ticker, lease.timeframe or lease.kind
            )
            return exc

    # --- a lease that ended without bars: Python names the failure, SQL settles it -------

    async def _settle_failure(
        self, lease: db.Lease, pacer: Pacer, report: LeaseReport, exc: Exception
    ) -> None:
        """Reduce what the fetch raised to a failure kind, close its ledger call, settle the lease."""
        if isinstance(exc, BudgetSpent):
            await pacer.cancel()
            self._spent[lease.provider] = (
                time.monotonic() + SERVE_SPENT_SECONDS if self.config.serve else math.inf
            )
            await self._settle(lease, report, "unfinished", f"budget: {exc}")
        elif isinstance(exc, ProviderError):
            await pacer.close(str(exc))
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            await self._settle(lease, report, exc.kind, str(exc), retry_after)
        else:
            # The type only: an unexpected exception's text is not known to be free of secrets.
            what = f"{lease.provider}: unexpected {type(exc).__name__}"
            await pacer.close(what)
            await self._settle(lease, report, "transient", what)

    async def _database_error(self, lease: db.Lease, report: LeaseReport, exc: psycopg.Error) -> None:
        """A statement of this lease failed: a lost lease, or the database itself."""
        if exc.sqlstate == LEASE_LOST:
            report.outcome, report.detail = "lost", db.describe_error(exc)
            return
        await self._settle_or_lose(lease, report, "transient", f"database: {db.describe_error(exc)}")

    async def _settle_or_lose(
        self, lease: db.Lease, report: LeaseReport, kind: FailureKind, error: str
    ) -> None:
        """_settle, or when not even that reaches the database: logged, and the lease reported
        lost (it runs out and the work returns)."""
        try:
            await self._settle(lease, report, kind, error)
        except psycopg.Error as again:
            log.error(logfmt("unrecorded", lease=lease.lease_id, error=db.describe_error(again)))
            report.outcome, report.detail = "lost", f"outcome not recorded: {error}"

    async def _settle(
        self,
        lease: db.Lease,
        report: LeaseReport,
        kind: FailureKind,
        error: str,
        retry_after: float | None = None,
    ) -> None:
        """pgbars.settle_lease decides; the run only stops using a provider that refused its credential."""
        provider = lease.provider
        async with self.pool.connection() as conn:
            settled = await db.settle(conn, lease.lease_id, kind, error, retry_after)
        if kind == "refused":
            self._refuse(provider, error)
        report.outcome = settled.outcome  # type: ignore[assignment]
        if settled.paused_until is not None:
            report.detail = f"{error}; {provider} paused until {settled.paused_until:%H:%M:%S} UTC"
        elif settled.outcome == "rerouted":
            report.detail = f"{error}; moved to {settled.moved_to}"
        elif kind == "not_covered" and lease.kind == "history":
            report.detail = f"{error}; no other route"
        else:
            report.detail = error

    def _refuse(self, provider: str, why: str) -> None:
        """A refused credential: the provider is dropped for this run, said once."""
        if provider not in self.summary.refused:
            self.summary.refused[provider] = why
            log.warning(logfmt("provider_refused", provider=provider, reason=why))


async def prepare(
    pool: AsyncConnectionPool,
    configured: Sequence[str],
    *,
    allow_demo_database: bool = False,
    misconfigured: Mapping[str, str] | None = None,
    tickers: Sequence[str] = (),
) -> list[str]:
    """Check the schema and return the configured providers the database has enabled.

    Raises PgbarsError (one line) when the worker cannot run at all, or when the
    database is the demo's (its synthetic bars never meet real ones).
    `misconfigured` (provider -> why) is said in that line when it leaves none.
    `tickers` (--ticker) are checked first: an invalid one would otherwise match
    nothing and the run would end on an "empty" queue.
    """
    async with pool.connection() as conn:
        await db.ensure_schema_current(conn)
        if not allow_demo_database:
            await db.require_not_demo(conn)
        for ticker in tickers:
            try:
                await db.normalize_ticker(conn, ticker)
            except psycopg.errors.InvalidParameterValue as exc:
                raise PgbarsError(f"--ticker: {db.describe_error(exc)}") from None
        usable = await db.enabled_providers(conn, configured)
    if not usable:
        unusable = "".join(f"; {why}" for _, why in sorted((misconfigured or {}).items()))
        raise PgbarsError(
            "no usable provider: configured "
            + (", ".join(configured) or "none")
            + ", enabled in pgbars.providers: none of them"
            " (set POLYGON_API_KEY or TRADIER_TOKEN, or enable yahoo)" + unusable
        )
    return usable


async def roll_forward(pool: AsyncConnectionPool) -> dict[str, Any]:
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
            partitions_added=rolled.get("partitions_added"),
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


async def clean_up(pool: AsyncConnectionPool) -> int:
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
    `http_timeout` bounds each read of a request; its total time is bounded by
    twice that, and at least DEFAULT_TOTAL_SECONDS (60 s).
    A provider whose *_BASE_URL cannot be used is left out of the run, said in
    one `provider_misconfigured` line, and counted as refused (for --strict).
    """
    timeout = httpx.Timeout(http_timeout, connect=min(10.0, http_timeout))
    limits = httpx.Limits(max_connections=config.concurrency * 2)
    total_seconds = max(DEFAULT_TOTAL_SECONDS, 2 * http_timeout)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        configured = build_providers(client, env, total_seconds=total_seconds)
        misconfigured = misconfigured_providers(env)
        # One connection per chunk in flight, one for claiming.
        pool = await db.open_worker_pool(dsn, config.concurrency + 1)
        try:
            usable = await prepare(
                pool,
                sorted(configured),
                allow_demo_database=config.allow_demo_database,
                misconfigured=misconfigured,
                tickers=config.tickers,
            )
            for name, why in sorted(misconfigured.items()):
                log.warning(logfmt("provider_misconfigured", provider=name, reason=why))
            rolled = await roll_forward(pool)
            deleted = await clean_up(pool)
            unavailable = {
                name: f"{CREDENTIALS[name]} is not set"
                if name not in configured
                else f"{name} is not enabled in pgbars.providers"
                for name in CREDENTIALS
                if name not in usable
            }
            unavailable.update(misconfigured)
            worker = Worker(pool, {name: configured[name] for name in usable}, config, unavailable)
            # Like a refused credential: the run goes on without it, and --strict says so.
            worker.summary.refused.update(misconfigured)
            summary = await worker.run()
            summary.rolled = rolled
            summary.provisional_deleted = deleted
            async with pool.connection() as conn:
                summary.progress = await db.backfill_progress(conn, tickers=config.tickers or None)
            return summary
        finally:
            await pool.close()
