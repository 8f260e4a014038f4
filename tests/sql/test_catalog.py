"""House rules every pgbars function follows, checked in the catalog."""

from typing import Any

import psycopg


def functions(conn: psycopg.Connection[Any]) -> list[tuple[str, str, Any, Any]]:
    return conn.execute(
        "SELECT p.oid::regprocedure::text, p.proname, obj_description(p.oid, 'pg_proc'), p.proconfig"
        " FROM pg_proc p WHERE p.pronamespace = 'pgbars'::regnamespace"
    ).fetchall()


def test_every_function_has_a_comment(conn: psycopg.Connection[Any]) -> None:
    missing = [sig for sig, _, comment, _ in functions(conn) if not comment]
    assert missing == []
    assert len(functions(conn)) >= 25


# Plain SQL functions that PostgreSQL inlines into the calling query, which it does
# only without SET (and without SECURITY DEFINER): they run with the caller's rights
# and search_path, and schema-qualify every name (docs/reading.md).
INLINED = {"pgbars.get_bars(text,text,timestamp with time zone,timestamp with time zone,text)"}


def test_every_function_pins_its_search_path(conn: psycopg.Connection[Any]) -> None:
    unpinned = [
        sig
        for sig, _, _, config in functions(conn)
        if not any(c.startswith("search_path=") for c in config or [])
    ]
    assert sorted(unpinned) == sorted(INLINED)


def test_inlined_functions_are_plain_sql_without_privileges(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, l.lanname, p.prosecdef, p.proconfig FROM pg_proc p"
        " INNER JOIN pg_language l ON p.prolang = l.oid"
        " WHERE p.pronamespace = 'pgbars'::regnamespace AND p.oid::regprocedure::text = ANY(%s)",
        (list(INLINED),),
    ).fetchall()
    assert sorted(rows) == sorted((sig, "sql", False, None) for sig in INLINED)


def test_security_definer_functions_keep_pg_temp_last(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p"
        " WHERE p.pronamespace = 'pgbars'::regnamespace AND p.prosecdef"
    ).fetchall()
    assert rows
    for sig, config in rows:
        path = next(c for c in config if c.startswith("search_path="))
        assert path.endswith("pg_temp"), sig


def test_every_view_has_a_comment(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'pgbars'::regnamespace"
        " AND c.relkind = 'v' AND obj_description(c.oid, 'pg_class') IS NULL"
    ).fetchall()
    assert rows == []


def test_the_python_grid_knows_the_timeframes_the_schema_defines(conn: psycopg.Connection[Any]) -> None:
    """The providers' grid (worker/providers/grid.py) speaks of the timeframes table's bars:
    the same names, in the same order, the same intraday bar lengths."""
    from worker.providers.grid import INTRADAY_MINUTES, TIMEFRAMES

    rows = conn.execute(
        "SELECT name, is_intraday, extract(EPOCH FROM bar_length)::integer / 60 FROM pgbars.timeframes"
        " ORDER BY sort_order"
    ).fetchall()
    assert tuple(name for name, _, _ in rows) == TIMEFRAMES
    assert {name: minutes for name, intraday, minutes in rows if intraday} == INTRADAY_MINUTES
