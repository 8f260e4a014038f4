"""Every call pgbars makes into Postgres lives here.

The database owns the rules (sql/); this module only sends statements and
shapes their results for the CLI and the worker. All access is asyncio
(psycopg 3 async connections).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from worker import calendar, clock
from worker.errors import PgbarsError, SchemaError

SCHEMA_LOCK = "pgbars.schema"
ROUTINES = "routines"


@dataclass(frozen=True, slots=True)
class SqlFile:
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(slots=True)
class UpgradeReport:
    fresh_install: bool = False
    migrations_applied: list[str] = field(default_factory=list)
    routines_applied: bool = False
    sessions_added: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return (
            self.fresh_install
            or bool(self.migrations_applied)
            or self.routines_applied
            or self.sessions_added > 0
        )


def _sql_root() -> Traversable:
    """sql/ of the checkout (editable installs), else the copy shipped as worker.sql."""
    checkout = Path(__file__).resolve().parent.parent / "sql"
    if (checkout / "schema.sql").is_file():
        return checkout
    return files("worker.sql")


def _read_dir(folder: str) -> list[SqlFile]:
    entries = [e for e in _sql_root().joinpath(folder).iterdir() if e.name.endswith(".sql")]
    return [
        SqlFile(f"{folder}/{e.name}", e.read_text(encoding="utf-8"))
        for e in sorted(entries, key=lambda e: e.name)
    ]


def schema_file() -> SqlFile:
    return SqlFile("schema.sql", _sql_root().joinpath("schema.sql").read_text(encoding="utf-8"))


def migration_files() -> list[SqlFile]:
    """sql/migrations/NNNN_*.sql in order; 0001 is the initial schema."""
    return [SqlFile(f.name.removeprefix("migrations/"), f.text) for f in _read_dir("migrations")]


def routine_files() -> list[SqlFile]:
    """Functions, views, triggers and grants: re-created on every upgrade that changes them."""
    root = _sql_root()
    tail = [
        SqlFile(name, root.joinpath(name).read_text(encoding="utf-8"))
        for name in ("triggers.sql", "roles.sql")
    ]
    return _read_dir("functions") + _read_dir("views") + tail


def routines_checksum(routines: Sequence[SqlFile]) -> str:
    digest = hashlib.sha256()
    for routine in routines:
        digest.update(routine.name.encode() + b"\0" + routine.text.encode() + b"\0")
    return digest.hexdigest()


def session_kwargs(dsn: str) -> dict[str, Any]:
    """Connection parameters every pgbars session gets: the planning clock of PGBARS_NOW
    (worker.clock) as pgbars.now, added to the options the DSN or PGOPTIONS already carry."""
    clock_options = clock.session_options()
    if clock_options is None:
        return {}
    try:
        given = conninfo_to_dict(dsn).get("options") or os.environ.get("PGOPTIONS", "")
    except psycopg.ProgrammingError:
        given = ""  # connect() reports the malformed DSN itself
    return {"options": f"{given} {clock_options}".strip()}


async def connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection; raises PgbarsError with a one-line reason."""
    try:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True, **session_kwargs(dsn))
    except psycopg.OperationalError as exc:
        raise PgbarsError(f"cannot connect to the database: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def upgrade(
    conn: psycopg.AsyncConnection[Any],
    *,
    baseline: Literal["schema", "migrations"] = "schema",
    today: dt.date | None = None,
) -> UpgradeReport:
    """Install or upgrade the schema in one transaction, under an advisory lock.

    A fresh database gets sql/schema.sql (the current state) and every migration
    is recorded as applied; `baseline="migrations"` builds it through the
    migration chain instead (the test that both agree uses it). An existing
    database gets the migrations it lacks, after the checksums of those it has
    are verified. Routines are re-created when their checksum changed, and
    market_sessions is extended through the end of next year.
    """
    started = time.perf_counter()
    report = UpgradeReport()
    migrations = migration_files()
    routines = routine_files()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SCHEMA_LOCK,))
        cur = await conn.execute("SELECT to_regclass('pgbars.schema_migrations') IS NOT NULL")
        installed = await cur.fetchone()
        if not (installed and installed[0]):
            report.fresh_install = True
            if baseline == "schema":
                await conn.execute(schema_file().text.encode())
                for migration in migrations:
                    await _record(conn, migration.name, migration.checksum)
            else:
                for migration in migrations:
                    await conn.execute(migration.text.encode())
                    await _record(conn, migration.name, migration.checksum)
                    report.migrations_applied.append(migration.name)
        else:
            report.migrations_applied = await _apply_pending_migrations(conn, migrations)

        wanted = routines_checksum(routines)
        cur = await conn.execute("SELECT checksum FROM pgbars.schema_migrations WHERE name = %s", (ROUTINES,))
        row = await cur.fetchone()
        if row is None or row[0] != wanted:
            # Routines reference each other and the views; bodies are checked
            # when called, as pg_dump restores do.
            await conn.execute("SET LOCAL check_function_bodies = off")
            for routine in routines:
                await conn.execute(routine.text.encode())
            await _record(conn, ROUTINES, wanted)
            report.routines_applied = True

        report.sessions_added = await _extend_market_sessions(conn, today)
    report.seconds = time.perf_counter() - started
    return report


