"""An emulated Tradier market data API (`/v1/markets/timesales`, `/v1/markets/history`).

- `Authorization: Bearer <token>` or 401 "Invalid Access Token" (plain text).
- XML unless the Accept header asks for JSON, as Tradier does.
- A single row arrives as an object, not a list; no rows arrive as
  `{"series": null}` / `{"history": null}` or, with `empty_style="string"`,
  as the string `"null"` in their place.
- timesales `time` is New York wall-clock without an offset; `timestamp` is epoch seconds.
- Intraday lookback (counted back from `now`): bars older than it are silently absent.
- X-Ratelimit-Allowed/-Used/-Available/-Expiry headers on every answer.
- history is split-adjusted as of the server clock's New York date (prices,
  and volume rounded to whole shares), never dividend-adjusted; timesales
  are as traded.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Literal
from xml.sax.saxutils import escape

from ..emulator import synthetic
from ..emulator.faults import Fault, Row, spoil
from ..emulator.server import EmulatorServer, RecordedRequest, Reply
from ..emulator.synthetic import NEW_YORK

TIMESALES_MINUTES = {"1min": 1, "5min": 5, "15min": 15}
# Days of intraday history by session_filter, as Tradier documents it (roughly).
LOOKBACK_DAYS = {
    "all": {"1min": 10, "5min": 18, "15min": 18},
    "open": {"1min": 20, "5min": 40, "15min": 40},
}
ALLOWED_PER_MINUTE = 120

EmptyStyle = Literal["null", "string"]


def _wall_clock(text: str, *, end: bool) -> dt.datetime:
    """'YYYY-MM-DD HH:MM' (or a bare date) in New York as an aware UTC instant."""
    if len(text) <= 10:
        day = dt.date.fromisoformat(text)
        wall = dt.datetime.combine(day, dt.time(23, 59) if end else dt.time(0, 0))
    else:
        wall = dt.datetime.strptime(text[:16], "%Y-%m-%d %H:%M")
    return wall.replace(tzinfo=NEW_YORK).astimezone(dt.UTC)


class TradierServer(EmulatorServer):
    provider = "tradier"

    def __init__(
        self,
        token: str,
        *,
        now: dt.datetime | None = None,
        rate_limit: tuple[int, float] | None = None,
        empty_style: EmptyStyle = "null",
    ) -> None:
        super().__init__(now=now, rate_limit=rate_limit)
        self.token = token
        self.empty_style: EmptyStyle = empty_style
        # Symbols Tradier does not know: it answers them with nothing, like an empty range.
        self.unknown_symbols: set[str] = set()
        self._minute_lock = threading.Lock()
        self._minute: tuple[int, int] = (0, 0)  # (epoch minute, calls in it)

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply.json({"fault": {"faultstring": message, "detail": {"errorcode": "emulated"}}}, status)

    def route(self, request: RecordedRequest, fault: Fault | None) -> Reply:
        reply = self._answer(request, fault)
        reply.headers.update(self._rate_headers())
        return reply

    def _answer(self, request: RecordedRequest, fault: Fault | None) -> Reply:
        if request.header("authorization") != f"Bearer {self.token}":
            return Reply.text("Invalid Access Token", 401)
        kind = fault.kind if fault is not None else None
        if kind == "not_authorized":
            return Reply.text("Invalid Access Token", 401)
        if kind == "provider_error":
            return Reply.json({"errors": {"error": "emulated failure inside a 200"}})
        if request.path == "/v1/markets/timesales":
            outer, inner = "series", "data"
        elif request.path == "/v1/markets/history":
            outer, inner = "history", "day"
        else:
            return Reply.text("Not Found", 404)
        # Tradier answers an unknown symbol with nothing, like an empty range.
        if (
            kind in ("unknown_ticker", "empty", "null_results")
            or request.param("symbol") in self.unknown_symbols
            or any(c in (request.param("symbol") or "") for c in ".-")  # Tradier writes BRK/B
        ):
            return self._render(request, outer, inner, [])
        try:
            rows = self._timesales(request) if outer == "series" else self._history(request)
        except (KeyError, ValueError) as error:
            return Reply.json({"errors": {"error": f"Invalid Parameter: {error}"}}, 400)
        if kind == "invalid_bars" and fault is not None:
            rows = spoil(rows, fault.invalid, outside=self._past_end(request, outer))
        return self._render(request, outer, inner, rows)

    def _timesales(self, request: RecordedRequest) -> list[Row]:
        symbol = (request.param("symbol") or "").replace("/", ".")  # BRK/B: the market of BRK.B
        interval = request.param("interval") or "1min"
        minutes = TIMESALES_MINUTES[interval]
        session_filter = request.param("session_filter") or "all"
        start = _wall_clock(request.param("start") or "", end=False)
        end = _wall_clock(request.param("end") or "", end=True)
        cutoff = self.clock() - dt.timedelta(days=LOOKBACK_DAYS[session_filter][interval])
        timeframe = {1: "m1", 5: "m5", 15: "m15"}[minutes]
        bars = synthetic.bars(
            symbol,
            timeframe,
            start.astimezone(NEW_YORK).date(),
            end.astimezone(NEW_YORK).date(),
            extended=session_filter == "all",
        )
        # Nothing after the server's now: today's bars stop at the bar still trading.
        now = self.clock()
        return [Row.of(bar) for bar in bars if start <= bar.ts <= end and cutoff <= bar.ts <= now]

    def _history(self, request: RecordedRequest) -> list[Row]:
        """Daily or weekly rows, each stamped 00:00 New York of the date Tradier reports."""
        symbol = (request.param("symbol") or "").replace("/", ".")  # BRK/B: the market of BRK.B
        interval = request.param("interval") or "daily"
        first = dt.date.fromisoformat(request.param("start") or "")
        last = dt.date.fromisoformat(request.param("end") or "")
        today = self.today()
        if interval == "daily":
            return [Row.of(bar) for bar in synthetic.adjusted_bars(symbol, "d1", first, last, as_of=today)]
        if interval == "weekly":
            rows = []
            for week in synthetic.adjusted_bars(symbol, "w1", first, last, as_of=today):
                monday = week.ts.astimezone(NEW_YORK).date()
                # Tradier dates a week by its first session (a Tuesday after a Monday holiday).
                opening = synthetic.sessions(monday, monday + dt.timedelta(days=6))[0]
                row = Row.of(week)
                row.ts = synthetic.new_york_midnight(opening.session_date)
                rows.append(row)
            return rows
        raise ValueError(f"interval={interval} not emulated")

    def _past_end(self, request: RecordedRequest, outer: str) -> dt.datetime:
        end = request.param("end") or ""
        if outer == "series":
            return _wall_clock(end, end=True) + dt.timedelta(minutes=1)
        return synthetic.new_york_midnight(dt.date.fromisoformat(end) + dt.timedelta(days=1))

    def _render(self, request: RecordedRequest, outer: str, inner: str, rows: list[Row]) -> Reply:
        items = [_timesale(row) if outer == "series" else _day(row) for row in rows]
        if "application/json" not in (request.header("accept") or ""):
            return _xml(outer, inner, items)
        if not items:
            empty: object = None if self.empty_style == "null" else "null"
            return Reply.json({outer: empty})
        # Tradier's quirk: one row is an object, not a one-element list.
        return Reply.json({outer: {inner: items[0] if len(items) == 1 else items}})

    def _rate_headers(self) -> dict[str, str]:
        now = self.clock()
        minute = int(now.timestamp()) // 60
        with self._minute_lock:
            current, used = self._minute
            used = used + 1 if current == minute else 1
            self._minute = (minute, used)
        return {
            "X-Ratelimit-Allowed": str(ALLOWED_PER_MINUTE),
            "X-Ratelimit-Used": str(used),
            "X-Ratelimit-Available": str(max(ALLOWED_PER_MINUTE - used, 0)),
            "X-Ratelimit-Expiry": str((minute + 1) * 60_000),
        }


def _timesale(row: Row) -> dict[str, object]:
    local = row.ts.astimezone(NEW_YORK)
    return {
        "time": local.strftime("%Y-%m-%dT%H:%M:%S"),
        "timestamp": int(row.ts.timestamp()),
        "price": row.close,
        "open": row.open,
        "high": row.high,
        "low": row.low,
        "close": row.close,
        "volume": row.volume,
        "vwap": row.vwap,
    }


def _day(row: Row) -> dict[str, object]:
    return {
        "date": row.ts.astimezone(NEW_YORK).date().isoformat(),
        "open": row.open,
        "high": row.high,
        "low": row.low,
        "close": row.close,
        "volume": None if row.volume is None else round(row.volume),
    }


def _xml(outer: str, inner: str, rows: list[dict[str, object]]) -> Reply:
    items = "".join(
        f"<{inner}>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in row.items()) + f"</{inner}>"
        for row in rows
    )
    return Reply.text(
        f'<?xml version="1.0" encoding="UTF-8"?><{outer}>{items}</{outer}>', 200, "application/xml"
    )
