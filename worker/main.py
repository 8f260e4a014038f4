"""The `pgbars` command line."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import psycopg

from . import cli_kit, db, logs, render, work
from .errors import PgbarsError
from .live import LiveProgress, use_live_display

# `pgbars work --strict`: the run ran, and a chunk failed or a credential was refused.
STRICT_EXIT = 3


@click.group(cls=cli_kit.Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pgbars-pipeline", prog_name="pgbars", message="%(prog)s %(version)s")
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
    help="With a DATABASE_URL in use: run in a database `<name>_demo` beside it.",
)
@click.option("--remove", is_flag=True, help="Delete everything an earlier demo wrote, then stop.")
@click.pass_context
def demo(ctx: click.Context, tickers: tuple[str, ...], yes: bool, remove: bool) -> None:
    """Run the whole pipeline offline, in under a minute: an embedded Postgres (no
    DATABASE_URL needed), local provider servers serving synthetic bars, ten
    watchlist tickers seeded by the trigger and fetched by the real worker under
    a demo rate limit of 5 calls per second, with live progress.

    The demo writes only to a database of its own, marked as the demo's (where
    `pgbars work` then refuses to run): the embedded one, or DATABASE_URL's if
    it holds no pgbars schema or an earlier demo. A database in use makes it
    refuse, unless --yes, which runs it in a database `<name>_demo` beside it,
    leaving the one in use untouched. `pgbars demo --remove` deletes it all.
    Running it again is quick: the bars are there already.

    Example: pgbars demo
    """
    from . import demo as demo_module

    logs.to_stderr(cli_kit.debug(ctx))
    dsn = os.environ.get("DATABASE_URL", "").strip()
    server = None
    if dsn:
        click.echo("using DATABASE_URL's server: the demo writes only to a database of its own")
    else:
        from .embedded import EmbeddedPostgres, default_data_dir

        data_dir = default_data_dir()
        click.echo(f"embedded Postgres in {data_dir} (kept between runs)")
        server = EmbeddedPostgres(data_dir)
        dsn = server.dsn()
    try:
        if remove:
            removed = cli_kit.run(ctx, lambda: demo_module.remove_demo(dsn))
            click.echo(
                f"removed the demo: {removed.symbols} symbols, {removed.bars:,} bars,"
                f" {removed.chunks} chunks, the demo watchlist and the demo providers"
            )
            return
        result = cli_kit.run(
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
    click.echo(render.demo_report(result))


@cli.group("db", short_help="Install or upgrade the pgbars schema.")
def db_group() -> None:
    """Manage the pgbars schema."""


@db_group.command("upgrade", short_help="Install or upgrade the schema (idempotent).")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Install or upgrade the schema (idempotent; safe to run twice at once).

    Example: DATABASE_URL=postgresql://... pgbars db upgrade
    """
    report = cli_kit.run(
        ctx, lambda: cli_kit.with_connection(cli_kit.database_url(), db.upgrade, needs_schema=False)
    )
    click.echo(render.upgrade_text(report))


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
    results = cli_kit.run(
        ctx,
        lambda: cli_kit.with_connection(
            cli_kit.database_url(), lambda c: db.add_to_watchlist(c, tickers, watchlist)
        ),
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
    removed = cli_kit.run(
        ctx,
        lambda: cli_kit.with_connection(
            cli_kit.database_url(), lambda c: db.remove_from_watchlist(c, tickers, watchlist)
        ),
    )
    for ticker, was_there in removed.items():
        state = "removed from" if was_there else "was not in"
        click.echo(f"{ticker} {state} watchlist {render.printable(watchlist)}")


@watch_group.command("list", short_help="List watchlist tickers.")
@click.option("--watchlist", default=None, help="Only this watchlist.")
@click.pass_context
def watch_list(ctx: click.Context, watchlist: str | None) -> None:
    """List watchlist tickers.

    Example: pgbars watch list --watchlist tech
    """
    rows = cli_kit.run(
        ctx,
        lambda: cli_kit.with_connection(cli_kit.database_url(), lambda c: db.list_watchlists(c, watchlist)),
    )
    click.echo(render.format_table(rows, ("watchlist", "ticker", "added_at")))


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
@click.option("--start", type=cli_kit.DATE, help="First session date.")
@click.option("--end", type=cli_kit.DATE, help="Last session date (default: the last completed session).")
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
    results = cli_kit.run(
        ctx,
        lambda: cli_kit.with_connection(
            cli_kit.database_url(),
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
    column). Below the table, what keeps adjusted prices from being
    trustworthy: corporate actions not fetched yet or failing, providers
    that disagree, dividends that cannot be applied. An unknown ticker is
    an error (exit 1).

    Example: pgbars status AAPL --json
    """

    async def fetch(conn: psycopg.AsyncConnection[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows = await db.backfill_progress_with_eta(conn, ticker)
        if ticker is not None and not rows:
            name = await db.normalize_ticker(conn, ticker)
            raise PgbarsError(f"no backfill for {name}: request one with `pgbars request {name}`")
        return rows, await db.price_basis_issues(conn, ticker)

    rows, issues = cli_kit.run(ctx, lambda: cli_kit.with_connection(cli_kit.database_url(), fetch))
    if as_json:
        click.echo(json.dumps([render.status_json(r, issues) for r in rows], indent=2))
    elif not rows:
        click.echo("no backfill jobs yet: add a ticker with `pgbars watch add AAPL`")
    else:
        cells = [render.status_cells(r) for r in rows]
        click.echo(render.format_table(cells, render.STATUS_COLUMNS, right=("chunks", "failed", "bars")))
        if issues:
            click.echo("\nprice basis (pgbars.price_basis_issues):")
            click.echo(render.format_table(issues, ("symbol", "issue", "detail")))


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
    help="Seconds to wait for each read of an answer; a whole request gets twice that, at least 60.",
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
    logs.to_stderr(cli_kit.debug(ctx))
    config = work.WorkConfig(
        max_seconds=max_seconds,
        concurrency=concurrency,
        tickers=tuple(t for arg in tickers for t in arg.replace(",", " ").split()),
        lease_seconds=lease_seconds,
    )

    async def run_work() -> work.WorkSummary:
        dsn = cli_kit.database_url()
        if not use_live_display():
            return await work.run(dsn, os.environ, config, http_timeout=http_timeout)
        async with LiveProgress(dsn, config.tickers or None):
            return await work.run(dsn, os.environ, config, http_timeout=http_timeout)

    summary = cli_kit.run(ctx, run_work)
    if summary_file:
        from .report import summary_markdown

        with open(summary_file, "a", encoding="utf-8") as out:
            out.write(summary_markdown(summary, strict=strict))
    if strict and summary.strict_failures:
        click.echo("pgbars: --strict: " + "; ".join(summary.strict_failures), err=True)
        sys.exit(STRICT_EXIT)


@cli.command("serve", short_help="Run as a service that reacts in seconds.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Chunks in flight at once in this replica.",
)
@click.option(
    "--lease-seconds",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="How long a claimed chunk stays this replica's; a killed replica's chunks return after it.",
)
@click.option(
    "--http-timeout",
    type=click.FloatRange(min=0.1),
    default=30,
    show_default=True,
    help="Seconds to wait for each read of an answer; a whole request gets twice that, at least 60.",
)
@click.pass_context
def serve_command(ctx: click.Context, concurrency: int, lease_seconds: float, http_timeout: float) -> None:
    """Run until SIGTERM or SIGINT: claim chunks the moment they are queued, refresh
    today's bars every live_settings.refresh_every while a session trades, and run
    the schedules (roll-forward, pruning) once across all replicas.

    Wakes on NOTIFY pgbars_wake (a watchlist add, `pgbars request`), not by polling;
    announces every committed store on NOTIFY pgbars_bars (docs/reading.md). Run as
    many replicas as you like: they share the queue and the rate limit through
    Postgres. A database restart is waited out (reconnecting, one log line each
    try); a stop signal gives back the fetches in flight and exits 0.

    Exit codes: 0 after a stop signal; 1 when it cannot run (schema missing or
    older than this code, no usable provider); 2 on a usage error.

    Example: pgbars serve --concurrency 4
    """
    from . import serve

    logs.to_stderr(cli_kit.debug(ctx))
    config = serve.ServeConfig(
        concurrency=concurrency, lease_seconds=lease_seconds, http_timeout=http_timeout
    )
    cli_kit.run(ctx, lambda: serve.run(cli_kit.database_url(), os.environ, config))


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
    rows = cli_kit.run(
        ctx, lambda: cli_kit.with_connection(cli_kit.database_url(), lambda c: db.repair_gaps(c, ticker))
    )
    for row in rows:
        click.echo(render.repair_line(row))
    requeued = sum(1 for r in rows if r["action"] != "confirmed_empty")
    if requeued:
        click.echo(
            f"re-queued {requeued} chunk{'' if requeued == 1 else 's'}: run `pgbars work` to fetch them"
        )
    elif not rows:
        click.echo("nothing to repair: no fetched session without bars, no failed chunk")


@cli.command("export", short_help="Write bars to Parquet or CSV files, one per ticker and timeframe.")
@click.argument("tickers", nargs=-1, required=True)
@click.option("--timeframe", default="h1", show_default=True, help="The bars' timeframe (m1 ... w1).")
@click.option("--start", type=cli_kit.DATE, help="First session date (default: the first bar).")
@click.option("--end", type=cli_kit.DATE, help="Last session date, included (default: the last bar).")
@click.option(
    "--adjust",
    type=click.Choice(["none", "splits", "all"]),
    default="splits",
    show_default=True,
    help="Prices as traded (none), split-adjusted, or adjusted for splits and cash dividends (all).",
)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), required=True, help="File format.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the files (created if missing).",
)
@click.pass_context
def export(
    ctx: click.Context,
    tickers: tuple[str, ...],
    timeframe: str,
    start: dt.date | None,
    end: dt.date | None,
    adjust: str,
    fmt: str,
    out: Path,
) -> None:
    """Write each TICKER's bars of one timeframe to OUT/<TICKER>_<timeframe>.<format>:
    get_bars' rows (the best provider per timestamp, adjusted as --adjust says),
    ts in UTC. A file is replaced atomically: readers see the old one or the new
    one, never half. Every ticker is checked before any file is written: an
    unknown one is an error (exit 1). Parquet and CSV need pyarrow
    (pip install 'pgbars-pipeline[arrow]').

    Example: pgbars export AAPL MSFT --timeframe d1 --format parquet --out bars/
    """
    from .export import export_bars
    from .reading import connect_blocking

    def write(dsn: str) -> list[Any]:
        with contextlib.ExitStack() as stack:
            conn = stack.enter_context(connect_blocking(dsn))
            advance: Callable[[str], None] = lambda _ticker: None  # noqa: E731
            if sys.stdout.isatty():
                bar = stack.enter_context(click.progressbar(length=len(tickers), label="exporting"))
                advance = lambda _ticker: bar.update(1)  # noqa: E731
            return export_bars(conn, tickers, timeframe, start, end, adjust, fmt, out, advance)  # type: ignore[arg-type]

    async def run() -> list[Any]:
        dsn = cli_kit.database_url()
        # the schema checked as every command does, then the blocking reads in a thread
        return await cli_kit.with_connection(dsn, lambda _conn: asyncio.to_thread(write, dsn))

    written = cli_kit.run(ctx, run)
    click.echo(
        render.format_table(
            [
                {"ticker": e.ticker, "timeframe": e.timeframe, "rows": f"{e.rows:,}", "file": str(e.path)}
                for e in written
            ],
            ["ticker", "timeframe", "rows", "file"],
            right=("rows",),
        )
    )
    total = sum(e.rows for e in written)
    click.echo(f"{total:,} bars in {len(written)} file{'' if len(written) == 1 else 's'} ({fmt}, {adjust})")
