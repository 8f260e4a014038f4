"""An emulated Polygon.io aggregates API (`/v2/aggs/ticker/...`), quirks included.

The reference API for splits and dividends is in `polygon_reference.py`.

- `limit` counts base aggregates (minute bars for minute/hour spans, sessions
  for day/week); a bar is served only if all of its base aggregates fit, and
  every page holds at least one bar so a tiny limit still makes progress.
- `next_url` is absolute, carries a cursor (limit, sort, adjusted) and no key.
- The key is checked in `Authorization: Bearer` or `?apiKey=`; 401 otherwise.
- Weekly bars start on the Sunday before their week (00:00 New York).
- `v` of a bar with a million shares or more is written in exponent form.
- `history_days` answers 403 NOT_AUTHORIZED for older ranges, as a plan would.
- `adjusted=true` (the default) serves bars split-adjusted as of the server
  clock's New York date (never dividend-adjusted); `adjusted=false` as traded.
  An adjusted volume across a reverse split may be fractional: a plain float.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qs, urlencode

from ..emulator import polygon_reference, synthetic
from ..emulator.faults import Fault, Row, spoil
from ..emulator.server import EmulatorServer, RecordedRequest, Reply
from ..emulator.synthetic import NEW_YORK, AdjustedBar, SyntheticBar

DEFAULT_LIMIT = 5_000
MAX_LIMIT = 50_000
_PATH = re.compile(
    r"^/v2/aggs/ticker/(?P<ticker>[^/]+)/range/(?P<multiplier>\d+)/(?P<span>[a-z]+)"
    r"/(?P<low>[^/]+)/(?P<high>[^/]+)$"
)
_TIMEFRAMES = {
    (1, "minute"): "m1",
    (5, "minute"): "m5",
    (15, "minute"): "m15",
    (30, "minute"): "m30",
    (1, "hour"): "h1",
    (4, "hour"): "h4",
    (1, "day"): "d1",
    (1, "week"): "w1",
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EXPONENT = re.compile(r'"@exp@(\d+)"')


def _bound(text: str, *, end: bool) -> dt.datetime:
    """A from/to path segment (ms or YYYY-MM-DD) as an instant; a date's `to` is its last ms."""
    if text.isdigit():
        return _EPOCH + dt.timedelta(milliseconds=int(text))
    day = dt.date.fromisoformat(text)
    if end:
        day += dt.timedelta(days=1)
    start = synthetic.new_york_midnight(day)
    return start - dt.timedelta(milliseconds=1) if end else start


def _ms(ts: dt.datetime) -> int:
    return (ts - _EPOCH) // dt.timedelta(milliseconds=1)


def exponent_form(volume: int) -> str:
    """`1029145` as `1.029145e+06`, exactly: as many digits as the number has."""
    digits = str(volume).rstrip("0") or "0"
    return f"{volume:.{max(len(digits) - 1, 0)}e}"


