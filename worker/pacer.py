"""The rate-limit ledger around each HTTP request of a lease (the providers' `Pace`).

Before a request: reserve a slot in pgbars.provider_calls (reserve_provider_call
says when it may start, for every worker at once) and sleep until it; after it:
record the answer. A slot after the run's budget, or a stop while waiting,
ends the fetch with BudgetSpent or Stopping, and the reservation is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from . import db, failpoints


class PacedRun(Protocol):
    """What a pacer needs of the run it paces (worker.work.Worker)."""

    pool: AsyncConnectionPool

    @property
    def not_after(self) -> dt.datetime: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def worker_name(self) -> str: ...

    @property
    def calls(self) -> Counter[str]: ...

    @property
    def rate_limited(self) -> Counter[str]: ...

    async def sleep(self, seconds: float) -> bool: ...


class Stopping(Exception):
    """A shutdown signal arrived while the chunk waited for its slot."""


class BudgetSpent(Exception):
    """The next call of the provider would start after the run's budget."""


class Pacer:
    """The Pace of one chunk or live refresh: a ledger reservation before each request, its outcome after."""

    def __init__(self, worker: PacedRun, provider: str, chunk_id: int | None) -> None:
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
            raise Stopping
        reservation = await self._reserve()
        failpoints.hit("during-reserve")
        if reservation.call_id is None:
            raise BudgetSpent(
                f"next {provider} slot at {reservation.starts_at:%H:%M:%S} UTC is after the budget"
            )
        self._call_id, self._sent, self._answered, self._status = reservation.call_id, False, False, None
        if reservation.wait_seconds > 0 and await worker.sleep(reservation.wait_seconds):
            await self.cancel()
            raise Stopping
        self._sent = True
        self._started = time.monotonic()
        self.requests += 1
        worker.calls[provider] += 1

    async def _reserve(self) -> db.Reservation:
        """A slot in the ledger. A cancellation (a stop) while the reservation is under way
        waits for it and gives it back, so no reserved call is left behind."""
        worker = self._worker

        async def reserve() -> db.Reservation:
            async with worker.pool.connection() as conn:
                return await db.reserve_call(
                    conn, self._provider, worker.worker_name, self._chunk_id, worker.not_after
                )

        pending = asyncio.ensure_future(reserve())
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                reservation = await pending
                if reservation.call_id is not None:
                    async with worker.pool.connection() as conn:
                        await db.cancel_call(conn, reservation.call_id)
            raise

    def answered(self, status: int | None) -> None:
        self._status, self._answered = status, True
        failpoints.hit("during-fetch")  # the status line is in, the body not yet read
        if status == 429:
            self._worker.rate_limited[self._provider] += 1

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
