"""The installer: `pgbars db upgrade` and the checks that the schema is this code's.

sql/schema.sql on a fresh database (or the migration chain), pending
migrations after their checksums are verified, the routines (functions,
views, triggers, grants) when their checksum changed or a migration ran, the
XNYS calendar (market_sessions) and the year partitions of ohlc_bars_v2
through the end of next year; all in one transaction
under an advisory lock, so two installers at once are safe. Then pgqueuer's
tables for `pgbars serve` (worker/db/schedules.py), under a lock of their own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import psycopg

from .. import calendar
from ..errors import SchemaError
from .schedules import install_queue

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
    partitions_added: int = 0
    queue_statements: int = 0  # pgqueuer's tables (pgbars_queue): installed or upgraded
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return (
            self.fresh_install
            or bool(self.migrations_applied)
            or self.routines_applied
            or self.sessions_added > 0
            or self.partitions_added > 0
            or self.queue_statements > 0
        )


def _sql_root() -> Traversable:
    """sql/ of the checkout (tests, editable installs), else the copy shipped as worker.sql."""
    checkout = Path(__file__).resolve().parents[2] / "sql"
    if (checkout / "schema.sql").is_file():
        return checkout
    return files(__name__.split(".")[0] + ".sql")  # the installed package: pgbars.sql


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
        # After any migration too: one that rebuilds a table (0016) drops the
        # views that read it, and the routines bring them back.
        if row is None or row[0] != wanted or report.migrations_applied:
            # Routines reference each other and the views; bodies are checked
            # when called, as pg_dump restores do.
            await conn.execute("SET LOCAL check_function_bodies = off")
            for routine in routines:
                await conn.execute(routine.text.encode())
            await _record(conn, ROUTINES, wanted)
            report.routines_applied = True

        report.sessions_added = await _extend_market_sessions(conn, today)
        report.partitions_added = await _extend_bar_partitions(conn, today)
    # pgbars serve's schedules: pgqueuer's DDL, one statement per round trip (autocommit).
    autocommit = conn.autocommit
    if not autocommit:
        await conn.set_autocommit(True)
    try:
        report.queue_statements = await install_queue(conn)
    finally:
        if not autocommit:
            await conn.set_autocommit(False)
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


async def _extend_bar_partitions(conn: psycopg.AsyncConnection[Any], today: dt.date | None) -> int:
    """Create ohlc_bars_v2's year partitions through the end of next year, as the calendar."""
    # (a schema before migration 0016, as upgrade tests build, has no partitions)
    cur = await conn.execute("SELECT to_regprocedure('pgbars.extend_bar_partitions(date)') IS NOT NULL")
    found = await cur.fetchone()
    if not (found and found[0]):
        return 0
    cur = await conn.execute("SELECT pgbars.extend_bar_partitions(%s)", (calendar.calendar_end(today),))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def require_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise SchemaError when the pgbars schema is not installed (a cheap check any role may make)."""
    cur = await conn.execute("SELECT to_regclass('pgbars.schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if not (row and row[0]):
        raise SchemaError("the pgbars schema is not installed: run `pgbars db upgrade`")


async def ensure_schema_current(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise SchemaError unless the database has exactly this code's schema."""
    await require_schema(conn)
    cur = await conn.execute("SELECT name, checksum FROM pgbars.schema_migrations")
    stored = dict(await cur.fetchall())
    expected = {m.name: m.checksum for m in migration_files()}
    expected[ROUTINES] = routines_checksum(routine_files())
    if stored != expected:
        raise SchemaError("the pgbars schema is older or newer than this code: run `pgbars db upgrade`")
