"""Connections: the planning clock in every session, one-line errors for the user."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .. import clock
from ..errors import DatabaseUnavailable, PgbarsError


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


async def connect(dsn: str, *, application_name: str | None = None) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection that prepares no statement on the server (a transaction-mode
    pooler may be in between); raises PgbarsError with a one-line reason, never the password."""
    params: dict[str, Any] = session_kwargs(dsn)
    if application_name is not None:
        params["application_name"] = application_name
    try:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=None, **params)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to the database: {scrub_password(_first_line(exc), dsn)}"
        ) from None
    except psycopg.ProgrammingError as exc:
        # libpq's complaint about a malformed DSN quotes the part it could not read,
        # which may be the password or a piece of it.
        raise PgbarsError(f"the database URL is malformed: {scrub_password(_first_line(exc), dsn)}") from None


_PASSWORD_IN_URI = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@?#]*?:(?P<password>[^/?#]*)@", re.IGNORECASE)
_PASSWORD_IN_PAIRS = re.compile(r"(?:^|\s)password\s*=\s*(?:'(?P<quoted>(?:[^'\\]|\\.)*)'|(?P<bare>\S+))")
_PASSWORD_IN_QUERY = re.compile(r"[?&]password=(?P<password>[^&#]*)", re.IGNORECASE)
_SHORTEST_PIECE = 3


def scrub_password(text: str, dsn: str) -> str:
    """`text` with every piece (3 characters or more) of the DSN's password masked, encoded or not."""
    secrets: list[str] = []
    uri = _PASSWORD_IN_URI.match(dsn.strip())
    if uri and uri["password"]:
        secrets += [uri["password"], unquote(uri["password"])]
    for query in _PASSWORD_IN_QUERY.finditer(dsn):
        secrets += [query["password"], unquote(query["password"])]
    for pair in _PASSWORD_IN_PAIRS.finditer(dsn):
        value = pair["quoted"] if pair["quoted"] is not None else pair["bare"]
        if value:
            secrets.append(value)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        pieces = {
            secret[i:j] for i in range(len(secret)) for j in range(i + _SHORTEST_PIECE, len(secret) + 1)
        }
        for piece in sorted(pieces, key=len, reverse=True):
            text = text.replace(piece, "***")
    return text


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
