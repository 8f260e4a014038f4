"""Fixtures shared by the SQL tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from tests.sql.helpers import chunks, seed, set_clock


@pytest.fixture
def one_chunk(conn: psycopg.Connection[Any]) -> int:
    """The id of the single h1 chunk planned for AAPL's December 2024."""
    set_clock(conn)
    seed(conn, "AAPL", ["h1"], start=dt.date(2024, 12, 2), end=dt.date(2024, 12, 31))
    (planned,) = chunks(conn, "AAPL")
    chunk_id = planned["id"]
    assert isinstance(chunk_id, int)
    return chunk_id
