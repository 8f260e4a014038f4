"""ohlc_bars_v2's references, checked once per statement by triggers (migration 0004).

What its three foreign keys guaranteed still holds: a bar's symbol, timeframe
and provider exist (23503 otherwise, from INSERT, COPY, MERGE, store_chunk_bars
and UPDATE alike); deleting a symbol deletes its bars; a timeframe or provider
that bars use cannot be deleted or renamed; TRUNCATE ... CASCADE empties the bars.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import scalar, seed, set_clock, stage
from tests.sql.test_store_chunk_bars import BARS, claim_one, store, symbol_id

INSERT = (
    "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
    " VALUES (%s, %s, %s, %s, 10, 11, 9, 10, 5)"
)
TS = dt.datetime(2024, 12, 30, 14, 0, tzinfo=dt.UTC)


def add_symbol(conn: psycopg.Connection[Any], ticker: str) -> uuid.UUID:
    found = scalar(conn, "INSERT INTO pgbars.symbols (ticker) VALUES (%s) RETURNING id", (ticker,))
    assert isinstance(found, uuid.UUID)
    return found


def bar_count(conn: psycopg.Connection[Any], symbol: uuid.UUID | None = None) -> int:
    return int(
        scalar(
            conn,
            "SELECT count(*) FROM pgbars.ohlc_bars_v2 WHERE %(s)s::uuid IS NULL OR symbol_id = %(s)s",
            {"s": symbol},
        )
    )


def refused(conn: psycopg.Connection[Any], statement: str, params: Any = None) -> psycopg.Error:
    """Runs `statement`, which must fail with foreign_key_violation; returns the error."""
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as raised:
        conn.execute(statement, params)
    return raised.value


def test_the_foreign_keys_are_gone_and_the_symbol_reference_is_declared(
    conn: psycopg.Connection[Any],
) -> None:
    rows = conn.execute(
        "SELECT conname, conenforced, confrelid::regclass::text, confdeltype FROM pg_constraint"
        " WHERE conrelid = 'pgbars.ohlc_bars_v2'::regclass AND contype = 'f'"
    ).fetchall()
    if conn.info.server_version >= 180000:
        # declared for catalog tools, not enforced: the triggers do the enforcing
        assert rows == [("ohlc_bars_v2_symbol_id_fkey", False, "pgbars.symbols", "c")]
    else:
        assert rows == []
    triggers = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'pgbars.ohlc_bars_v2'::regclass AND NOT tgisinternal"
        " ORDER BY 1"
    ).fetchall()
    assert triggers == [("ohlc_bars_v2_check_references_insert",), ("ohlc_bars_v2_check_references_update",)]


def test_insert_with_known_references_is_stored(conn: psycopg.Connection[Any]) -> None:
    symbol = add_symbol(conn, "AAPL")
    conn.execute(INSERT, (symbol, "h1", TS, "polygon"))
    assert bar_count(conn) == 1


@pytest.mark.parametrize(
    ("column", "table"),
    [("symbol_id", "symbols"), ("timeframe", "timeframes"), ("provider", "providers")],
)
def test_insert_with_an_unknown_reference_raises_23503_naming_it(
    conn: psycopg.Connection[Any], column: str, table: str
) -> None:
    symbol = add_symbol(conn, "AAPL")
    values = {"symbol_id": symbol, "timeframe": "h1", "provider": "polygon"}
    unknown: Any = {"symbol_id": uuid.uuid4(), "timeframe": "m2", "provider": "acme"}[column]
    values[column] = unknown
    error = refused(conn, INSERT, (values["symbol_id"], values["timeframe"], TS, values["provider"]))
    assert f'{column} {unknown} is not present in table "{table}"' in str(error)
    assert error.diag.table_name == "ohlc_bars_v2"
    assert error.diag.column_name == column
    assert bar_count(conn) == 0


def test_one_statement_may_write_bars_of_several_symbols_timeframes_and_providers(
    conn: psycopg.Connection[Any],
) -> None:
    aapl, msft = add_symbol(conn, "AAPL"), add_symbol(conn, "MSFT")
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " SELECT s, tf, %s, p, 10, 11, 9, 10, 5 FROM unnest(%s::uuid[]) AS s,"
        " unnest('{h1,d1}'::text[]) AS tf, unnest('{polygon,yahoo}'::text[]) AS p",
        (TS, [aapl, msft]),
    )
    assert bar_count(conn) == 8


def test_one_bad_row_among_many_fails_the_whole_statement(conn: psycopg.Connection[Any]) -> None:
    symbol = add_symbol(conn, "AAPL")
    missing = uuid.uuid4()
    refused(
        conn,
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
        " SELECT CASE WHEN g = 700 THEN %s ELSE %s END, 'm1', %s + make_interval(mins => g), 'polygon',"
        " 10, 11, 9, 10, 5 FROM generate_series(1, 1000) AS g",
        (missing, symbol, TS),
    )
    assert bar_count(conn) == 0


def test_copy_with_an_unknown_symbol_raises_23503(conn: psycopg.Connection[Any]) -> None:
    with (
        pytest.raises(psycopg.errors.ForeignKeyViolation),
        conn.cursor().copy(
            "COPY pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, open, high, low, close, volume)"
            " FROM STDIN"
        ) as copy,
    ):
        copy.write_row((uuid.uuid4(), "h1", TS, "polygon", 10, 11, 9, 10, 5))
    assert bar_count(conn) == 0


MERGE = """
MERGE INTO pgbars.ohlc_bars_v2 AS b
USING (VALUES (%(symbol)s::uuid, %(timeframe)s, %(ts)s::timestamptz, %(provider)s, 12.0::float8))
    AS s (symbol_id, timeframe, ts, provider, close)
