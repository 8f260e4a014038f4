"""pgbars through a real PgBouncer in transaction mode (Supabase's pooler on port 6543).

The pooler hands each transaction whichever server connection is free: two of them
here (default_pool_size = 2, round robin) for the worker's five client connections, so
session state or a server-side prepared statement would be lost between transactions.
PgBouncer does not forward libpq `options`, so the planning clock reaches the server as
the database's default (`ALTER DATABASE ... SET pgbars.now`), set directly on the server.

Debian's `pgbouncer` package (`apt-get install pgbouncer`); without it the tests skip,
except in CI (CI=true, or PGBARS_REQUIRE_PGBOUNCER=1 as .ci/run sets it), where they
fail: CI must run them (.ci/run installs it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from tests.conftest import _server
from tests.integration.helpers import chunk_rows, request, scalar, served, stored, watch
from tests.integration.test_work_today import hourly_from_m15
from worker.calendar import NEW_YORK
from worker.emulator import PolygonServer, TradierServer

USER = "postgres"  # the test server's superuser, trusted on its socket


def _pgbouncer() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )
    if found is None:
        reason = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("CI") == "true" or os.environ.get("PGBARS_REQUIRE_PGBOUNCER") == "1":
            pytest.fail(f"{reason}: CI must run the pooler tests")
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Bouncer:
    port: int
    log: Path

    def dsn(self, dbname: str) -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, user=USER, dbname=dbname)

    def admin(self, command: str) -> list[dict[str, Any]]:
        """A SHOW command on PgBouncer's admin console (simple protocol, no transaction)."""
        with psycopg.connect(self.dsn("pgbouncer"), autocommit=True) as console:
            cur = console.cursor(row_factory=dict_row)
            cur.execute(command.encode(), prepare=False)
            return cur.fetchall()


