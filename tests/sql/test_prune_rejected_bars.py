"""pgbars.prune_rejected_bars: chunkless quarantine rows older than p_keep go; a chunk's stay."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.helpers import as_role, scalar
from tests.sql.test_store_chunk_bars import REJECTS, claim_one, store


def reject(conn: psycopg.Connection[Any], age: str, chunk_id: int | None = None) -> int:
    """A quarantined row rejected `age` ago (a live refresh's when chunk_id is None)."""
    row_id = scalar(
        conn,
        "INSERT INTO pgbars.rejected_bars"
        " (chunk_id, symbol_id, timeframe, provider, ts, raw, reason, rejected_at)"
        " SELECT %s, id, 'm15', 'tradier', NULL, '{}'::jsonb, 'high < low', now() - %s::interval"
        " FROM pgbars.symbols WHERE ticker = 'AAPL' RETURNING id",
        (chunk_id, age),
    )
    assert isinstance(row_id, int)
    return row_id


def remaining(conn: psycopg.Connection[Any]) -> set[int]:
    return {r[0] for r in conn.execute("SELECT id FROM pgbars.rejected_bars").fetchall()}


def test_old_chunkless_rows_go_and_a_chunks_rows_stay(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    lease = claim_one(conn)
    store(conn, one_chunk, lease["lease_id"], rejects=REJECTS)
    chunk_rows = remaining(conn)
    conn.execute("UPDATE pgbars.rejected_bars SET rejected_at = now() - interval '400 days'")
    old, recent = reject(conn, "31 days"), reject(conn, "29 days")

    assert scalar(conn, "SELECT pgbars.prune_rejected_bars()") == 1
    assert remaining(conn) == chunk_rows | {recent}
    assert old not in remaining(conn)
    with as_role(conn, "pgbars_worker"):
        assert scalar(conn, "SELECT pgbars.prune_rejected_bars('1 day')") == 1
    assert remaining(conn) == chunk_rows


@pytest.mark.parametrize("keep", ["23 hours", None])
def test_less_than_a_day_is_refused(conn: psycopg.Connection[Any], one_chunk: int, keep: str | None) -> None:
    reject(conn, "2 hours")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at least 1 day"):
        conn.execute("SELECT pgbars.prune_rejected_bars(%s::interval)", (keep,))
    assert len(remaining(conn)) == 1