class PolygonServer(EmulatorServer):
    provider = "polygon"

    def __init__(
        self,
        api_key: str,
        *,
        now: dt.datetime | None = None,
        rate_limit: tuple[int, float] | None = None,
        max_limit: int = MAX_LIMIT,
        history_days: int | None = None,
        public_base_url: str | None = None,
        withheld_actions: Iterable[str] = (),
    ) -> None:
        """`max_limit` caps `limit` (lower it to force pagination); `public_base_url`
        makes next_url point at another host, as the real one would behind a proxy."""
        super().__init__(now=now, rate_limit=rate_limit, withheld_actions=withheld_actions)
        self.api_key = api_key
        self.max_limit = max_limit
        self.history_days = history_days
        self.public_base_url = public_base_url

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply.json({"status": "ERROR", "request_id": _request_id(), "error": message}, status)

    def route(self, request: RecordedRequest, fault: Fault | None) -> Reply:
        match = _PATH.match(request.path)
        endpoint = polygon_reference.ENDPOINTS.get(request.path)
        if match is None and endpoint is None:
            return Reply.json(
                {"status": "NOT_FOUND", "request_id": _request_id(), "message": "Not found"}, 404
            )
        denied = self._check_key(request)
        if denied is not None:
            return denied
        if endpoint is not None:
            return self._reference(endpoint, request, fault)
        assert match is not None
        ticker = match["ticker"]
        if any(sep in ticker.upper() for sep in ("-", "/", "%2F")):
            fault = Fault.unknown_ticker()  # Polygon writes a share class BRK.B, never BRK-B or BRK/B
        timeframe = _TIMEFRAMES.get((int(match["multiplier"]), match["span"]))
        if timeframe is None:
            return self.error_reply(400, "multiplier/timespan not emulated")
        low = _bound(match["low"], end=False)
        high = _bound(match["high"], end=True)
        if (fault is not None and fault.kind == "not_authorized") or self._beyond_plan(low):
            return _not_authorized()
        if fault is not None and fault.kind == "unknown_ticker":
            return Reply.json(
                {"status": "NOT_FOUND", "request_id": _request_id(), "message": "Ticker not found"},
                404,
            )
        if fault is not None and fault.kind == "provider_error":
            return self.error_reply(200, "Internal error, please try again")

        options = self._options(request)
        if options is None:
            return self.error_reply(400, "Could not parse the query parameters")
        adjusted, sort, limit = options
        if sort != "asc":
            return self.error_reply(400, "the emulator serves sort=asc only")
        by_minutes = timeframe not in ("d1", "w1")
        empty = fault is not None and fault.kind == "empty"
        as_of = self.today() if adjusted else None
        bars = iter(()) if empty else _bars_between(ticker, timeframe, low, high, as_of=as_of)
        page, following = _page(bars, limit, by_minutes=by_minutes)
        rows = [Row.of(bar) for bar in page]
        if fault is not None and fault.kind == "invalid_bars":
            rows = spoil(rows, fault.invalid, outside=high + dt.timedelta(milliseconds=1))
        payload: dict[str, object] = {
            "ticker": ticker,
            "queryCount": sum(b.minutes if by_minutes else b.sessions for b in page),
            "resultsCount": len(rows),
            "adjusted": adjusted,
            "status": "OK",
            "request_id": _request_id(),
        }
        if rows:
            payload["results"] = [_result(row) for row in rows]
        if fault is not None and fault.kind == "null_results":
            payload["results"] = None
            payload["resultsCount"] = max(len(rows), 1)
        if following is not None:
            cursor = base64.urlsafe_b64encode(
                urlencode({"adjusted": str(adjusted).lower(), "limit": limit, "sort": sort}).encode()
            ).decode()
            base = self.public_base_url or self.base_url
            payload["next_url"] = (
                f"{base}/v2/aggs/ticker/{ticker}/range/{match['multiplier']}/{match['span']}"
                f"/{_ms(following.ts)}/{match['high']}?cursor={cursor}"
            )
        text = _EXPONENT.sub(lambda m: exponent_form(int(m[1])), json.dumps(payload))
        return Reply(200, text.encode(), {"Content-Type": "application/json"})

    def _reference(
        self, endpoint: polygon_reference.Endpoint, request: RecordedRequest, fault: Fault | None
    ) -> Reply:
        kind = fault.kind if fault is not None else None
        if kind == "not_authorized":
            return _not_authorized()
        if kind == "provider_error":
            return self.error_reply(200, "Internal error, please try again")
        return polygon_reference.answer(
            endpoint,
            request.query,
            today=self.today(),
            withheld=self.withheld_actions,
            base_url=self.public_base_url or self.base_url,
            max_limit=self.max_limit,
            fault_kind=kind,
        )

    def _check_key(self, request: RecordedRequest) -> Reply | None:
        authorization = request.header("authorization") or ""
        key = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
        key = key or request.param("apiKey")
        if not key:
            return self.error_reply(401, "API Key was not provided")
        if key != self.api_key:
            return self.error_reply(401, "Unknown API Key")
        return None

    def _beyond_plan(self, low: dt.datetime) -> bool:
        if self.history_days is None:
            return False
        return low < self.clock() - dt.timedelta(days=self.history_days)

    def _options(self, request: RecordedRequest) -> tuple[bool, str, int] | None:
        query = request.query
        cursor = request.param("cursor")
        if cursor is not None:
            query = parse_qs(base64.urlsafe_b64decode(cursor.encode()).decode())
        try:
            adjusted = query.get("adjusted", ["true"])[0] != "false"
            sort = query.get("sort", ["asc"])[0]
            limit = int(query.get("limit", [str(DEFAULT_LIMIT)])[0])
        except ValueError:
            return None
        return adjusted, sort, max(1, min(limit, self.max_limit))


