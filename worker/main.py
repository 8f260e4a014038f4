"""The `pgbars` command line."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import click
import psycopg

from worker import db, work
from worker.errors import PgbarsError
from worker.live import LiveProgress, use_live_display
from worker.report import progress_bar

T = TypeVar("T")


def _database_url() -> str:
    dsn = os.environ.get("DATABASE_URL", "").strip()
    if not dsn:
        raise PgbarsError(
            "DATABASE_URL is not set: point it at your Postgres (libpq URI),"
            " or try `pgbars demo`, which needs none"
        )
    return dsn


def _debug(ctx: click.Context) -> bool:
    """--debug was given, before the command or after it."""
    return bool(ctx.meta.get(DEBUG_KEY))


def _run(ctx: click.Context, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn expected failures into one line and exit code 1."""
    try:
        return asyncio.run(work())
    except (PgbarsError, psycopg.Error) as exc:
        if _debug(ctx):
            raise
        message = db.describe_error(exc) if isinstance(exc, psycopg.Error) else str(exc)
        click.echo(f"pgbars: error: {message}", err=True)
        sys.exit(1)


async def _with_connection(
    dsn: str, action: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]], *, needs_schema: bool = True
) -> T:
    conn = await db.connect(dsn)
    try:
        if needs_schema:
            await db.require_schema(conn)
        return await action(conn)
    finally:
        await conn.close()