@pytest.fixture
def bouncer() -> Iterator[Bouncer]:
    """A PgBouncer in transaction mode in front of the test server, on 127.0.0.1. As root it runs
    as the user that owns the server's socket directory (PgBouncer refuses root; the embedded
    server runs as a system user of its own), or `nobody`, from a directory that user owns."""
    binary = _pgbouncer()
    home = Path(tempfile.mkdtemp(prefix="pgbars-pgbouncer-"))
    port = _free_port()
    (home / "users.txt").write_text(f'"{USER}" ""\n')
    (home / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={_server.host} port={_server.port} user={USER}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {home}/users.txt
admin_users = {USER}
pool_mode = transaction
default_pool_size = 2
min_pool_size = 0
server_round_robin = 1
max_client_conn = 100
ignore_startup_parameters = extra_float_digits,options
server_connect_timeout = 5
server_login_retry = 1
query_wait_timeout = 30
logfile = {home}/pgbouncer.log
"""
    )
    command = [binary, str(home / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = Path(_server.host).stat().st_uid
        user = pwd.getpwuid(owner) if owner != 0 else pwd.getpwnam("nobody")
        os.chown(home, user.pw_uid, user.pw_gid)
        for path in home.iterdir():
            os.chown(path, user.pw_uid, user.pw_gid)
        command = [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            *command,
        ]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    running = Bouncer(port, home / "pgbouncer.log")
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                log = running.log.read_text() if running.log.exists() else ""
                pytest.fail(f"pgbouncer exited with {process.returncode}:\n{output}{log}")
            try:
                running.admin("SHOW VERSION")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
        shutil.rmtree(home, ignore_errors=True)


def pgbars(database_url: str, env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """The `pgbars` command as a process of its own; returns its output, asserting exit 0."""
    process_env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN", "_BASE_URL"))}
    process_env.update(env)
    process_env["DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=process_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _our_servers(bouncer: Bouncer, dbname: str) -> list[dict[str, Any]]:
    return [s for s in bouncer.admin("SHOW SERVERS") if s["database"] == dbname]


def test_the_pooler_moves_transactions_between_server_connections(
    db: psycopg.Connection[Any], bouncer: Bouncer
) -> None:
    """What the worker must survive: a client's transactions land on different server sessions,
    and `options` never reach the server (the planning clock comes from the database default)."""
    dbname = db.info.dbname
    clients = [
        psycopg.connect(bouncer.dsn(dbname), autocommit=True, prepare_threshold=None) for _ in range(3)
    ]
    try:
        with clients[0].transaction(), clients[1].transaction():
            pids = {scalar(c, "SELECT pg_backend_pid()") for c in clients[:2]}  # both servers busy
        seen = {scalar(clients[2], "SELECT pg_backend_pid()") for _ in range(6)}
        assert len(pids) == 2 and seen == pids  # one client, two server sessions
        assert scalar(clients[2], "SELECT current_setting('pgbars.now')") == scalar(
            db, "SELECT current_setting('pgbars.now')"
        )
        # What pgbars turns off: a statement prepared on one server session is not on the other.
        with (
            psycopg.connect(bouncer.dsn(dbname), autocommit=True, prepare_threshold=0) as preparing,
            pytest.raises(psycopg.errors.InvalidSqlStatementName, match="prepared statement"),
        ):
            for _ in range(4):
                preparing.execute("SELECT count(*) FROM pgbars.backfill_chunks").fetchone()
    finally:
        for c in clients:
            c.close()
    with psycopg.connect(
        bouncer.dsn(dbname), autocommit=True, options="-c pgbars.now=2030-01-01T00:00:00+00:00"
    ) as ignored:
        assert scalar(ignored, "SELECT current_setting('pgbars.now')") != "2030-01-01T00:00:00+00:00"


def test_work_backfills_and_refreshes_today_through_the_pooler(
    db: psycopg.Connection[Any], env: dict[str, str], bouncer: Bouncer, tradier: TradierServer
) -> None:
    dbname = db.info.dbname
    # A watchlist ticker: 2 years of h1 history in 10 chunks; the clock (2025-01-02 12:00
    # New York) is mid-session, so the run also refreshes today's bars from Tradier.
    watch(db, "AAPL")
    first, last = dt.date(2023, 1, 3), dt.date(2024, 12, 31)
    request(db, "MSFT", "m30", dt.date(2024, 11, 25), dt.date(2024, 11, 29))
    assert len(chunk_rows(db, "AAPL")) == 10
    # Tuesday 3 December as an early close: the chunk that holds it stores three rows
    # in quarantine (17:00, 18:00, 19:00 New York), the rest as history.
    db.execute(
        "UPDATE pgbars.market_sessions SET regular_close = '2024-12-03 18:00+00',"
        " after_hours_close = '2024-12-03 22:00+00', is_early_close = true WHERE session_date = '2024-12-03'"
    )
    late = [
        r
        for r in served("AAPL", "h1", dt.date(2024, 12, 3), dt.date(2024, 12, 3))
        if r[0].hour in (22, 23, 0)
    ]
    assert len(late) == 3

    output = pgbars(bouncer.dsn(dbname), env, "work", "--max-seconds", "90", "--concurrency", "4")

    # Every bar served is stored exactly once, the late ones quarantined, nothing else.
    assert [c["status"] for c in chunk_rows(db, "AAPL")] == ["done"] * len(chunk_rows(db, "AAPL"))
    assert [c["status"] for c in chunk_rows(db, "MSFT", "m30")] == ["done"]
    today_opens = dt.datetime(2025, 1, 2, 4, tzinfo=NEW_YORK)
    history = [r for r in stored(db, "AAPL", "h1") if r[0] < today_opens]
    assert history == [r for r in served("AAPL", "h1", first, last) if r not in late]
    assert stored(db, "MSFT", "m30") == served("MSFT", "m30", dt.date(2024, 11, 25), dt.date(2024, 11, 29))
    rejected = db.execute("SELECT ts, reason FROM pgbars.rejected_bars ORDER BY ts").fetchall()
    assert rejected == [(r[0], "outside session hours") for r in late]
    assert scalar(db, "SELECT count(*) FROM pgbars.staged_bars") == 0
    assert scalar(db, "SELECT count(*) FROM pgbars.staged_rejects") == 0
    # Today's bars, provisional, from the live refresh.
    today = [r for r in stored(db, "AAPL", "h1") if r[0] >= today_opens]
    assert [r[:6] for r in today] == [e[:6] for e in hourly_from_m15("AAPL")]
    assert re.search(r" live ticker=AAPL timeframe=m15 .* outcome=done", output), output
    assert len(re.findall(r" chunk ticker=\w+ timeframe=\w+ .* outcome=done", output)) == 11
    assert "bars_rejected=3 " in output and 'stopped_by="queue empty"' in output

    # PgBouncer served the run: the worker's clients shared at most two server sessions.
    logins = re.findall(rf"login attempt: db={re.escape(dbname)} user={USER}", bouncer.log.read_text())
    assert len(logins) >= 5  # the probe, the worker's 4 pooled connections, ...
    servers = _our_servers(bouncer, dbname)
    assert 1 <= len(servers) <= 2
    (stats,) = [s for s in bouncer.admin("SHOW STATS") if s["database"] == dbname]
    assert stats["total_xact_count"] > 20
    backends = scalar(
        db,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    assert backends == len(servers)  # the pooler's connections, nobody else's


def test_the_cli_through_the_pooler(
    db: psycopg.Connection[Any],
    bouncer: Bouncer,
    polygon: PolygonServer,
    env: dict[str, str],
    new_database: Callable[[], str],
) -> None:
    url = bouncer.dsn(db.info.dbname)
    assert "NVDA" in pgbars(url, {}, "watch", "add", "NVDA")  # seeds 2 years of h1: 10 chunks
    assert "NVDA" in pgbars(url, {}, "watch", "list")
    (job,) = json.loads(pgbars(url, {}, "status", "NVDA", "--json"))
    assert (job["symbol"], job["timeframe"], job["done"], job["total"]) == ("NVDA", "h1", 0, 10)

    pgbars(url, env, "work", "--max-seconds", "60", "--concurrency", "4")

    (job,) = json.loads(pgbars(url, {}, "status", "NVDA", "--json"))
    assert (job["status"], job["done"], job["total"]) == ("done", 10, 10)
    assert "NVDA" in pgbars(url, {}, "status")
    assert len(polygon.requests) == 10
    first, last = chunk_rows(db, "NVDA")[0]["first_session"], chunk_rows(db, "NVDA")[-1]["last_session"]
    assert stored(db, "NVDA", "h1", "polygon") == served("NVDA", "h1", first, last)

    # The schema installs and upgrades through the pooler too: one transaction, an xact lock.
    fresh = new_database()
    fresh_name = conninfo_to_dict(fresh)["dbname"]
    assert isinstance(fresh_name, str)
    pgbars(bouncer.dsn(fresh_name), {}, "db", "upgrade")
    assert "up to date" in pgbars(bouncer.dsn(fresh_name), {}, "db", "upgrade")
    with psycopg.connect(fresh, autocommit=True) as direct:
        assert scalar(direct, "SELECT count(*) FROM pgbars.market_sessions") > 0