async def _record(conn: psycopg.AsyncConnection[Any], name: str, checksum: str) -> None:
    await conn.execute(
        "INSERT INTO pgbars.schema_migrations (name, checksum) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()",
        (name, checksum),
    )


async def _apply_pending_migrations(
    conn: psycopg.AsyncConnection[Any], migrations: Sequence[SqlFile]
) -> list[str]:
    cur = await conn.execute(
        "SELECT name, checksum FROM pgbars.schema_migrations WHERE name <> %s", (ROUTINES,)
    )
    applied = {name: checksum for name, checksum in await cur.fetchall()}
    known = {m.name: m for m in migrations}
    unknown = sorted(set(applied) - set(known))
    if unknown:
        raise SchemaError(
            f"the database has migration {unknown[0]}, which this version of pgbars does not"
            " know; upgrade pgbars instead"
        )
    for name, checksum in sorted(applied.items()):
        if known[name].checksum != checksum:
            raise SchemaError(
                f"migration {name} was applied with checksum {checksum[:12]}, but the file now"
                f" has {known[name].checksum[:12]}; applied migrations must never change"
                " (add a new migration instead)"
            )
    done = []
    for migration in migrations:
        if migration.name not in applied:
            await conn.execute(migration.text.encode())
            await _record(conn, migration.name, migration.checksum)
            done.append(migration.name)
    return done


async def _extend_market_sessions(conn: psycopg.AsyncConnection[Any], today: dt.date | None) -> int:
    """Load XNYS sessions after the last one stored, through the end of next year."""
    end = calendar.calendar_end(today)
    cur = await conn.execute("SELECT max(session_date) FROM pgbars.market_sessions")
    row = await cur.fetchone()
    last = row[0] if row else None
    start = calendar.CALENDAR_START if last is None else last + dt.timedelta(days=1)
    if start > end:
        return 0
    sessions = calendar.xnys_sessions(start, end)
    async with conn.cursor().copy(
        "COPY pgbars.market_sessions (session_date, premarket_open, regular_open,"
        " regular_close, after_hours_close, is_early_close) FROM STDIN"
    ) as copy:
        for s in sessions:
            await copy.write_row(
                (
                    s.session_date,
                    s.premarket_open,
                    s.regular_open,
                    s.regular_close,
                    s.after_hours_close,
                    s.is_early_close,
                )
            )
    return len(sessions)


