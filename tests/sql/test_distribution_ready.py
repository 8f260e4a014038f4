"""What docs/scale.md says about running pgbars on Citus holds for the schema as it is.

No Citus here: these check, in the catalog, the rules Citus sets for distributing
ohlc_bars_v2 by symbol_id next to reference tables, and that what docs/scale.md lists
as the changes Citus needs is still the whole list.
"""

from __future__ import annotations

from typing import Any

import psycopg

# distributed by symbol_id in docs/scale.md, and the tables that would be reference tables
DISTRIBUTED = "pgbars.ohlc_bars_v2"
REFERENCE = ("pgbars.symbols", "pgbars.providers", "pgbars.timeframes", "pgbars.market_sessions")


def test_every_unique_index_of_the_bars_includes_symbol_id_and_ts(conn: psycopg.Connection[Any]) -> None:
    """Citus: a unique constraint of a distributed table must include its distribution column;
    PostgreSQL: one of a partitioned table, its partition key. On the table and every partition."""
    rows = conn.execute(
        "SELECT i.indexrelid::regclass::text, array_agg(a.attname::text)"
        " FROM pg_index AS i"
        " INNER JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indisunique AND (i.indrelid = %s::regclass"
        "   OR i.indrelid IN (SELECT relid FROM pg_partition_tree(%s::regclass)))"
        " GROUP BY i.indexrelid",
        (DISTRIBUTED, DISTRIBUTED),
    ).fetchall()
    assert len(rows) > 25  # the table's and every partition's primary key
    for index, columns in rows:
        assert {"symbol_id", "ts"} <= set(columns), (index, columns)


def test_no_foreign_key_points_at_the_bars(conn: psycopg.Connection[Any]) -> None:
    """Citus refuses a reference or local table that refers to a distributed one."""
    referring = conn.execute(
        "SELECT conname FROM pg_constraint WHERE contype = 'f'"
        " AND confrelid IN (SELECT relid FROM pg_partition_tree(%s::regclass))",
        (DISTRIBUTED,),
    ).fetchall()
    assert referring == []


def test_reference_tables_refer_only_to_each_other(conn: psycopg.Connection[Any]) -> None:
    """Citus: a reference table's foreign keys may point only at reference tables."""
    rows = conn.execute(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
        " WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])",
        (list(REFERENCE),),
    ).fetchall()
    assert all(target in REFERENCE for _, target in rows), rows


def test_the_bars_triggers_are_the_two_that_docs_scale_replaces(conn: psycopg.Connection[Any]) -> None:
    """Citus does not run statement-level triggers on a distributed table: docs/scale.md replaces
    these two (the per-statement reference checks) by foreign keys to reference tables. A new
    trigger on the bars must be added to that list."""
    rows = conn.execute(
        "SELECT tgname::text, (tgtype & 1) = 1 AS per_row FROM pg_trigger"
        " WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY tgname",
        (DISTRIBUTED,),
    ).fetchall()
    assert rows == [
        ("ohlc_bars_v2_check_references_insert", False),
        ("ohlc_bars_v2_check_references_update", False),
    ]