def _request_id() -> str:
    return uuid.uuid4().hex


def _not_authorized() -> Reply:
    return Reply.json(
        {
            "status": "NOT_AUTHORIZED",
            "request_id": _request_id(),
            "message": "Your plan doesn't include this data timeframe. Please upgrade"
            " your plan at https://polygon.io/pricing",
        },
        403,
    )


_Bar = SyntheticBar | AdjustedBar


def _bars_between(
    ticker: str, timeframe: str, low: dt.datetime, high: dt.datetime, *, as_of: dt.date | None
) -> Iterator[_Bar]:
    """The bars Polygon holds for `ticker` starting within [low, high], as traded or (with
    `as_of`) split-adjusted as of that date, computed lazily so a page costs what it
    holds, not the whole remaining range."""
    first = low.astimezone(NEW_YORK).date()
    last = high.astimezone(NEW_YORK).date()

    def bars_of(timeframe: str, first: dt.date, last: dt.date) -> Iterator[_Bar]:
        if as_of is None:
            return synthetic.iter_bars(ticker, timeframe, first, last)
        return synthetic.iter_adjusted_bars(ticker, timeframe, first, last, as_of=as_of)

    bars: Iterable[_Bar]
    if timeframe == "w1":
        # Weekly bars start on Sunday; serve the weeks whose Sunday lies in range.
        weeks = bars_of("w1", first + dt.timedelta(days=1), last + dt.timedelta(days=7))
        bars = (_to_sunday(bar) for bar in weeks)
    else:
        bars = bars_of(timeframe, first, last)
    for bar in bars:
        if bar.ts > high:
            return
        if bar.ts >= low:
            yield bar


def _to_sunday(bar: _Bar) -> _Bar:
    monday = bar.ts.astimezone(NEW_YORK).date()
    return dataclasses.replace(bar, ts=synthetic.new_york_midnight(monday - dt.timedelta(days=1)))


def _page(bars: Iterator[_Bar], limit: int, *, by_minutes: bool) -> tuple[list[_Bar], _Bar | None]:
    """The bars that fit in `limit` base aggregates, and the first one that did not."""
    page: list[_Bar] = []
    used = 0
    for bar in bars:
        cost = bar.minutes if by_minutes else bar.sessions
        if page and used + cost > limit:
            return page, bar
        page.append(bar)
        used += cost
    return page, None


def _result(row: Row) -> dict[str, object]:
    volume: object = row.volume
    if row.volume is not None and float(row.volume).is_integer():
        volume = int(row.volume)
        if volume >= 1_000_000:
            volume = f"@exp@{volume}"  # rewritten to 1.23e+06 after json.dumps
    result: dict[str, object] = {
        "v": volume,
        "vw": row.vwap,
        "o": row.open,
        "c": row.close,
        "h": row.high,
        "l": row.low,
        "t": _ms(row.ts),
        "n": row.trade_count,
    }
    return result
