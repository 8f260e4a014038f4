from typing import Any

import psycopg
import pytest

from tests.sql.helpers import scalar


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("AAPL", "AAPL"),
        (" aapl ", "AAPL"),
        ("brk.b", "BRK.B"),
        ("BF-B", "BF-B"),
        ("\tspy\n", "SPY"),
    ],
)
def test_valid_tickers_are_normalised(conn: psycopg.Connection[Any], given: str, stored: str) -> None:
    assert scalar(conn, "SELECT pgbars.normalize_ticker(%s)", (given,)) == stored


@pytest.mark.parametrize(
    "given",
    ["'; DROP TABLE pgbars.symbols; --", "A" * 40, "", "   ", "1ABC", "AA PL", "BRK.", "ÄPFEL"],
)
def test_invalid_tickers_raise_a_clear_error(conn: psycopg.Connection[Any], given: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="ticker"):
        conn.execute("SELECT pgbars.normalize_ticker(%s)", (given,))


def test_domain_rejects_lower_case_and_padding(conn: psycopg.Connection[Any]) -> None:
    for bad in ("aapl", "AAPL ", "'; DROP"):
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO pgbars.symbols (ticker) VALUES (%s)", (bad,))
    assert scalar(conn, "SELECT count(*) FROM pgbars.symbols") == 0