async def require_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise SchemaError when the pgbars schema is not installed (a cheap check any role may make)."""
    cur = await conn.execute("SELECT to_regclass('pgbars.schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if not (row and row[0]):
        raise SchemaError("the pgbars schema is not installed: run `pgbars db upgrade`")


async def ensure_schema_current(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise SchemaError unless the database has exactly this code's schema."""
    cur = await conn.execute("SELECT to_regclass('pgbars.schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if not (row and row[0]):
        raise SchemaError("the pgbars schema is not installed: run `pgbars db upgrade`")
    cur = await conn.execute("SELECT name, checksum FROM pgbars.schema_migrations")
    stored = dict(await cur.fetchall())
    expected = {m.name: m.checksum for m in migration_files()}
    expected[ROUTINES] = routines_checksum(routine_files())
    if stored != expected:
        raise SchemaError("the pgbars schema is older or newer than this code: run `pgbars db upgrade`")


# -- watchlists and requests ---------------------------------------------------


async def add_to_watchlist(
    conn: psycopg.AsyncConnection[Any], tickers: Sequence[str], watchlist: str
) -> list[dict[str, Any]]:
    """Add tickers in one transaction: one bad ticker adds none of them."""
    results = []
    async with conn.transaction():
        for ticker in tickers:
            cur = await conn.execute("SELECT pgbars.add_to_watchlist(%s, %s)", (ticker, watchlist))
            row = await cur.fetchone()
            assert row is not None
            results.append(row[0])
    return results


async def remove_from_watchlist(
    conn: psycopg.AsyncConnection[Any], tickers: Sequence[str], watchlist: str
) -> dict[str, bool]:
    removed = {}
    async with conn.transaction():
        for ticker in tickers:
            cur = await conn.execute(
                "SELECT pgbars.normalize_ticker(%s), pgbars.remove_from_watchlist(%s, %s)",
                (ticker, ticker, watchlist),
            )
            row = await cur.fetchone()
            assert row is not None
            removed[row[0]] = row[1]
    return removed


async def list_watchlists(conn: psycopg.AsyncConnection[Any], watchlist: str | None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT w.name AS watchlist, s.ticker::text AS ticker, i.added_at"
        " FROM pgbars.watchlist_items AS i"
        " JOIN pgbars.watchlists AS w ON w.id = i.watchlist_id"
        " JOIN pgbars.symbols AS s ON s.id = i.symbol_id"
        " WHERE %(watchlist)s::text IS NULL OR w.name = %(watchlist)s"
        " ORDER BY w.name, s.ticker",
        {"watchlist": watchlist},
    )
    return await cur.fetchall()


async def request_backfill(
    conn: psycopg.AsyncConnection[Any],
    tickers: Sequence[str],
    timeframes: Sequence[str],
    start: dt.date | None,
    end: dt.date | None,
    years: int | None,
) -> list[dict[str, Any]]:
    """Seed every ticker in one transaction: one bad ticker requests none of them."""
    results = []
    async with conn.transaction():
        for ticker in tickers:
            cur = await conn.execute(
                "SELECT pgbars.request_backfill(%s, %s, %s, %s, %s)",
                (ticker, list(timeframes), start, end, years),
            )
            row = await cur.fetchone()
            assert row is not None
            results.append(row[0])
    return results


async def backfill_progress(
    conn: psycopg.AsyncConnection[Any], ticker: str | None = None, *, tickers: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """backfill_progress rows, of one ticker or several (None: all); derived timeframes
    (derived_from set) repeat their source job's chunk counts."""
    if tickers is not None:
        rows = []
        for one in tickers:
            rows += await backfill_progress(conn, one)
        return rows
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT bp.symbol, bp.timeframe, bp.status, bp.progress, bp.done, bp.pending,"
        " bp.running, bp.failed, bp.total, bp.sessions_done, bp.sessions_total,"
        " bp.bars_written, bp.first_session, bp.last_session, bp.derived_from"
        " FROM pgbars.backfill_progress AS bp"
        " JOIN pgbars.timeframes AS tf ON tf.name = bp.timeframe"
        " WHERE %(ticker)s::text IS NULL OR bp.symbol = pgbars.normalize_ticker(%(ticker)s)"
        " ORDER BY bp.symbol, tf.sort_order",
        {"ticker": ticker},
    )
    return await cur.fetchall()


async def backfill_progress_with_eta(
    conn: psycopg.AsyncConnection[Any], ticker: str | None = None
) -> list[dict[str, Any]]:
    """What `pgbars status` shows: backfill_progress rows of one ticker (None: all) with the
    bars stored and the ETA of pgbars.backfill_eta, ordered by symbol and timeframe.

    A derived timeframe (derived_from: its source) shows its source job's chunks and ETA.
    Keys: those of backfill_progress(), plus job_id, derived_from, bars (rows in ohlc_bars_v2 for the
    job's symbol and timeframe, forecasts left out), provider, remaining_chunks,
    remaining_requests, requests_ahead, paused_until, eta_seconds and eta_at.
    Raises 22023 for an invalid ticker; an unknown one has no rows. Needs only pgbars_reader.
    """
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT bp.symbol, bp.timeframe, bp.status, bp.progress, bp.done, bp.pending,"
        " bp.running, bp.failed, bp.total, bp.sessions_done, bp.sessions_total,"
        " bp.bars_written, bp.first_session, bp.last_session, bp.job_id, bp.derived_from,"
        # one index-only count over the bars' primary key (symbol_id, timeframe, ...)
        " (SELECT count(*) FROM pgbars.ohlc_bars_v2 AS b"
        "  WHERE b.symbol_id = bp.symbol_id AND b.timeframe = bp.timeframe AND NOT b.is_forecast) AS bars,"
        " e.provider, e.remaining_chunks, e.remaining_requests, e.requests_ahead, e.paused_until,"
        " e.eta_seconds, e.eta_at"
        " FROM pgbars.backfill_eta(%(tickers)s) WITH ORDINALITY AS e"
        " JOIN pgbars.backfill_progress AS bp ON bp.job_id = e.job_id"
        " WHERE %(ticker)s::text IS NULL OR bp.symbol = pgbars.normalize_ticker(%(ticker)s)"
        " ORDER BY e.ordinality, bp.derived_from IS NOT NULL",
        {"ticker": ticker, "tickers": None if ticker is None else [ticker]},
    )
    return await cur.fetchall()


