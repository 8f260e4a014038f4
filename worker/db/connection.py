"""Connections: the planning clock in every session, one-line errors for the user."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .. import clock
from ..errors import PgbarsError


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


# A function, table or schema of pgbars that the database lacks: an older schema.
_SCHEMA_BEHIND = {"3F000", "42P01", "42883", "42703"}


def describe_error(exc: psycopg.Error) -> str:
    """One line for the user from a database error: its message and hint."""
    diag = exc.diag
    message = diag.message_primary or _first_line(exc)
    if exc.sqlstate in _SCHEMA_BEHIND and "pgbars" in message:
        return f"{message}: the pgbars schema is older than this code, run `pgbars db upgrade`"
    return f"{message} ({diag.message_hint})" if diag.message_hint else message
