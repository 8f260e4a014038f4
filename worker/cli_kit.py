"""The CLI's plumbing: one-line errors, --debug before or after a command, commands
listed in the order people use them, a date option type, a connection per command.

worker/main.py holds the commands themselves (and their help); this module holds
what they share.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click
import psycopg

from . import db
from .errors import PgbarsError
from .render import printable

T = TypeVar("T")


def database_url() -> str:
    dsn = os.environ.get("DATABASE_URL", "").strip()
    if not dsn:
        raise PgbarsError(
            "DATABASE_URL is not set: point it at your Postgres (libpq URI),"
            " or try `pgbars demo`, which needs none"
        )
    return dsn


def debug(ctx: click.Context) -> bool:
    """--debug was given, before the command or after it."""
    return bool(ctx.meta.get(DEBUG_KEY))


def run(ctx: click.Context, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn expected failures into one line and exit code 1.

    The line shows control characters as '?': a message may quote what was typed
    (a ticker, a timeframe), escapes and line breaks included."""
    try:
        return asyncio.run(work())
    except (PgbarsError, psycopg.Error) as exc:
        if debug(ctx):
            raise
        message = db.describe_error(exc) if isinstance(exc, psycopg.Error) else str(exc)
        click.echo(f"pgbars: error: {printable(message)}", err=True)
        sys.exit(1)


async def with_connection(
    dsn: str, action: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]], *, needs_schema: bool = True
) -> T:
    conn = await db.connect(dsn)
    try:
        if needs_schema:
            await db.require_schema(conn)
        return await action(conn)
    finally:
        await conn.close()


DEBUG_KEY = "pgbars.debug"
# `pgbars --help` lists the commands in the order a new user meets them.
COMMAND_ORDER = (
    "demo",
    "db",
    "watch",
    "add",
    "remove",
    "list",
    "request",
    "work",
    "serve",
    "status",
    "repair",
    "export",
)


def set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[DEBUG_KEY] = True  # meta is shared by the whole command chain
    return value


def debug_option() -> click.Option:
    return click.Option(
        ["--debug"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=set_debug,
        help="Show tracebacks instead of one-line errors.",
    )


def _printable_usage_error(exc: click.UsageError) -> click.UsageError:
    """Click quotes some arguments raw in its usage errors ("Got unexpected extra argument
    (...)"): the same error with their control characters shown as '?', like every other
    error. (Not the help that a group given no command shows, whose lines are meant.)"""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return exc
    message = exc.format_message()
    shown = printable(message)
    return exc if shown == message else click.UsageError(shown, ctx=exc.ctx)


class _PgbarsParsing:
    """What every pgbars command and group shares: --debug at its level, usage errors
    without raw control characters."""

    params: list[click.Parameter]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(debug_option())

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc,no-any-return]
        except click.UsageError as exc:
            raise _printable_usage_error(exc) from None


class Command(_PgbarsParsing, click.Command):
    """A command that takes --debug after its name too (`pgbars work --debug`)."""


class Group(_PgbarsParsing, click.Group):
    """Commands listed in the order people use them, not alphabetically; --debug at every level."""

    command_class = Command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _printable_usage_error(exc) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        order = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(self.commands, key=lambda name: order.get(name, len(order)))


Group.group_class = Group


class Date(click.ParamType[dt.date]):
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


DATE = Date()
