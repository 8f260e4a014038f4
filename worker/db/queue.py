"""The worker's calls: the pool, claims and leases, the rate-limit ledger, stores and settlements.

A lease's bars reach the database by binary COPY into the shared staging
tables (pgbars.staged_bars, staged_rejects, under the lease's id) inside the
transaction that stores them; the SQL functions decide what each outcome
means. Nothing is kept in a session between transactions and no statement
is prepared on the server, so a transaction-mode pooler (PgBouncer,
Supabase's pooler on port 6543) may hand each transaction any connection.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .. import failpoints
from ..calendar import SessionHours
from ..db.connection import connect, session_kwargs
from ..errors import DatabaseUnavailable, FailureKind
from ..providers.types import FetchRequest

# Column order of pgbars.staged_bars after lease_id: that of worker.providers.Bar.
_BAR_TYPES = ("uuid", "timestamptz", "float8", "float8", "float8", "float8", "float8", "float8", "int8")


LeaseKind = Literal["history", "live", "actions"]
# Column order of pgbars.staged_actions after lease_id: that of worker.providers.CorporateAction.
_ACTION_TYPES = ("uuid", "text", "date", "float8", "float8", "float8", "text", "text")


@dataclass(frozen=True, slots=True)
class Lease:
    """Leased work of any kind (a row of pgbars.claim_leases), with everything its fetch needs.

    history: a backfill chunk (chunk_id, job_id, attempt); live: today's bars of a
    watchlist symbol (targets: the timeframes stored from the answer). `sessions`
    are the XNYS sessions around the range, from market_sessions. actions: a
    symbol's corporate actions from one provider, with ex-dates first_session to
    last_session; it has no timeframe, range or sessions (None, empty).
    """

    kind: LeaseKind
    lease_id: uuid.UUID
    symbol_id: uuid.UUID
    ticker: str
    timeframe: str | None
    provider: str
    targets: tuple[str, ...]
    first_session: dt.date
    last_session: dt.date
    session_count: int | None
    range_start: dt.datetime | None
    range_end: dt.datetime | None
    sessions: tuple[SessionHours, ...]
    lease_expires_at: dt.datetime
    chunk_id: int | None = None
    job_id: int | None = None
    attempt: int | None = None

    @property
    def session_date(self) -> dt.date:
        """A live refresh's session (its only one)."""
        return self.first_session

    def fetch_request(self) -> FetchRequest:
        """What a history chunk or a live refresh asks its provider for."""
        if self.timeframe is None or self.range_start is None or self.range_end is None:
            raise ValueError(f"an {self.kind} lease fetches no bars")
        return FetchRequest(
            ticker=self.ticker,
            timeframe=self.timeframe,
            start=self.range_start,
            end=self.range_end,
            first_session=self.first_session,
            last_session=self.last_session,
            sessions=self.sessions,
        )


def _sessions(rows: Sequence[Sequence[Any]]) -> tuple[SessionHours, ...]:
    def at(seconds: Any) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(seconds), dt.UTC)

    return tuple(
        SessionHours(dt.date.fromisoformat(day), at(pre), at(opens), at(closes), at(after))
        for day, pre, opens, closes, after in rows
    )


async def claim(
    conn: psycopg.AsyncConnection[Any],
    worker: str,
    providers: Sequence[str],
    limit: int,
    lease_seconds: float,
    tickers: Sequence[str] | None,
    kinds: Sequence[LeaseKind] = ("history", "live"),
) -> list[Lease]:
    """Leases of `kinds` (pgbars.claim_leases): up to `limit` live ones, and up to `limit`
    action refreshes and history chunks together, action refreshes first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM pgbars.claim_leases(%s, %s, %s, make_interval(secs => %s), %s, %s)",
        (worker, list(providers), limit, lease_seconds, list(tickers) if tickers else None, list(kinds)),
    )
    return [
        Lease(
            **{
                **row,
                "targets": tuple(row["targets"] or ()),
                "sessions": _sessions(row["sessions"] or ()),
            }
        )
        for row in await cur.fetchall()
    ]


async def store(
    conn: psycopg.AsyncConnection[Any],
    lease: Lease,
    bars: Iterable[Sequence[Any]],
    rejected: Iterable[tuple[dt.datetime | None, dict[str, object], str]],
    requests: int,
) -> StoredChunk:
    """One transaction: COPY the lease's bars and refused rows into staging, then pgbars.store_lease.

    `bars` are rows in worker.providers.Bar order; `rejected` are (ts, raw, reason).
    """
    async with conn.transaction():
        cur = conn.cursor()
        await _stage(cur, lease.lease_id, bars, rejected)
        return await _store_lease(cur, lease.lease_id, requests)


async def store_actions(
    conn: psycopg.AsyncConnection[Any],
    lease: Lease,
    actions: Iterable[Sequence[Any]],
    rejected: Iterable[tuple[dt.datetime | None, dict[str, object], str]],
    requests: int,
) -> StoredChunk:
    """An action refresh's one transaction: COPY its actions and refused rows, then pgbars.store_lease.

    `actions` are rows in worker.providers.CorporateAction order. The result counts
    actions: reported, in force changed, rejected.
    """
    async with conn.transaction():
        cur = conn.cursor()
        async with cur.copy(
            "COPY pgbars.staged_actions"
            " (lease_id, kind, ex_date, split_from, split_to, cash_amount, currency, reference)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_ACTION_TYPES)
            for action in actions:
                await copy.write_row((lease.lease_id, *action))
        await _stage_rejects(cur, lease.lease_id, rejected)
        return await _store_lease(cur, lease.lease_id, requests)


async def _store_lease(cur: psycopg.AsyncCursor[Any], lease_id: uuid.UUID, requests: int) -> StoredChunk:
    """pgbars.store_lease, in the transaction that staged the lease's rows."""
    await cur.execute(
        "SELECT bars_written, bars_changed, bars_rejected FROM pgbars.store_lease(%s, %s)",
        (lease_id, requests),
    )
    row = await cur.fetchone()
    failpoints.hit("before-commit")
    assert row is not None
    return StoredChunk(*row)