# A function, table or schema of pgbars that the database lacks: an older schema.
_SCHEMA_BEHIND = {"3F000", "42P01", "42883", "42703"}


def describe_error(exc: psycopg.Error) -> str:
    """One line for the user from a database error: its message and hint."""
    diag = exc.diag
    message = diag.message_primary or _first_line(exc)
    if exc.sqlstate in _SCHEMA_BEHIND and "pgbars" in message:
        return f"{message}: the pgbars schema is older than this code, run `pgbars db upgrade`"
    return f"{message} ({diag.message_hint})" if diag.message_hint else message


# -- the worker ------------------------------------------------------------------

# Session-private staging for pgbars.store_chunk_bars: the worker COPYs a
# chunk's bars and refused rows here inside the chunk's transaction; commit
# empties them. Column order is that of worker.providers.Bar.
_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS pgbars_staged_bars ("
    " ts timestamptz NOT NULL, open float8 NOT NULL, high float8 NOT NULL, low float8 NOT NULL,"
    " close float8 NOT NULL, volume float8 NOT NULL, vwap float8, trade_count int8"
    ") ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS pgbars_staged_rejects ("
    " ts timestamptz, raw jsonb NOT NULL, reason text NOT NULL"
    ") ON COMMIT DELETE ROWS",
)
_BAR_TYPES = ("timestamptz", "float8", "float8", "float8", "float8", "float8", "float8", "int8")


@dataclass(frozen=True, slots=True)
class ClaimedChunk:
    """A chunk leased to this worker (a row of pgbars.claim_backfill_chunks)."""

    chunk_id: int
    lease_id: uuid.UUID
    job_id: int
    symbol_id: uuid.UUID
    ticker: str
    timeframe: str
    provider: str
    first_session: dt.date
    last_session: dt.date
    session_count: int
    range_start: dt.datetime
    range_end: dt.datetime
    attempt: int
    lease_expires_at: dt.datetime


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


async def _prepare_worker_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    for statement in _STAGING_DDL:
        await conn.execute(statement)


