"""Polygon's reference API for corporate actions: `/v3/reference/splits` and `/v3/reference/dividends`.

- Rows come from `worker.emulator.actions`: only actions dated on or before
  the server's New York date, without the tickers the server withholds;
  dividend amounts are raw (as paid), split ratios as announced.
- Query: `ticker` (absent: every ticker), the date field (`execution_date` or
  `ex_dividend_date`) with `.gt/.gte/.lt/.lte`, `order` asc|desc (default
  desc, newest first, as Polygon's reference listings are; an assumption),
  `sort` the date field only, `limit` default 10, at most 1000 (or the
  server's lower `max_limit`).
- `next_url` is absolute, carries a cursor (the whole query and an offset)
  and no key. An unknown ticker is `"results": []` with status OK.
- Faults: `not_authorized`/`provider_error` as the aggregates answer them
  (in `polygon.py`); `null_results` gives `"results": null`, `empty` and
  `unknown_ticker` no rows, `invalid_actions` spoils rows (see
  `Fault.invalid_actions`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import operator
import uuid
from collections.abc import Callable, Collection
from typing import Literal
from urllib.parse import parse_qs, urlencode

from ..emulator import actions
from ..emulator.server import Reply

Endpoint = Literal["splits", "dividends"]
ENDPOINTS: dict[str, Endpoint] = {
    "/v3/reference/splits": "splits",
    "/v3/reference/dividends": "dividends",
}
DEFAULT_LIMIT = 10
MAX_LIMIT = 1_000
_DATE_FIELD: dict[Endpoint, str] = {"splits": "execution_date", "dividends": "ex_dividend_date"}
_COMPARISONS: dict[str, Callable[[dt.date, dt.date], bool]] = {
    "": operator.eq,
    ".gt": operator.gt,
    ".gte": operator.ge,
    ".lt": operator.lt,
    ".lte": operator.le,
}
Rows = list[dict[str, object]]


class _BadQuery(ValueError):
    pass


def answer(
    endpoint: Endpoint,
    query: dict[str, list[str]],
    *,
    today: dt.date,
    withheld: Collection[str],
    base_url: str,
    max_limit: int = MAX_LIMIT,
    fault_kind: str | None,
) -> Reply:
    """The reply to one reference request (its key already checked); `max_limit` below
    Polygon's 1000 forces pagination."""
    cursor = query.get("cursor", [None])[0]
    if cursor is not None:
        try:
            query = parse_qs(base64.urlsafe_b64decode(cursor.encode()).decode())
        except ValueError:
            return _error("Could not parse the cursor")
    try:
        rows, limit, offset = _rows(endpoint, query, today, withheld)
        limit = min(limit, max_limit)
    except _BadQuery as error:
        return _error(str(error))
    if fault_kind in ("empty", "unknown_ticker"):
        rows = []
    page = rows[offset : offset + limit]
    if fault_kind == "invalid_actions":
        page = _spoiled(endpoint, page)
    payload: dict[str, object] = {
        "results": None if fault_kind == "null_results" else page,
        "status": "OK",
        "request_id": uuid.uuid4().hex,
    }
    if offset + limit < len(rows):
        following = {k: v[0] for k, v in query.items() if k not in ("apiKey", "cursor", "offset")}
        following["offset"] = str(offset + limit)
        encoded = base64.urlsafe_b64encode(urlencode(following).encode()).decode()
        payload["next_url"] = f"{base_url}/v3/reference/{endpoint}?cursor={encoded}"
    return Reply.json(payload)


def _error(message: str) -> Reply:
    return Reply.json({"status": "ERROR", "request_id": uuid.uuid4().hex, "error": message}, 400)


def _rows(
    endpoint: Endpoint, query: dict[str, list[str]], today: dt.date, withheld: Collection[str]
) -> tuple[Rows, int, int]:
    """Every row the query selects, in its order; its limit and offset."""

    def param(name: str, default: str | None = None) -> str | None:
        values = query.get(name)
        return values[0] if values else default

    field = _DATE_FIELD[endpoint]
    try:
        limit = max(1, min(int(param("limit", str(DEFAULT_LIMIT)) or DEFAULT_LIMIT), MAX_LIMIT))
        offset = max(0, int(param("offset", "0") or 0))
        bounds = {op: dt.date.fromisoformat(text) for op in _COMPARISONS if (text := param(field + op))}
    except ValueError as error:
        raise _BadQuery(f"Could not parse the query parameters: {error}") from None
    order = param("order", "desc")
    if order not in ("asc", "desc"):
        raise _BadQuery(f"order must be asc or desc, not {order!r}")
    if param("sort", field) != field:
        raise _BadQuery(f"the emulator sorts by {field} only")

    ticker = param("ticker")
    known: tuple[actions.Split | actions.Dividend, ...] = (
        actions.SPLITS if endpoint == "splits" else actions.DIVIDENDS
    )
    selected = [
        a
        for a in known
        if a.ex_date <= today
        and (ticker is None or a.ticker == ticker)
        and a.ticker not in withheld
        and all(_COMPARISONS[op](a.ex_date, bound) for op, bound in bounds.items())
    ]
    selected.sort(key=lambda a: (a.ex_date, a.ticker), reverse=order == "desc")
    return [_row(a) for a in selected], limit, offset


def _id(*parts: object) -> str:
    return "E" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _row(action: actions.Split | actions.Dividend) -> dict[str, object]:
    if isinstance(action, actions.Split):
        return {
            "execution_date": action.ex_date.isoformat(),
            "id": _id("split", action.ticker, action.ex_date),
            "split_from": action.split_from,
            "split_to": action.split_to,
            "ticker": action.ticker,
        }
    return {
        "cash_amount": action.cash_amount,
        "currency": action.currency,
        "declaration_date": action.declaration_date.isoformat(),
        "dividend_type": action.dividend_type,
        "ex_dividend_date": action.ex_date.isoformat(),
        "frequency": action.frequency,
        "id": _id("dividend", action.ticker, action.ex_date),
        "pay_date": action.pay_date.isoformat(),
        "record_date": action.record_date.isoformat(),
        "ticker": action.ticker,
    }


def _spoiled(endpoint: Endpoint, page: Rows) -> Rows:
    """`page` with one defect per row, as `Fault.invalid_actions` describes."""
    page = [dict(row) for row in page]
    if not page:
        return page
    last = len(page) - 1
    if endpoint == "splits":
        page[0]["split_to"] = 0
        if last > 0:
            del page[last]["execution_date"]
        return page
    amount = page[0]["cash_amount"]
    assert isinstance(amount, int | float)
    page[0]["cash_amount"] = -amount
    if len(page) >= 3:
        del page[1]["cash_amount"]
    if last > 0:
        del page[last]["ex_dividend_date"]
    return page