@dataclass(frozen=True, slots=True)
class Reservation:
    call_id: int | None  # None: the slot would start after the caller's limit; nothing reserved
    starts_at: dt.datetime
    wait_seconds: float


@dataclass(frozen=True, slots=True)
class StoredChunk:
    bars_written: int
    bars_changed: int
    bars_rejected: int


async def open_worker_pool(
    dsn: str, size: int, *, connect_seconds: float = 15.0, application_name: str = "pgbars work"
) -> AsyncConnectionPool:
    """A pool of `size` autocommit connections; DatabaseUnavailable if the database is unreachable."""
    # One direct connection first: it fails at once, with libpq's reason, where
    # the pool would retry in silence until its timeout.
    probe = await connect(dsn)
    await probe.close()
    pool = AsyncConnectionPool(
        dsn,
        min_size=size,
        max_size=size,
        kwargs={
            "autocommit": True,
            "application_name": application_name,
            # no server-side prepared statements: they live in one server session,
            # which a transaction-mode pooler does not keep (docs/deploy.md)
            "prepare_threshold": None,
            **session_kwargs(dsn),
        },
        open=False,
        name="pgbars-worker",
    )
    try:
        await pool.open(wait=True, timeout=connect_seconds)
    except PoolTimeout:
        await pool.close()
        raise DatabaseUnavailable(
            f"cannot connect to the database: no connection within {connect_seconds:.0f} s"
        ) from None
    return pool


async def enabled_providers(conn: psycopg.AsyncConnection[Any], names: Sequence[str]) -> list[str]:
    """Those of `names` that pgbars.providers has enabled."""
    cur = await conn.execute(
        "SELECT name FROM pgbars.providers WHERE enabled AND name = ANY(%s) ORDER BY name", (list(names),)
    )
    return [name for (name,) in await cur.fetchall()]