async def open_worker_pool(dsn: str, size: int, *, connect_seconds: float = 15.0) -> AsyncConnectionPool:
    """A pool of `size` autocommit connections with the staging tables; PgbarsError if unreachable."""
    # One direct connection first: it fails at once, with libpq's reason, where
    # the pool would retry in silence until its timeout.
    probe = await connect(dsn)
    await probe.close()
    pool = AsyncConnectionPool(
        dsn,
        min_size=size,
        max_size=size,
        kwargs={"autocommit": True, "application_name": "pgbars work", **session_kwargs(dsn)},
        configure=_prepare_worker_connection,
        open=False,
        name="pgbars-worker",
    )
    try:
        await pool.open(wait=True, timeout=connect_seconds)
    except PoolTimeout:
        await pool.close()
        raise PgbarsError(
            f"cannot connect to the database: no connection within {connect_seconds:.0f} s"
        ) from None
    return pool


async def enabled_providers(conn: psycopg.AsyncConnection[Any], names: Sequence[str]) -> list[str]:
    """Those of `names` that pgbars.providers has enabled."""
    cur = await conn.execute(
        "SELECT name FROM pgbars.providers WHERE enabled AND name = ANY(%s) ORDER BY name", (list(names),)
    )
    return [name for (name,) in await cur.fetchall()]


async def claim_chunks(
    conn: psycopg.AsyncConnection[Any],
    worker: str,
    providers: Sequence[str],
    limit: int,
    lease_seconds: float,
    tickers: Sequence[str] | None,
) -> list[ClaimedChunk]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM pgbars.claim_backfill_chunks(%s, %s, %s, make_interval(secs => %s), %s)",
        (worker, list(providers), limit, lease_seconds, list(tickers) if tickers else None),
    )
    return [ClaimedChunk(**row) for row in await cur.fetchall()]


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


async def pause_provider(
    conn: psycopg.AsyncConnection[Any], provider: str, seconds: float | None
) -> dt.datetime:
    """Pause for `seconds` (None: one rate-limit window); returns the pause's end."""
    cur = await conn.execute(
        "SELECT pgbars.pause_provider(%s, now() + make_interval(secs => %s))", (provider, seconds)
    )
    row = await cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def release_chunk(
    conn: psycopg.AsyncConnection[Any],
    chunk: ClaimedChunk,
    reason: str,
    not_before: dt.datetime | None = None,
) -> None:
    await conn.execute(
        "SELECT pgbars.release_backfill_chunk(%s, %s, %s, %s)",
        (chunk.chunk_id, chunk.lease_id, not_before, reason),
    )


async def fail_chunk(
    conn: psycopg.AsyncConnection[Any], chunk: ClaimedChunk, error: str, *, retryable: bool
) -> str:
    """Record a failed attempt; returns the chunk's new status (pending or failed)."""
    cur = await conn.execute(
        "SELECT pgbars.fail_backfill_chunk(%s, %s, %s, %s)",
        (chunk.chunk_id, chunk.lease_id, error, retryable),
    )
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def reroute_chunk(conn: psycopg.AsyncConnection[Any], chunk: ClaimedChunk, error: str) -> str | None:
    """Move the chunk to its next route; returns that provider, or None when it failed."""
    cur = await conn.execute(
        "SELECT pgbars.reroute_backfill_chunk(%s, %s, %s)", (chunk.chunk_id, chunk.lease_id, error)
    )
    row = await cur.fetchone()
    assert row is not None
    return None if row[0] is None else str(row[0])