ON b.symbol_id = s.symbol_id AND b.timeframe = s.timeframe AND b.ts = s.ts
    AND b.provider = s.provider AND NOT b.is_forecast
WHEN MATCHED THEN UPDATE SET close = s.close, high = 12
WHEN NOT MATCHED THEN INSERT (symbol_id, timeframe, ts, provider, open, high, low, close, volume)
    VALUES (s.symbol_id, s.timeframe, s.ts, s.provider, 10, 12, 9, s.close, 5)
"""


def test_merge_inserting_an_unknown_reference_raises_23503(conn: psycopg.Connection[Any]) -> None:
    symbol = add_symbol(conn, "AAPL")
    params = {"symbol": symbol, "timeframe": "h1", "ts": TS, "provider": "polygon"}
    conn.execute(MERGE, params)  # known: inserted
    conn.execute(MERGE, params)  # known: updated
    assert scalar(conn, "SELECT close FROM pgbars.ohlc_bars_v2") == 12.0
    for bad in ({"symbol": uuid.uuid4()}, {"timeframe": "m2"}, {"provider": "acme"}):
        refused(conn, MERGE, {**params, **bad})
    assert bar_count(conn) == 1


def test_merge_updating_to_an_unknown_reference_raises_23503(conn: psycopg.Connection[Any]) -> None:
    symbol = add_symbol(conn, "AAPL")
    conn.execute(INSERT, (symbol, "h1", TS, "polygon"))
    refused(
        conn,
        "MERGE INTO pgbars.ohlc_bars_v2 AS b USING (VALUES (1)) AS s (x) ON TRUE"
        " WHEN MATCHED THEN UPDATE SET provider = 'acme'",
    )
    assert scalar(conn, "SELECT provider FROM pgbars.ohlc_bars_v2") == "polygon"


@pytest.mark.parametrize(
    ("assignment", "params"),
    [
        ("symbol_id = %s", (uuid.uuid4(),)),
        ("timeframe = %s", ("m2",)),
        ("provider = %s", ("acme",)),
    ],
)
def test_update_to_an_unknown_reference_raises_23503(
    conn: psycopg.Connection[Any], assignment: str, params: tuple[Any, ...]
) -> None:
    symbol = add_symbol(conn, "AAPL")
    conn.execute(INSERT, (symbol, "h1", TS, "polygon"))
    refused(conn, f"UPDATE pgbars.ohlc_bars_v2 SET {assignment}", params)
    conn.execute("UPDATE pgbars.ohlc_bars_v2 SET provider = 'yahoo', timeframe = 'd1'")  # known keys
    conn.execute("UPDATE pgbars.ohlc_bars_v2 SET close = 10.5 WHERE FALSE")  # no rows: nothing to check
    assert bar_count(conn) == 1


def test_insert_on_conflict_update_is_checked_too(conn: psycopg.Connection[Any]) -> None:
    symbol = add_symbol(conn, "AAPL")
    conn.execute(INSERT, (symbol, "h1", TS, "polygon"))
    refused(
        conn,
        INSERT + " ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast)"
        " DO UPDATE SET provider = 'acme'",
        (symbol, "h1", TS, "polygon"),
    )


def test_store_chunk_bars_writes_through_the_checks(conn: psycopg.Connection[Any], one_chunk: int) -> None:
    """The chunk's MERGE fires the statement triggers (transition tables) and passes them."""
    row = claim_one(conn)
    assert store(conn, one_chunk, row["lease_id"], BARS) == (3, 3, 0)
    assert bar_count(conn, symbol_id(conn)) == 3