async def seconds_until_claimable(
    conn: psycopg.AsyncConnection[Any], providers: Sequence[str], tickers: Sequence[str] | None
) -> float | None:
    """Seconds until a chunk of these providers can be claimed (0: now); None when none is left."""
    cur = await conn.execute(
        "SELECT extract(EPOCH FROM pgbars.next_claimable_at(%s, %s) - clock_timestamp())",
        (list(providers), list(tickers) if tickers else None),
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else max(0.0, float(row[0]))


async def reserve_call(
    conn: psycopg.AsyncConnection[Any],
    provider: str,
    worker: str,
    chunk_id: int | None,
    not_after: dt.datetime,
) -> Reservation:
    cur = await conn.execute(
        "SELECT call_id, starts_at, wait_seconds FROM pgbars.reserve_provider_call(%s, %s, %s, %s)",
        (provider, worker, chunk_id, not_after),
    )
    row = await cur.fetchone()
    assert row is not None
    return Reservation(row[0], row[1], max(0.0, float(row[2])))


async def complete_call(
    conn: psycopg.AsyncConnection[Any],
    call_id: int,
    http_status: int | None,
    duration_ms: int | None,
    error: str | None,
) -> None:
    await conn.execute(
        "SELECT pgbars.complete_provider_call(%s, %s, NULL, %s, %s)",
        (call_id, http_status, duration_ms, error),
    )


async def cancel_call(conn: psycopg.AsyncConnection[Any], call_id: int) -> None:
    await conn.execute("SELECT pgbars.cancel_provider_call(%s)", (call_id,))


@dataclass(frozen=True, slots=True)
class Settlement:
    """What pgbars.settle_lease made of a failed lease."""

    outcome: str  # released, retry, failed, rerouted
    paused_until: dt.datetime | None
    moved_to: str | None


async def settle(
    conn: psycopg.AsyncConnection[Any],
    lease_id: uuid.UUID,
    kind: FailureKind,
    error: str | None,
    retry_after: float | None = None,
) -> Settlement:
    """Settle a lease of any kind by the kind of its failure (pgbars.settle_lease)."""
    cur = await conn.execute(
        "SELECT outcome, paused_until, moved_to"
        " FROM pgbars.settle_lease(%s, %s, %s, make_interval(secs => %s))",
        (lease_id, kind, error, retry_after),
    )
    row = await cur.fetchone()
    assert row is not None
    return Settlement(*row)


async def _stage(
    cur: psycopg.AsyncCursor[Any],
    lease_id: uuid.UUID,
    bars: Iterable[Sequence[Any]],
    rejected: Iterable[tuple[dt.datetime | None, dict[str, object], str]],
) -> None:
    """COPY a lease's bars (binary) and refused rows into the staging tables, under its id."""
    async with cur.copy(
        "COPY pgbars.staged_bars (lease_id, ts, open, high, low, close, volume, vwap, trade_count)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_BAR_TYPES)
        rows = iter(bars)
        for bar in itertools.islice(rows, 1):
            await copy.write_row((lease_id, *bar))
            failpoints.hit("during-copy")  # one row in: the rest of the loop has no check
        for bar in rows:
            await copy.write_row((lease_id, *bar))
    await _stage_rejects(cur, lease_id, rejected)


async def _stage_rejects(
    cur: psycopg.AsyncCursor[Any],
    lease_id: uuid.UUID,
    rejected: Iterable[tuple[dt.datetime | None, dict[str, object], str]],
) -> None:
    async with cur.copy("COPY pgbars.staged_rejects (lease_id, ts, raw, reason) FROM STDIN") as copy:
        for ts, raw, reason in rejected:
            await copy.write_row((lease_id, ts, Jsonb(raw), reason))


# -- today's bars (live refreshes) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the live refreshes look like now, for the run's report (pgbars.live_refreshes)."""

    session: dt.date | None  # the session trading now, if any
    wanted: dict[str, int]  # provider -> live_plan rows (symbol, timeframe) while a session trades
    no_data: list[tuple[str, str, str, str]]  # (ticker, timeframe, provider, why) this session


async def live_state(conn: psycopg.AsyncConnection[Any], tickers: Sequence[str] | None) -> LiveState:
    """The session trading now, the live refreshes it wants per provider, and the symbols without data."""
    params = (list(tickers) if tickers else None,)
    cur = await conn.execute("SELECT pgbars._live_session(pgbars._now())")
    row = await cur.fetchone()
    session = None if row is None else row[0]
    if session is None:
        return LiveState(None, {}, [])
    cur = await conn.execute(
        "SELECT provider, count(*) FROM pgbars.live_plan"
        " WHERE %s::text[] IS NULL"
        " OR ticker IN (SELECT pgbars.normalize_ticker(t) FROM unnest(%s::text[]) AS t)"
        " GROUP BY provider ORDER BY provider",
        params * 2,
    )
    wanted = {str(name): int(n) for name, n in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT s.ticker::text, r.timeframe, r.provider, r.no_data FROM pgbars.live_refreshes AS r"
        " JOIN pgbars.symbols AS s ON s.id = r.symbol_id"
        " WHERE r.session_date = %s AND r.no_data IS NOT NULL"
        " AND (%s::text[] IS NULL"
        " OR s.ticker::text IN (SELECT pgbars.normalize_ticker(t) FROM unnest(%s::text[]) AS t))"
        " ORDER BY 1, 2",
        (session, *params, *params),
    )
    no_data = [(str(t), str(tf), str(p), str(why)) for t, tf, p, why in await cur.fetchall()]
    return LiveState(session, wanted, no_data)


async def cleanup_provisional(conn: psycopg.AsyncConnection[Any]) -> int:
    """Delete provisional bars that history has replaced (pgbars.cleanup_provisional_bars)."""
    cur = await conn.execute("SELECT pgbars.cleanup_provisional_bars()")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def roll_forward(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """The bars' year partitions ahead (pgbars.roll_forward_bar_partitions, a transaction of its
    own on this autocommit connection), then every open-ended job extended to the last completed
    session (pgbars.roll_forward_backfills); its jsonb with `partitions_added`."""
    cur = await conn.execute("SELECT pgbars.roll_forward_bar_partitions()")
    added = await cur.fetchone()
    cur = await conn.execute("SELECT pgbars.roll_forward_backfills()")
    row = await cur.fetchone()
    assert row is not None and added is not None
    return {**row[0], "partitions_added": int(added[0])}