async def _stage(
    cur: psycopg.AsyncCursor[Any],
    bars: Iterable[Sequence[Any]],
    rejected: Iterable[tuple[dt.datetime | None, dict[str, object], str]],
) -> None:
    """COPY bars (binary) and refused rows into this session's staging tables."""
    async with cur.copy(
        "COPY pgbars_staged_bars (ts, open, high, low, close, volume, vwap, trade_count)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_BAR_TYPES)
        for bar in bars:
            await copy.write_row(bar)
    async with cur.copy("COPY pgbars_staged_rejects (ts, raw, reason) FROM STDIN") as copy:
        for ts, raw, reason in rejected:
            await copy.write_row((ts, Jsonb(raw), reason))


async def store_chunk(
    conn: psycopg.AsyncConnection[Any],
    chunk: ClaimedChunk,
    bars: Iterable[Sequence[Any]],
    rejected: Iterable[tuple[dt.datetime | None, dict[str, object], str]],
    requests: int,
) -> StoredChunk:
    """One transaction: COPY bars and refused rows into staging, then pgbars.store_chunk_bars.

    `bars` are rows in worker.providers.Bar order; `rejected` are (ts, raw, reason).
    """
    async with conn.transaction():
        cur = conn.cursor()
        await _stage(cur, bars, rejected)
        await cur.execute(
            "SELECT bars_written, bars_changed, bars_rejected FROM pgbars.store_chunk_bars(%s, %s, %s)",
            (chunk.chunk_id, chunk.lease_id, requests),
        )
        row = await cur.fetchone()
    assert row is not None
    return StoredChunk(*row)


# -- today's bars (live refreshes) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveRefresh:
    """Today's bars of one symbol and fetched timeframe, leased (a row of claim_live_refreshes)."""

    symbol_id: uuid.UUID
    ticker: str
    timeframe: str
    provider: str
    session_date: dt.date
    range_start: dt.datetime
    range_end: dt.datetime
    targets: list[str]
    lease_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the live refreshes look like now, for the run's report (pgbars.live_refreshes)."""

    session: dt.date | None  # the session trading now, if any
    wanted: dict[str, int]  # provider -> live_plan rows (symbol, timeframe) while a session trades
    no_data: list[tuple[str, str, str, str]]  # (ticker, timeframe, provider, why) this session


async def claim_live(
    conn: psycopg.AsyncConnection[Any],
    worker: str,
    providers: Sequence[str],
    limit: int,
    lease_seconds: float,
    tickers: Sequence[str] | None,
) -> list[LiveRefresh]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM pgbars.claim_live_refreshes(%s, %s, %s, make_interval(secs => %s), %s)",
        (worker, list(providers), limit, lease_seconds, list(tickers) if tickers else None),
    )
    return [LiveRefresh(**row) for row in await cur.fetchall()]


async def store_live(
    conn: psycopg.AsyncConnection[Any],
    refresh: LiveRefresh,
    bars: Iterable[Sequence[Any]],
    rejected: Iterable[tuple[dt.datetime | None, dict[str, object], str]],
    requests: int,
) -> StoredChunk:
    """One transaction: COPY into staging, then pgbars.store_live_bars (provisional bars, roll-ups)."""
    async with conn.transaction():
        cur = conn.cursor()
        await _stage(cur, bars, rejected)
        await cur.execute(
            "SELECT bars_written, bars_changed, bars_rejected FROM pgbars.store_live_bars(%s, %s, %s, %s)",
            (refresh.symbol_id, refresh.timeframe, refresh.lease_id, requests),
        )
        row = await cur.fetchone()
    assert row is not None
    return StoredChunk(*row)


async def release_live(conn: psycopg.AsyncConnection[Any], refresh: LiveRefresh, error: str | None) -> None:
    await conn.execute(
        "SELECT pgbars.release_live_refresh(%s, %s, %s, %s)",
        (refresh.symbol_id, refresh.timeframe, refresh.lease_id, error),
    )


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


# -- the demo and reports ----------------------------------------------------------


async def provider_limits(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT name, calls_per_window, window_length, window_margin FROM pgbars.providers ORDER BY name"
    )
    return await cur.fetchall()


async def set_provider_limits(conn: psycopg.AsyncConnection[Any], limits: Sequence[dict[str, Any]]) -> None:
    """Rows like provider_limits() returns; one transaction."""
    async with conn.transaction():
        for limit in limits:
            await conn.execute(
                "UPDATE pgbars.providers SET calls_per_window = %(calls_per_window)s,"
                " window_length = %(window_length)s, window_margin = %(window_margin)s"
                " WHERE name = %(name)s",
                limit,
            )


# -- the demo's database -----------------------------------------------------------

DatabaseKind = Literal["empty", "demo", "in use"]


