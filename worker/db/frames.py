"""The reading API's statements (worker/reading.py): tickers checked, bars as binary column arrays.

Blocking and asyncio forms of each, since `read_bars` has both. The bars come
from `pgbars.get_bars` (its rule, its adjustment), every ticker of a call in one
statement. Each column travels as one array in its binary form
(`array_send(array_agg(...))`, one bytea per column), which the caller turns into
a numpy column without a Python object per value: every element has a fixed
width (a NULL vwap is sent as NaN, a NULL trade count as -1, the provider as its
code in PROVIDERS).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg

from ..errors import PgbarsError
from .connection import _first_line, scrub_password, session_kwargs

PROVIDERS = ("polygon", "yahoo", "tradier")  # the provider column's codes: 1, 2, 3 (0: another)
# The provider's name as its code: a CASE costs the server less per row than array_position.
_PROVIDER_CODE = (
    "(CASE g.provider "
    + " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(PROVIDERS, start=1))
    + " ELSE 0 END)::int2"
)
# (name, expression over get_bars' row g and the ticker's position t.n, numpy type of an element)
FIELDS = (
    ("n", "t.n::int4", ">i4"),
    ("ts", "g.ts", ">i8"),
    ("open", "g.open", ">f8"),
    ("high", "g.high", ">f8"),
    ("low", "g.low", ">f8"),
    ("close", "g.close", ">f8"),
    ("volume", "g.volume", ">i8"),
    ("vwap", "coalesce(g.vwap, 'NaN'::float8)", ">f8"),
    ("trade_count", "coalesce(g.trade_count, -1)", ">i8"),
    ("provider", _PROVIDER_CODE, ">i2"),
    ("is_provisional", "g.is_provisional", "u1"),
)
# Composed from FIELDS' expressions only; the values are bound parameters, so that psycopg
# prepares the statement on a connection that reads the same columns again (get_bars' plan
# does not depend on the values: docs/reading.md#how-it-reads).
_FROM = """
    FROM unnest(%s::text[]) WITH ORDINALITY AS t (ticker, n)
    CROSS JOIN LATERAL pgbars.get_bars(t.ticker, %s, %s::timestamptz, %s::timestamptz, %s) AS g"""
_EXPRESSIONS = {name: expression for name, expression, _ in FIELDS}
# The tickers as pgbars writes them, in order, and those it does not know.
_KNOWN = (
    "SELECT ARRAY(SELECT pgbars.normalize_ticker(u.t)::text"
    " FROM unnest(%s::text[]) WITH ORDINALITY AS u (t, n) ORDER BY u.n), pgbars.unknown_tickers(%s)"
)

Bound = dt.datetime | str  # an aware datetime, or '-infinity' / 'infinity'


def connect_blocking(dsn: str) -> psycopg.Connection[Any]:
    """A blocking autocommit connection (as connect's): PgbarsError, never the password, on failure."""
    try:
        return psycopg.connect(dsn, autocommit=True, prepare_threshold=None, **session_kwargs(dsn))
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise PgbarsError(
            f"cannot connect to the database: {scrub_password(_first_line(exc), dsn)}"
        ) from None


def known_tickers(conn: psycopg.Connection[Any], tickers: Sequence[str]) -> list[str]:
    """The tickers normalised, in order; PgbarsError naming every one pgbars has no symbol for."""
    try:
        row = conn.execute(_KNOWN, (list(tickers), list(tickers))).fetchone()
    except psycopg.Error as exc:
        raise _error(exc) from None
    return _normalised(row)


async def known_tickers_async(conn: psycopg.AsyncConnection[Any], tickers: Sequence[str]) -> list[str]:
    try:
        row = await (await conn.execute(_KNOWN, (list(tickers), list(tickers)))).fetchone()
    except psycopg.Error as exc:
        raise _error(exc) from None
    return _normalised(row)


def bar_arrays(
    conn: psycopg.Connection[Any],
    tickers: Sequence[str],
    fields: Sequence[str],
    timeframe: str,
    start: Bound,
    end: Bound,
    adjust: str,
) -> tuple[bytes | None, ...]:
    """get_bars' rows of every ticker (known, normalised) as one binary array per field (names of
    FIELDS, in the order given; the server aggregates only these); None: no rows."""
    try:
        row = conn.execute(
            _statement(fields), (list(tickers), timeframe, start, end, adjust), binary=True
        ).fetchone()
    except psycopg.Error as exc:
        raise _error(exc) from None
    assert row is not None
    return tuple(row)


async def bar_arrays_async(
    conn: psycopg.AsyncConnection[Any],
    tickers: Sequence[str],
    fields: Sequence[str],
    timeframe: str,
    start: Bound,
    end: Bound,
    adjust: str,
) -> tuple[bytes | None, ...]:
    try:
        cur = await conn.execute(
            _statement(fields), (list(tickers), timeframe, start, end, adjust), binary=True
        )
        row = await cur.fetchone()
    except psycopg.Error as exc:
        raise _error(exc) from None
    assert row is not None
    return tuple(row)


def _statement(fields: Sequence[str]) -> str:
    return "SELECT " + ", ".join(f"array_send(array_agg({_EXPRESSIONS[name]}))" for name in fields) + _FROM


def _normalised(row: Any) -> list[str]:
    assert row is not None
    unknown = list(row[1] or [])
    if unknown:
        raise PgbarsError(
            f"unknown ticker{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}:"
            " pgbars has no symbol for it (request it with `pgbars request`)"
        )
    return list(row[0])


def _error(exc: psycopg.Error) -> PgbarsError:
    """get_bars' own message (22023 names the bad input); never the statement or the DSN."""
    return PgbarsError(exc.diag.message_primary or type(exc).__name__)