def test_store_chunk_bars_for_a_symbol_deleted_meanwhile_raises_23503(
    conn: psycopg.Connection[Any], connect: Any, one_chunk: int
) -> None:
    """A symbol deleted while its chunk is being stored: the store waits for the delete, then fails."""
    row = claim_one(conn)
    deleter = connect()
    deleter.autocommit = False
    deleter.execute("DELETE FROM pgbars.symbols WHERE ticker = 'AAPL'")  # not committed yet
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store(conn, one_chunk, row["lease_id"], BARS)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(0.5)
    assert writer.is_alive(), "the store waits for the symbol's delete"
    deleter.commit()
    writer.join(10)
    assert not writer.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], psycopg.errors.ForeignKeyViolation)
    assert bar_count(conn) == 0


def test_deleting_a_symbol_deletes_its_bars_only(conn: psycopg.Connection[Any]) -> None:
    aapl, msft = add_symbol(conn, "AAPL"), add_symbol(conn, "MSFT")
    for symbol in (aapl, msft):
        conn.execute(INSERT, (symbol, "h1", TS, "polygon"))
        conn.execute(INSERT, (symbol, "d1", TS, "yahoo"))
    conn.execute("DELETE FROM pgbars.symbols WHERE id = %s", (aapl,))
    assert (bar_count(conn, aapl), bar_count(conn, msft)) == (0, 2)


def test_deleting_a_symbol_waits_for_a_chunk_being_stored_and_takes_its_bars(
    conn: psycopg.Connection[Any], connect: Any, one_chunk: int
) -> None:
    row = claim_one(conn)
    writer = connect()
    writer.autocommit = False
    stage(writer, row["lease_id"], BARS)
    writer.execute("SELECT * FROM pgbars.store_chunk_bars(%s, %s)", (one_chunk, row["lease_id"]))
    # not committed: the symbol is held FOR KEY SHARE
    errors: list[BaseException] = []

    def delete() -> None:
        try:
            conn.execute("DELETE FROM pgbars.symbols WHERE ticker = 'AAPL'")
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    deleter = threading.Thread(target=delete)
    deleter.start()
    deadline = time.monotonic() + 10
    while not scalar(writer, "SELECT count(*) FROM pg_locks WHERE NOT granted"):
        assert time.monotonic() < deadline, "the delete never waited"
        time.sleep(0.02)
    writer.commit()
    deleter.join(10)
    assert not deleter.is_alive()
    assert errors == []
    assert bar_count(conn) == 0
    assert scalar(conn, "SELECT count(*) FROM pgbars.symbols") == 0


def test_truncating_symbols_truncates_the_bars(conn: psycopg.Connection[Any]) -> None:
    conn.execute(INSERT, (add_symbol(conn, "AAPL"), "h1", TS, "polygon"))
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        conn.execute("TRUNCATE pgbars.symbols")  # other tables refer to it: refused, as before
    assert bar_count(conn) == 1
    conn.execute("TRUNCATE pgbars.symbols CASCADE")
    assert bar_count(conn) == 0