async def database_kind(conn: psycopg.AsyncConnection[Any]) -> DatabaseKind:
    """'empty': no pgbars schema; 'demo': a database `pgbars demo` ran in (pgbars.demo_runs
    has a row); 'in use': a pgbars schema that is not the demo's."""
    cur = await conn.execute(
        "SELECT to_regclass('pgbars.schema_migrations') IS NOT NULL,"
        " to_regclass('pgbars.demo_runs') IS NOT NULL"
    )
    row = await cur.fetchone()
    installed, has_marker = row if row else (False, False)
    if not installed:
        return "empty"
    if has_marker:
        cur = await conn.execute("SELECT EXISTS (SELECT FROM pgbars.demo_runs)")
        marked = await cur.fetchone()
        if marked and marked[0]:
            return "demo"
    return "in use"


async def require_not_demo(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise PgbarsError in a database that holds the demo's synthetic bars."""
    if await database_kind(conn) == "demo":
        raise PgbarsError(
            "this database holds the synthetic bars of `pgbars demo` (see pgbars.demo_runs);"
            " real bars are never fetched into it: point DATABASE_URL at another database,"
            " or remove the demo with `pgbars demo --remove`"
        )


async def record_demo_run(conn: psycopg.AsyncConnection[Any], tickers: Sequence[str]) -> None:
    await conn.execute("INSERT INTO pgbars.demo_runs (tickers) VALUES (%s)", (list(tickers),))


async def demo_contents(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """What a demo database holds: symbols, bars, chunks."""
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM pgbars.symbols), (SELECT count(*) FROM pgbars.ohlc_bars_v2),"
        " (SELECT count(*) FROM pgbars.backfill_chunks)"
    )
    row = await cur.fetchone()
    assert row is not None
    return {"symbols": row[0], "bars": row[1], "chunks": row[2]}


async def drop_pgbars_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Everything pgbars keeps in this database (the roles stay: they are the server's)."""
    await conn.execute("DROP SCHEMA pgbars CASCADE")


async def database_exists(conn: psycopg.AsyncConnection[Any], name: str) -> bool:
    cur = await conn.execute("SELECT EXISTS (SELECT FROM pg_database WHERE datname = %s)", (name,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def create_database(conn: psycopg.AsyncConnection[Any], name: str) -> None:
    try:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        raise PgbarsError(
            f"cannot create the demo's database {name}: this role may not create databases;"
            f" create it (CREATE DATABASE {name}) and point DATABASE_URL at it"
        ) from None


async def drop_database(conn: psycopg.AsyncConnection[Any], name: str) -> None:
    await conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


async def bar_coverage(conn: psycopg.AsyncConnection[Any], tickers: Sequence[str]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT c.symbol, c.timeframe, c.unit, c.bars, c.first_bar, c.last_bar, c.units_planned,"
        " c.units_with_bars, c.units_missing, c.coverage"
        " FROM pgbars.bar_coverage AS c"
        " JOIN pgbars.timeframes AS tf ON tf.name = c.timeframe"
        " WHERE c.symbol IN (SELECT pgbars.normalize_ticker(t) FROM unnest(%s::text[]) AS t)"
        " ORDER BY c.symbol, tf.sort_order",
        (list(tickers),),
    )
    return await cur.fetchall()


async def roll_forward(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """Extend every open-ended job to the last completed session (pgbars.roll_forward_backfills)."""
    cur = await conn.execute("SELECT pgbars.roll_forward_backfills()")
    row = await cur.fetchone()
    assert row is not None
    return dict(row[0])


# -- gaps ----------------------------------------------------------------------------


async def repair_gaps(conn: psycopg.AsyncConnection[Any], ticker: str | None = None) -> list[dict[str, Any]]:
    """pgbars.repair_gaps for one ticker (None: every job), in one transaction.

    One dict per chunk and action (`requeued_empty`, `requeued_failed`, `confirmed_empty`) with
    symbol, timeframe, chunk_id, first_session, last_session and sessions (dates), ordered by
    symbol, timeframe and session. Raises 22023 for an invalid ticker, P0002 for one without a
    backfill job. Needs pgbars_worker.
    """
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT symbol, timeframe, chunk_id, first_session, last_session, action, sessions"
        " FROM pgbars.repair_gaps(%s)",
        (ticker,),
    )
    return await cur.fetchall()
