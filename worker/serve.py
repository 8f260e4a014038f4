"""`pgbars serve`: the worker as a long-running service, on pgqueuer's schedules and NOTIFY.

One process (a replica; run as many as you like, on one machine or several)
holds three connections' worth of work, all coordinated through Postgres:

- the claim loop and today's bars: worker.work.Worker in serve mode. Chunks
  are claimed from the chunk queue (claim_leases, as `pgbars work` does);
  with nothing claimable it sleeps until the database says the next chunk
  comes due (next_claimable_at: a backoff, a provider's pause, a lease's
  expiry) or a live refresh does (seconds_until_live_refresh), or until
  woken. No polling loop.
- the wake-ups: LISTEN pgbars_wake. The database NOTIFYs it when chunks are
  inserted (the watchlist trigger, request_backfill, roll-forward, repair)
  and when a chunk is given back, so a new ticker is claimed within a
  second, by whichever replica's claim gets it.
- the schedules: pgqueuer's SchedulerManager on tables in pgbars_queue. Each
  tick runs on one replica only (its schedules row is taken with SKIP
  LOCKED): the drain every minute (wakes every replica: the safety net for
  anything no notification announced, such as an operator's UPDATE, and
  the daily corporate-action refreshes as they come due), the roll-forward
  every 5 minutes (sessions completed since, the bars' partitions ahead,
  provisional bars history replaced) and the daily pruning of the ledger
  and the quarantine.

pgqueuer never holds a copy of the chunks: claim_backfill_chunks stays their
queue (docs/worker.md, "The claim function is the queue").

SIGTERM or SIGINT: the claim stops, fetches in flight are given back, writes
in progress commit, and the process exits 0 (within 10 s: tests/integration/
test_serve.py). kill -9 leaves leases that expire and are claimed again.
When the database goes away (a restart, a failover) the run ends, one log
line says so, and the service reconnects with backoff (1 s doubling to
30 s) until it is back, without exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from pgqueuer.core.sm import SchedulerManager
from pgqueuer.models import Schedule
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import db, work
from .errors import DatabaseUnavailable
from .outcomes import logfmt
from .providers import CREDENTIALS, build_providers, misconfigured_providers
from .providers.http import DEFAULT_TOTAL_SECONDS

__all__ = ["SCHEDULES", "ServeConfig", "Service", "run"]

log = logging.getLogger("pgbars.serve")

# The schedules (pgqueuer cron expressions, UTC). Each tick runs on one replica.
SCHEDULES: dict[str, str] = {
    "pgbars.drain": "* * * * *",
    "pgbars.roll_forward": "*/5 * * * *",
    "pgbars.prune": "17 4 * * *",
}
# What the daily pruning keeps (docs/worker.md): the ledger a week, chunkless quarantine a month.
KEEP_CALLS = "7 days"
KEEP_REJECTED = "30 days"
RECONNECT_FIRST_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 30.0
# A run that lasted this long was healthy: the next reconnect starts from the first delay again.
HEALTHY_SECONDS = 60.0
# Stopping: how long the schedules and the listener get to end before they are cancelled.
STOP_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ServeConfig:
    concurrency: int = 4
    lease_seconds: float = 300.0
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    http_timeout: float = 30.0
    # name -> cron expression; tests tick every few seconds (croniter's sixth field: seconds)
    schedules: Mapping[str, str] = field(default_factory=lambda: dict(SCHEDULES))


class Service:
    """`pgbars serve`: `run()` returns after a stop signal; raises PgbarsError when it cannot run at all."""

    def __init__(self, dsn: str, env: Mapping[str, str], config: ServeConfig) -> None:
        self.dsn = dsn
        self.env = dict(env)
        self.config = config
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._worker: work.Worker | None = None
        self._schedules: SchedulerManager | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.runs = 0  # connected runs started (1 + reconnects)
        self.ready = asyncio.Event()  # set while connected and listening (tests wait for it)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, reason: str = "signal") -> None:
        """End the service: the worker gives back its fetches, the schedules and the listener end."""
        if self._stop.is_set():
            return
        self._stop_reason = reason
        self._stop.set()
        if self._connecting is not None and not self.ready.is_set():
            self._connecting.cancel()  # connecting (libpq may wait long for a dead host): give up
        if self._worker is not None:
            self._worker.stop(reason)
        if self._schedules is not None:
            self._schedules.shutdown.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests)
        timeout = httpx.Timeout(self.config.http_timeout, connect=min(10.0, self.config.http_timeout))
        limits = httpx.Limits(max_connections=self.config.concurrency * 2)
        total_seconds = max(DEFAULT_TOTAL_SECONDS, 2 * self.config.http_timeout)
        delay = RECONNECT_FIRST_SECONDS
        try:
            async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
                providers = build_providers(client, self.env, total_seconds=total_seconds)
                while not self.stopping:
                    started = time.monotonic()
                    self._connecting = asyncio.create_task(self._connected_run(providers))
                    try:
                        await self._connecting
                    except asyncio.CancelledError:
                        if not self.stopping:
                            raise
                    except (
                        DatabaseUnavailable,
                        psycopg.OperationalError,
                        psycopg.errors.ReadOnlySqlTransaction,  # a failover landed on a standby
                        PoolTimeout,
                    ) as exc:
                        self.ready.clear()
                        if time.monotonic() - started >= HEALTHY_SECONDS:
                            delay = RECONNECT_FIRST_SECONDS
                        error = exc.args[0] if isinstance(exc, DatabaseUnavailable) else _one_line(exc)
                        log.warning(
                            logfmt(
                                "database_unavailable",
                                error=error,
                                retry_in_s=round(delay, 1),
                                worker=self.config.worker_name,
                            )
                        )
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stop.wait(), timeout=delay)
                        delay = min(delay * 2, RECONNECT_MAX_SECONDS)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
        log.info(logfmt("serve_stopped", reason=self._stop_reason or None, worker=self.config.worker_name))

    async def _connected_run(self, providers: Mapping[str, Any]) -> None:
        """One run on fresh connections, until a stop (returns) or the database goes (raises)."""
        self.runs += 1
        config = self.config
        misconfigured = misconfigured_providers(self.env)
        # One connection per chunk in flight, one for claiming, one for today's bars.
        pool = await db.open_worker_pool(self.dsn, config.concurrency + 2, application_name="pgbars serve")
        listener: psycopg.AsyncConnection[Any] | None = None
        scheduler_conn: psycopg.AsyncConnection[Any] | None = None
        tasks: list[asyncio.Task[Any]] = []
        try:
            usable = await work.prepare(pool, sorted(providers), misconfigured=misconfigured)
            async with pool.connection() as conn:
                await db.require_queue(conn)
            unavailable = {
                name: f"{CREDENTIALS[name]} is not set"
                if name not in providers
                else f"{name} is not enabled in pgbars.providers"
                for name in CREDENTIALS
                if name not in usable
            }
            unavailable.update(misconfigured)
            worker = work.Worker(
                pool,
                {name: providers[name] for name in usable},
                work.WorkConfig(
                    concurrency=config.concurrency,
                    lease_seconds=config.lease_seconds,
                    worker_name=config.worker_name,
                    serve=True,
                ),
                unavailable,
            )
            worker.summary.refused.update(misconfigured)
            listener = await db.connect(self.dsn, application_name="pgbars serve")
            await db.listen(listener, db.WAKE_CHANNEL)
            scheduler_conn = await db.connect(self.dsn, application_name="pgbars serve")
            schedules = self._scheduler(scheduler_conn, pool, worker)
            self._worker, self._schedules = worker, schedules
            if self.stopping:  # a signal while connecting
                return
            log.info(
                logfmt(
                    "serve",
                    worker=config.worker_name,
                    providers=",".join(sorted(worker.providers)),
                    concurrency=config.concurrency,
                    run=self.runs,
                    listening=db.WAKE_CHANNEL,
                    schedules=",".join(self.config.schedules),
                )
            )
            # First thing, and after every reconnect: what was missed while away.
            await self._roll_forward(pool)
            worker.wake("start")
            tasks = [
                asyncio.create_task(worker.run(), name="worker"),
                asyncio.create_task(self._listen(listener, worker), name="listener"),
                asyncio.create_task(schedules.run(), name="schedules"),
            ]
            self.ready.set()
            await self._until_stop_or_failure(tasks)
        finally:
            self.ready.clear()
            self._worker, self._schedules = None, None
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for other in (listener, scheduler_conn):
                if other is not None:
                    with contextlib.suppress(psycopg.Error):
                        await other.close()
            await pool.close(timeout=STOP_SECONDS)

    async def _until_stop_or_failure(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Wait for the worker to end (a stop); a task failing first ends the run with its error."""
        worker_task, rest = tasks[0], tasks[1:]
        pending: set[asyncio.Task[Any]] = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    if self._worker is not None:
                        self._worker.stop("database error")
                    raise error
            if worker_task.done():
                break
        # Stopped: the listener just goes, the schedules end their tick in progress.
        listener, schedules = rest
        listener.cancel()
        if self._schedules is not None:
            self._schedules.shutdown.set()
        _, late = await asyncio.wait([schedules], timeout=STOP_SECONDS)
        for task in late:
            task.cancel()

    async def _listen(self, conn: psycopg.AsyncConnection[Any], worker: work.Worker) -> None:
        """Every NOTIFY on pgbars_wake wakes the worker; returns only by cancellation or an error."""
        async for note in conn.notifies():
            worker.wake(note.payload)

    def _scheduler(
        self, conn: psycopg.AsyncConnection[Any], pool: AsyncConnectionPool, worker: work.Worker
    ) -> SchedulerManager:
        manager = SchedulerManager(db.queue_queries(conn))

        def every(name: str, job: Callable[[], Awaitable[None]]) -> None:
            if name not in self.config.schedules:
                return

            async def tick(schedule: Schedule) -> None:
                log.debug(
                    logfmt(
                        "schedule_tick",
                        schedule=name,
                        worker=self.config.worker_name,
                        due=schedule.next_run.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    )
                )
                try:
                    await job()
                except psycopg.Error as exc:
                    log.error(logfmt("schedule_error", schedule=name, error=db.describe_error(exc)))

            manager.schedule(name, self.config.schedules[name])(tick)

        async def drain() -> None:
            worker.wake("schedule")
            async with pool.connection() as conn:
                await db.wake_workers(conn, "schedule")

        async def roll_forward() -> None:
            await self._roll_forward(pool)

        async def prune() -> None:
            async with pool.connection() as conn:
                calls, rejected = await db.prune(conn, KEEP_CALLS, KEEP_REJECTED)
            log.info(logfmt("prune", provider_calls=calls, rejected_bars=rejected))

        every("pgbars.drain", drain)
        every("pgbars.roll_forward", roll_forward)
        every("pgbars.prune", prune)
        return manager

    async def _roll_forward(self, pool: AsyncConnectionPool) -> None:
        """Sessions completed since (new chunks wake every replica), partitions, provisional cleanup."""
        await work.roll_forward(pool)
        await work.clean_up(pool)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, psycopg.Error):
        return db.describe_error(exc)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def run(dsn: str, env: Mapping[str, str], config: ServeConfig) -> None:
    """`pgbars serve` until a stop signal. Raises PgbarsError when it cannot run at all."""
    await Service(dsn, env, config).run()
