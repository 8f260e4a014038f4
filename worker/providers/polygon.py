"""Polygon.io (Massive) aggregates: every timeframe, extended hours, paginated by next_url."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, urlsplit, urlunsplit

from ..providers.classify import Abandoned, ErrorReply
from ..providers.grid import INTRADAY_MINUTES, TIMEFRAMES, day_start, new_york_date, trading_week_monday
from ..providers.http import HttpProvider
from ..providers.sieve import BarSieve
from ..providers.types import FetchRequest, FetchResult, Pace, spell_ticker

DEFAULT_BASE_URL = "https://api.polygon.io"
SHARE_CLASS_SEPARATOR = "."  # BRK.B, as pgbars stores it (docs/database.md#tickers)

SPANS: dict[str, tuple[int, str]] = {
    "m1": (1, "minute"),
    "m5": (5, "minute"),
    "m15": (15, "minute"),
    "m30": (30, "minute"),
    "h1": (1, "hour"),
    "h4": (4, "hour"),
    "d1": (1, "day"),
    "w1": (1, "week"),
}
PAGE_LIMIT = 50_000  # base aggregates per page: Polygon's maximum
# Pages beyond the bars a chunk can hold (see max_pages): an empty last page, and one spare.
_SPARE_PAGES = 2
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ACCEPTED_STATUSES = ("OK", "DELAYED")  # DELAYED: plans with 15-minute delayed data
_MILLISECOND = dt.timedelta(milliseconds=1)
# An aggregate's open, high, low, close, volume, vwap and trade count (BarSieve.offer_epoch_rows)
_FIELDS = ("o", "h", "l", "c", "v", "vw", "n")


def _epoch_ms(ts: dt.datetime) -> int:
    return (ts - _EPOCH) // dt.timedelta(milliseconds=1)


def max_pages(request: FetchRequest) -> int:
    """The most pages an honest next_url chain can take for `request`.

    Every page but an empty last one carries at least one bar (Polygon pages by
    base aggregates, and a bar is served whole), so a chunk needs at most one
    page per slot of its grid inside its sessions' extended hours, plus spares.
    Independent of the page size a plan allows. An h1 chunk of 52 sessions
    allows 886 pages; it normally takes one.
    """
    sessions = request.sessions_inside()
    if request.timeframe in INTRADAY_MINUTES:
        step = dt.timedelta(minutes=INTRADAY_MINUTES[request.timeframe])
        slots = sum((s.after_hours_close - s.premarket_open) // step + 1 for s in sessions)
    elif request.timeframe == "w1":
        slots = len({trading_week_monday(s.session_date) for s in sessions})
    else:
        slots = len(sessions)
    return slots + _SPARE_PAGES


class PolygonProvider(HttpProvider):
    """`GET /v2/aggs/ticker/{T}/range/{mult}/{span}/{from}/{to}`, key in a Bearer header."""

    name = "polygon"
    credential_name = "POLYGON_API_KEY"
    base_url_setting = "POLYGON_BASE_URL"
    timeframes = frozenset(TIMEFRAMES)

    async def fetch(self, request: FetchRequest, pace: Pace) -> FetchResult:
        self._check_request(request)
        multiplier, span = SPANS[request.timeframe]
        if request.timeframe == "d1":
            # Dates, not milliseconds: a daily bar starts at 00:00 New York, before the
            # chunk's pre-market `start`, and ms bounds could drop the first day.
            low, high = request.first_session.isoformat(), request.last_session.isoformat()
        elif request.timeframe == "w1":
            # Weekly bars start on the Sunday before their week; begin there so the
            # week of `first_session` is included however Polygon compares.
            sunday = trading_week_monday(request.first_session) - dt.timedelta(days=1)
            low, high = sunday.isoformat(), request.last_session.isoformat()
        else:
            low, high = str(_epoch_ms(request.start)), str(_epoch_ms(request.end) - 1)
        ticker = spell_ticker(request.ticker, SHARE_CLASS_SEPARATOR)
        url = (
            f"{self.base_url}/v2/aggs/ticker/{quote(ticker, safe='')}/range/{multiplier}/{span}/{low}/{high}"
        )
        params: dict[str, str] | None = {
            "adjusted": "false",
            "sort": "asc",
            "limit": str(PAGE_LIMIT),
        }
        sieve = BarSieve(request)
        requests = 0
        bound = max_pages(request)
        followed: set[str] = set()
        while True:
            requests += 1
            body = await self._get_json(url, params, pace)
            next_url = self._read_page(body, sieve)
            if next_url is None:
                return sieve.result(self.name, requests)
            # A loop costs a rate-limit slot per page: cut it. The same URL again would
            # get the same answer, so a repeat (or a chain past the bound) is permanent.
            if next_url in followed:
                raise self._error(
                    Abandoned("too_many_pages", f"next_url repeats itself after {requests} pages, abandoned")
                )
            if requests >= bound:
                count = len(request.sessions_inside())
                what = f"{count} session{'' if count == 1 else 's'} of {request.timeframe}"
                raise self._error(
                    Abandoned("too_many_pages", f"more than {bound} pages for {what}, abandoned")
                )
            followed.add(next_url)
            # next_url carries its own cursor (limit, sort, adjusted) and no key;
            # _headers() sends the key again.
            url, params = self._same_host(next_url), None

    def _same_host(self, next_url: str) -> str:
        """next_url moved onto the configured base URL.

        The key is only ever sent to the configured host, and a proxy or test
        server set in POLYGON_BASE_URL keeps seeing the follow-up pages.
        """
        target = urlsplit(next_url)
        base = urlsplit(self.base_url)
        if (target.scheme, target.netloc) == (base.scheme, base.netloc):
            return next_url
        path = base.path.rstrip("/") + target.path
        return urlunsplit((base.scheme, base.netloc, path, target.query, ""))

    def _read_page(self, body: object, sieve: BarSieve) -> str | None:
        if not isinstance(body, dict):
            raise self._error(ErrorReply(200, body, detail="answer is not a JSON object"))
        if body.get("status") not in _ACCEPTED_STATUSES:
            raise self._error(ErrorReply(200, body, detail=f"status {body.get('status')!r}"))
        results = body.get("results")
        if results is None:
            # No bars in range looks like this too; only a non-zero count means loss.
            if body.get("resultsCount") != 0:
                raise self._error(ErrorReply(200, body, detail="results missing"))
            results = []
        if not isinstance(results, list):
            raise self._error(ErrorReply(200, body, detail="results is not a list"))
        sieve.offer_epoch_rows(
            results, lambda row: self._offer(row, sieve), stamp="t", unit=_MILLISECOND, fields=_FIELDS
        )
        next_url = body.get("next_url")
        return next_url if isinstance(next_url, str) and next_url else None

    def _offer(self, raw: object, sieve: BarSieve) -> None:
        parsed = sieve.row_epoch(raw, "t")
        if parsed is None:
            return
        row, stamp = parsed
        ts = _EPOCH + dt.timedelta(milliseconds=stamp)
        if sieve.request.timeframe == "w1":
            ts = day_start(trading_week_monday(new_york_date(ts)))
        sieve.offer(
            row,
            ts,
            open=row.get("o"),
            high=row.get("h"),
            low=row.get("l"),
            close=row.get("c"),
            volume=row.get("v"),
            vwap=row.get("vw"),
            trade_count=row.get("n"),
        )