def _format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], right: Collection[str] = ()) -> str:
    """A plain-text table; columns named in `right` are right-aligned (numbers)."""
    cells = [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if c in right else v.ljust(w) for c, v, w in zip(columns, values, widths, strict=True)
        )

    lines = [line(columns), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


PROGRESS_COLUMNS = (
    "symbol",
    "timeframe",
    "status",
    "progress",
    "done",
    "pending",
    "running",
    "failed",
    "total",
    "bars_written",
    "first_session",
    "last_session",
)


DEBUG_KEY = "pgbars.debug"
# `pgbars --help` lists the commands in the order a new user meets them.
COMMAND_ORDER = ("demo", "db", "watch", "add", "remove", "list", "request", "work", "status", "repair")
# `pgbars work --strict`: the run ran, and a chunk failed or a credential was refused.
STRICT_EXIT = 3


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[DEBUG_KEY] = True  # meta is shared by the whole command chain
    return value


def _debug_option() -> click.Option:
    return click.Option(
        ["--debug"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Show tracebacks instead of one-line errors.",
    )


class _Command(click.Command):
    """A command that takes --debug after its name too (`pgbars work --debug`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(_debug_option())


class _Group(click.Group):
    """Commands listed in the order people use them, not alphabetically."""

    command_class = _Command

    def list_commands(self, ctx: click.Context) -> list[str]:
        order = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(self.commands, key=lambda name: order.get(name, len(order)))


_Group.group_class = _Group


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pgbars-pipeline", prog_name="pgbars", message="%(prog)s %(version)s")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Show tracebacks instead of one-line errors.",
)
def cli() -> None:
    """pgbars keeps years of OHLC bars in Postgres and keeps them current.

    Configuration comes from the environment: DATABASE_URL (libpq URI),
    POLYGON_API_KEY, TRADIER_TOKEN, and *_BASE_URL to point a provider elsewhere.
    """


@cli.command("demo", short_help="Run the whole pipeline offline on synthetic bars.")
@click.option(
    "--ticker", "tickers", multiple=True, help="Demo these tickers instead of the ten (repeat for several)."
)
@click.option(
    "--yes",
    is_flag=True,
    help="Run beside other data: DATABASE_URL holds more than an earlier demo (see below).",
)
@click.option("--remove", is_flag=True, help="Delete everything an earlier demo wrote, then stop.")
@click.pass_context
def demo(ctx: click.Context, tickers: tuple[str, ...], yes: bool, remove: bool) -> None:
    """Run the whole pipeline offline, in under a minute: an embedded Postgres (no
    DATABASE_URL needed), local provider servers serving synthetic bars, ten
    watchlist tickers seeded by the trigger and fetched by the real worker under
    a demo rate limit of 5 calls per second, with live progress.

    With DATABASE_URL set, the demo runs in that database only if it holds no
    pgbars data or only an earlier demo's; otherwise it refuses unless --yes.
    Its bars carry the provider names demo_polygon, demo_yahoo and demo_tradier
    (never a real provider's), its watchlist is 'demo', and its rate limit lives
    on those demo providers, so no setting a real worker obeys is changed and
    real pending chunks are never claimed. `pgbars demo --remove` deletes it all.
    Running it again is quick: the bars are there already.

    Example: pgbars demo
    """
    from worker import demo as demo_module

    _log_to_stderr(_debug(ctx))
    dsn = os.environ.get("DATABASE_URL", "").strip()
    server = None
    if dsn:
        click.echo("using DATABASE_URL: the demo's synthetic bars go there under the demo_* providers")
    else:
        from worker.embedded import EmbeddedPostgres, default_data_dir

        data_dir = default_data_dir()
        click.echo(f"embedded Postgres in {data_dir} (kept between runs)")
        server = EmbeddedPostgres(data_dir)
        dsn = server.dsn()
    try:
        if remove:
            removed = _run(ctx, lambda: demo_module.remove_demo(dsn))
            click.echo(
                f"removed the demo: {removed.symbols} symbols, {removed.bars:,} bars,"
                f" {removed.chunks} chunks, the demo watchlist and the demo providers"
            )
            return
        result = _run(
            ctx,
            lambda: demo_module.run_demo(
                dsn,
                click.echo,
                tickers=tickers or demo_module.DEMO_TICKERS,
                live=use_live_display(),
                allow_other_data=yes,
            ),
        )
    finally:
        if server is not None:
            server.stop()
    click.echo("")
    click.echo(_format_table(result.progress, PROGRESS_COLUMNS))
    click.echo("")
    click.echo("coverage (sessions with bars of the sessions planned):")
    click.echo(_format_table(result.coverage, COVERAGE_COLUMNS))
    summary = result.summary
    if summary is not None:
        requests = sum(r.requests for r in summary.reports)
        click.echo(
            f"\n{len(summary.reports)} chunks fetched with {requests} requests,"
            f" {summary.bars_written:,} bars written, {summary.bars_rejected} rejected;"
            f" demo finished in {result.seconds:.1f} s"
        )
        if summary.live:
            # Only while a session trades (04:00-20:00 New York): today's bars from the Tradier server.
            click.echo(
                f"today's bars: {len(summary.live)} live refreshes with"
                f" {sum(r.requests for r in summary.live)} requests,"
                f" {sum(r.bars_written for r in summary.live):,} provisional bars"
            )
    click.echo("remove everything the demo wrote with: pgbars demo --remove")


@cli.group("db", short_help="Install or upgrade the pgbars schema.")
def db_group() -> None:
    """Manage the pgbars schema."""


@db_group.command("upgrade", short_help="Install or upgrade the schema (idempotent).")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Install or upgrade the schema (idempotent; safe to run twice at once).

    Example: DATABASE_URL=postgresql://... pgbars db upgrade
    """
    report = _run(ctx, lambda: _with_connection(_database_url(), db.upgrade, needs_schema=False))
    _print_upgrade(report)


def _print_upgrade(report: db.UpgradeReport) -> None:
    if not report.changed:
        click.echo(f"schema is up to date ({report.seconds:.2f} s)")
        return
    parts = []
    if report.fresh_install:
        parts.append("installed the schema")
    if report.migrations_applied:
        parts.append("applied " + ", ".join(report.migrations_applied))
    if report.routines_applied:
        parts.append("updated functions, views and triggers")
    if report.sessions_added:
        parts.append(f"loaded {report.sessions_added} market sessions")
    click.echo("; ".join(parts) + f" ({report.seconds:.2f} s)")


@cli.group("watch", short_help="Add, remove and list watchlist tickers.")
def watch_group() -> None:
    """Add, remove and list watchlist tickers (adding one seeds 2 years of h1)."""


WATCHLIST_OPTION = click.option("--watchlist", default="default", show_default=True, help="Watchlist name.")


@watch_group.command("add", short_help="Add tickers to a watchlist (seeds 2 years of h1).")
@click.argument("tickers", nargs=-1, required=True)
@WATCHLIST_OPTION
@click.pass_context
def watch_add(ctx: click.Context, tickers: tuple[str, ...], watchlist: str) -> None:
    """Add tickers to a watchlist; the database seeds their backfill.

    Example: pgbars watch add AAPL MSFT --watchlist tech
    """
    results = _run(
        ctx,
        lambda: _with_connection(_database_url(), lambda c: db.add_to_watchlist(c, tickers, watchlist)),
    )
    for r in results:
        state = "added to" if r["added"] else "already in"
        click.echo(f"{r['ticker']} {state} watchlist {r['watchlist']}")


@watch_group.command("remove", short_help="Remove tickers from a watchlist (bars are kept).")
@click.argument("tickers", nargs=-1, required=True)
@WATCHLIST_OPTION
@click.pass_context
def watch_remove(ctx: click.Context, tickers: tuple[str, ...], watchlist: str) -> None:
    """Remove tickers from a watchlist (their bars are kept).

    Example: pgbars watch remove MSFT --watchlist tech
    """
    removed = _run(
        ctx,
        lambda: _with_connection(_database_url(), lambda c: db.remove_from_watchlist(c, tickers, watchlist)),
    )
    for ticker, was_there in removed.items():
        state = "removed from" if was_there else "was not in"
        click.echo(f"{ticker} {state} watchlist {watchlist}")


@watch_group.command("list", short_help="List watchlist tickers.")
@click.option("--watchlist", default=None, help="Only this watchlist.")
@click.pass_context
def watch_list(ctx: click.Context, watchlist: str | None) -> None:
    """List watchlist tickers.

    Example: pgbars watch list --watchlist tech
    """
    rows = _run(
        ctx,
        lambda: _with_connection(_database_url(), lambda c: db.list_watchlists(c, watchlist)),
    )
    click.echo(_format_table(rows, ("watchlist", "ticker", "added_at")))


class _Date(click.ParamType[dt.date]):
    """A calendar date, YYYY-MM-DD."""

    name = "date"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a date like 2024-01-31", param, ctx)


DATE = _Date()


@cli.command("request", short_help="Backfill tickers at any timeframe and window.")
@click.argument("tickers", nargs=-1, required=True)
@click.option(
    "--timeframe",
    "timeframes",
    multiple=True,
    default=("h1",),
    show_default=True,
    help="Timeframe to backfill (m1 m5 m15 m30 h1 h4 d1 w1); repeat for several.",
)
@click.option(
    "--years",
    type=click.IntRange(1, 50),
    default=None,
    help="Years back from the last completed session  [default: 2]",
)
@click.option("--start", type=DATE, help="First session date.")
@click.option("--end", type=DATE, help="Last session date (default: the last completed session).")
@click.pass_context
def request(
    ctx: click.Context,
    tickers: tuple[str, ...],
    timeframes: tuple[str, ...],
    years: int | None,
    start: dt.date | None,
    end: dt.date | None,
) -> None:
    """Request a backfill for tickers; asking again only adds what is missing.

    Example: pgbars request AAPL --timeframe h1 --timeframe d1 --years 5
    """
    if years is not None and start is not None:
        raise click.UsageError("give --years or --start, not both")
    results = _run(
        ctx,
        lambda: _with_connection(
            _database_url(),
            lambda c: db.request_backfill(c, tickers, timeframes, start, end, 2 if years is None else years),
        ),
    )
    for r in results:
        for job in r["jobs"]:
            click.echo(
                f"{r['ticker']} {job['timeframe']}: {job['chunks_added']} new chunks"
                f" ({job['sessions_added']} sessions), {job['chunks_total']} in all,"
                f" window {r['window_start']} .. {r['window_end']}"
            )
        for derived in r.get("derived") or []:
            click.echo(
                f"{r['ticker']} {derived['timeframe']}: derived from {derived['source_timeframe']}"
                f" in SQL, no requests of its own ({derived['bars_derived']} bars derived so far)"
            )


STATUS_COLUMNS = ("symbol", "timeframe", "status", "progress", "chunks", "failed", "bars", "eta")
BAR_CELLS = 10


def _progress_bar(percent: float) -> str:
    return progress_bar(percent, BAR_CELLS)


def _duration_text(seconds: float) -> str:
    """`now` (under a minute), `~3 min`, `~2 h 10 min`, `~1 d 4 h`."""
    if seconds < 60:
        return "now"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"~{minutes} min"
    if minutes < 24 * 60:
        hours, minutes = divmod(minutes, 60)
        return f"~{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(round(seconds / 3600), 24)
    return f"~{days} d" + (f" {hours} h" if hours else "")


def _eta_text(row: dict[str, Any]) -> str:
    if not row["remaining_requests"]:
        return "—"  # done, or only failed chunks left: they need a person, not time
    if row["eta_seconds"] is None:
        return f"— ({row['provider']} disabled)"
    text = _duration_text(row["eta_seconds"])
    if row["paused_until"] is not None:
        text += f" (paused until {row['paused_until'].astimezone():%H:%M})"
    return text


def _status_cells(row: dict[str, Any]) -> dict[str, Any]:
    """A row of backfill_progress_with_eta as the cells of the status table."""
    return {
        "symbol": row["symbol"],
        "timeframe": (
            f"{row['timeframe']} (from {row['derived_from']})"
            if row.get("derived_from")
            else row["timeframe"]
        ),
        "status": row["status"],
        # progress is rounded to 0.1: 99.96 % must not show a full bar while work is left
        "progress": _progress_bar(
            min(float(row["progress"]), 99.9) if row["status"] in ("pending", "running") else row["progress"]
        ),
        "chunks": f"{row['done']}/{row['total']}",
        "failed": row["failed"],
        "bars": f"{row['bars']:,}",
        "eta": _eta_text(row),
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _status_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {key: _json_value(value) for key, value in row.items()}
    if row["eta_seconds"] is not None:
        out["eta_seconds"] = round(row["eta_seconds"])
    return out


@cli.command("status", short_help="Show backfill progress, bars and ETA per job.")
@click.argument("ticker", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per job, for scripts.")
@click.pass_context
def status(ctx: click.Context, ticker: str | None, as_json: bool) -> None:
    """Show each backfill job (ticker and timeframe): a progress bar of its
    sessions, chunks done of all, failed chunks, bars stored, and its ETA.

    The ETA counts the job's remaining requests plus those of other jobs
    served before its last one (claims go round-robin across jobs), at each
    provider's rate limit, after any pause (pgbars.backfill_eta). "—" means
    nothing is left to fetch; failed chunks need a person (see the failed
    column). An unknown ticker is an error (exit 1).

    Example: pgbars status AAPL --json
    """

    async def fetch(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
        rows = await db.backfill_progress_with_eta(conn, ticker)
        if ticker is not None and not rows:
            name = ticker.strip().upper()
            raise PgbarsError(f"no backfill for {name}: request one with `pgbars request {name}`")
        return rows

    rows = _run(ctx, lambda: _with_connection(_database_url(), fetch))
    if as_json:
        click.echo(json.dumps([_status_json(r) for r in rows], indent=2))
    elif not rows:
        click.echo("no backfill jobs yet: add a ticker with `pgbars watch add AAPL`")
    else:
        cells = [_status_cells(r) for r in rows]
        click.echo(_format_table(cells, STATUS_COLUMNS, right=("chunks", "failed", "bars")))


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _log_to_stderr(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("pgbars")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False


@cli.command("work", short_help="Fetch and store due chunks within a time budget.")
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=1),
    default=240,
    show_default=True,
    help="Time budget: no call starts after it (240 s keeps a 5-minute cron from overlapping).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Chunks in flight at once.",
)
@click.option("--ticker", "tickers", multiple=True, help="Only this ticker's chunks; repeat for several.")
@click.option(
    "--lease-seconds",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="How long a claimed chunk stays this worker's; a crashed worker's chunks return after it.",
)
@click.option(
    "--http-timeout",
    type=click.FloatRange(min=0.1),
    default=30,
    show_default=True,
    help="Seconds per request.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 3 when a chunk ended failed or a provider refused its credentials in this run.",
)
@click.option(
    "--summary",
    "summary_file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Append a Markdown summary of the run to this file (e.g. $GITHUB_STEP_SUMMARY).",
)
@click.pass_context
def work_command(
    ctx: click.Context,
    max_seconds: float,
    concurrency: int,
    tickers: tuple[str, ...],
    lease_seconds: float,
    http_timeout: float,
    strict: bool,
    summary_file: str | None,
) -> None:
    """Fetch and store due backfill chunks until the queue or the time budget is spent.

    Uses every provider it has credentials for (Yahoo needs none) under the
    rate limits in pgbars.providers, shared with every other worker.

    Exit codes: 0 when it ran, whatever the chunks' outcomes (failed chunks are
    data, shown in status); 1 when it cannot run (database unreachable, schema
    missing, no usable provider); 2 on a usage error; 3 with --strict when a
    chunk ended failed or a provider refused its credentials in this run.

    Example: pgbars work --max-seconds 240 --summary "$GITHUB_STEP_SUMMARY"
    """
    _log_to_stderr(_debug(ctx))
    config = work.WorkConfig(
        max_seconds=max_seconds,
        concurrency=concurrency,
        tickers=tuple(t for arg in tickers for t in arg.replace(",", " ").split()),
        lease_seconds=lease_seconds,
    )

    async def run_work() -> work.WorkSummary:
        dsn = _database_url()
        if not use_live_display():
            return await work.run(dsn, os.environ, config, http_timeout=http_timeout)
        async with LiveProgress(dsn, config.tickers or None):
            return await work.run(dsn, os.environ, config, http_timeout=http_timeout)

    summary = _run(ctx, run_work)
    if summary_file:
        from worker.report import summary_markdown

        with open(summary_file, "a", encoding="utf-8") as out:
            out.write(summary_markdown(summary, strict=strict))
    if strict and summary.strict_failures:
        click.echo("pgbars: --strict: " + "; ".join(summary.strict_failures), err=True)
        sys.exit(STRICT_EXIT)


COVERAGE_COLUMNS = (
    "symbol",
    "timeframe",
    "bars",
    "first_bar",
    "last_bar",
    "units_planned",
    "units_with_bars",
    "units_missing",
    "coverage",
)


def _dates_text(dates: Sequence[dt.date], shown: int = 5) -> str:
    """`2024-12-04, 2024-12-24`, or the first `shown` and `and 7 more`."""
    text = ", ".join(d.isoformat() for d in dates[:shown])
    return text + (f" and {len(dates) - shown} more" if len(dates) > shown else "")


def _repair_line(row: dict[str, Any]) -> str:
    sessions = row["sessions"]
    count = f"{len(sessions)} session{'' if len(sessions) == 1 else 's'}"
    chunk = f"chunk {row['first_session']} .. {row['last_session']}"
    what = {
        "requeued_empty": f"re-queued {chunk} for {count} answered without bars: {_dates_text(sessions)}",
        "requeued_failed": f"re-queued failed {chunk} ({count} missing) with fresh attempts",
        "confirmed_empty": f"{count} empty again after the re-fetch, now confirmed empty"
        f" (never fetched again): {_dates_text(sessions)}",
    }[row["action"]]
    return f"{row['symbol']} {row['timeframe']}: {what}"


@cli.command("repair", short_help="Re-queue sessions that came back empty, once.")
@click.argument("ticker", required=False)
@click.pass_context
def repair(ctx: click.Context, ticker: str | None) -> None:
    """Re-queue the gaps of TICKER (default: every ticker) once: chunks whose sessions
    the provider answered without bars, and failed chunks; a session still empty
    after that re-fetch is confirmed empty (a halt, a day before the listing) and
    never fetched again.

    Run `pgbars work` afterwards to fetch what was re-queued; repairing again
    before that re-queues nothing. See the gaps with pgbars.coverage. An invalid
    ticker, or one without a backfill, is an error (exit 1).

    Example: pgbars repair AAPL
    """
    rows = _run(ctx, lambda: _with_connection(_database_url(), lambda c: db.repair_gaps(c, ticker)))
    for row in rows:
        click.echo(_repair_line(row))
    requeued = sum(1 for r in rows if r["action"] != "confirmed_empty")
    if requeued:
        click.echo(
            f"re-queued {requeued} chunk{'' if requeued == 1 else 's'}: run `pgbars work` to fetch them"
        )
    elif not rows:
        click.echo("nothing to repair: no fetched session without bars, no failed chunk")