def test_truncating_providers_cascades_to_the_bars(conn: psycopg.Connection[Any]) -> None:
    conn.execute(INSERT, (add_symbol(conn, "AAPL"), "h1", TS, "polygon"))
    conn.execute("TRUNCATE pgbars.providers CASCADE")
    assert bar_count(conn) == 0


@pytest.mark.parametrize(
    ("table", "new_key", "column"),
    [("providers", "acme", "provider"), ("timeframes", "m2", "timeframe")],
)
def test_a_provider_or_timeframe_that_bars_use_cannot_be_deleted_or_renamed(
    conn: psycopg.Connection[Any], table: str, new_key: str, column: str
) -> None:
    # a key only bars use (no routes, chunks or calls refer to it)
    if table == "providers":
        conn.execute(
            "INSERT INTO pgbars.providers (name, calls_per_window, window_length, request_capacity)"
            " VALUES ('acme', 1, '1 minute', 1)"
        )
        values = ("h1", "acme")
    else:
        conn.execute(
            "INSERT INTO pgbars.timeframes (name, bar_length, is_intraday, sort_order)"
            " VALUES ('m2', '2 minutes', TRUE, 99)"
        )
        values = ("m2", "polygon")
    symbol = add_symbol(conn, "AAPL")
    conn.execute(INSERT, (symbol, values[0], TS, values[1]))

    error = refused(conn, f"DELETE FROM pgbars.{table} WHERE name = %s", (new_key,))
    assert f'{column} {new_key} is still used by table "ohlc_bars_v2"' in str(error)
    refused(conn, f"UPDATE pgbars.{table} SET name = 'renamed' WHERE name = %s", (new_key,))
    conn.execute(f"UPDATE pgbars.{table} SET name = name WHERE name = %s", (new_key,))  # same key: fine

    conn.execute("DELETE FROM pgbars.ohlc_bars_v2")
    conn.execute(f"UPDATE pgbars.{table} SET name = 'renamed' WHERE name = %s", (new_key,))
    conn.execute(f"DELETE FROM pgbars.{table} WHERE name = 'renamed'")


def test_a_symbol_with_bars_keeps_its_id(conn: psycopg.Connection[Any]) -> None:
    symbol = add_symbol(conn, "AAPL")
    conn.execute(INSERT, (symbol, "h1", TS, "polygon"))
    refused(conn, "UPDATE pgbars.symbols SET id = gen_random_uuid() WHERE id = %s", (symbol,))
    conn.execute("UPDATE pgbars.symbols SET ticker = 'AAPL.X' WHERE id = %s", (symbol,))  # not the key
    assert bar_count(conn, symbol) == 1


def test_pausing_a_provider_does_not_wait_for_bar_writes(conn: psycopg.Connection[Any], connect: Any) -> None:
    """Bar writes hold the provider FOR KEY SHARE, which the worker's provider updates do not wait for."""
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    writer = connect()
    writer.autocommit = False
    writer.execute(INSERT, (symbol_id(conn), "h1", TS, "polygon"))  # not committed
    conn.execute("SET lock_timeout = '2s'")
    conn.execute("SELECT pgbars.pause_provider('polygon', now() + interval '1 minute')")
    conn.execute("SELECT * FROM pgbars.reserve_provider_call('polygon', 'w', NULL)")
    writer.rollback()


def test_the_reference_checks_hold_for_bars_the_owner_writes_for_the_worker(
    conn: psycopg.Connection[Any],
) -> None:
    # The worker role writes bars only through the SECURITY DEFINER store
    # functions (test_roles); a direct INSERT is refused before any check.
    symbol = add_symbol(conn, "AAPL")
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE pgbars_worker")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(INSERT, (symbol, "h1", TS, "polygon"))
    conn.execute(INSERT, (symbol, "h1", TS, "polygon"))
    refused(conn, INSERT, (uuid.uuid4(), "h1", TS, "polygon"))
