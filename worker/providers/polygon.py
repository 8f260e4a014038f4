"""Polygon.io (Massive): aggregates of every timeframe with extended hours, and splits and
cash dividends from its reference API; both paginated by next_url."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from functools import partial
from urllib.parse import quote, urlsplit, urlunsplit

from ..providers.action_sieve import ActionSieve
from ..providers.classify import Abandoned, ErrorReply
from ..providers.grid import INTRADAY_MINUTES, TIMEFRAMES, day_start, new_york_date, trading_week_monday
from ..providers.http import HttpProvider
from ..providers.sieve import BarSieve
from ..providers.types import ActionsRequest, ActionsResult, FetchRequest, FetchResult, Pace, spell_ticker

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
REFERENCE_LIMIT = 1_000  # splits or dividends per page: Polygon's maximum
# Pages of splits or of dividends for one ticker: 50,000 actions, far beyond any real history.
MAX_REFERENCE_PAGES = 50
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_FIELDS = {"splits": "execution_date", "dividends": "ex_dividend_date"}  # in the order fetched
_CASH_DIVIDENDS = ("CD", "SC")  # regular and special cash; LT and ST are capital gains


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
    """`GET /v2/aggs/ticker/{T}/range/{mult}/{span}/{from}/{to}` for bars, `/v3/reference/splits`
    and `/v3/reference/dividends` for actions; the key in a Bearer header."""

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
        count = len(request.sessions_inside())
        what = f"{count} session{'' if count == 1 else 's'} of {request.timeframe}"
        requests = await self._follow(
            url, params, pace, lambda body: self._read_page(body, sieve), bound=max_pages(request), what=what
        )
        return sieve.result(self.name, requests)

    async def fetch_actions(self, request: ActionsRequest, pace: Pace) -> ActionsResult:
        """`GET /v3/reference/splits`, then `/v3/reference/dividends`: every page paced."""
        self._check_ready()
        ticker = spell_ticker(request.ticker, SHARE_CLASS_SEPARATOR)
        sieve = ActionSieve(request)
        requests = 0
        for kind, date_field in _DATE_FIELDS.items():
            params = {
                "ticker": ticker,
                "limit": str(REFERENCE_LIMIT),
                f"{date_field}.gte": request.start.isoformat(),
                f"{date_field}.lte": request.end.isoformat(),
                "order": "asc",
                "sort": date_field,
            }
            requests += await self._follow(
                f"{self.base_url}/v3/reference/{kind}",
                params,
                pace,
                partial(self._read_reference_page, sieve=sieve, kind=kind, ticker=ticker),
                bound=MAX_REFERENCE_PAGES,
                what=f"the {kind} of {ticker}",
            )
        return sieve.result(self.name, requests)

    async def _follow(
        self,
        url: str,
        params: Mapping[str, str] | None,
        pace: Pace,
        read_page: Callable[[object], str | None],
        *,
        bound: int,
        what: str,
    ) -> int:
        """GET `url` and every next_url after it, each page paced; the number of requests made.

        `read_page` takes a page's body and returns its next_url (None on the last).
        """
        requests = 0
        followed: set[str] = set()
        while True:
            requests += 1
            body = await self._get_json(url, params, pace)
            next_url = read_page(body)
            if next_url is None:
                return requests
            # A loop costs a rate-limit slot per page: cut it. The same URL again would
            # get the same answer, so a repeat (or a chain past the bound) is permanent.
            if next_url in followed:
                raise self._error(
                    Abandoned("too_many_pages", f"next_url repeats itself after {requests} pages, abandoned")
                )
            if requests >= bound:
                raise self._error(
                    Abandoned("too_many_pages", f"more than {bound} pages for {what}, abandoned")
                )
            followed.add(next_url)
            # next_url carries its own cursor (limit, sort, ...) and no key;
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

    def _page(self, body: object, *, counted: bool) -> tuple[list[object], str | None]:
        """A page's results and its next_url, after checking the envelope every Polygon answer has.

        Missing or null results are none; with `counted` (the aggregates) only when
        resultsCount says 0: a non-zero count without results means they were lost.
        """
        if not isinstance(body, dict):
            raise self._error(ErrorReply(200, body, detail="answer is not a JSON object"))
        if body.get("status") not in _ACCEPTED_STATUSES:
            raise self._error(ErrorReply(200, body, detail=f"status {body.get('status')!r}"))
        results = body.get("results")
        if results is None:
            if counted and body.get("resultsCount") != 0:
                raise self._error(ErrorReply(200, body, detail="results missing"))
            results = []
        if not isinstance(results, list):
            raise self._error(ErrorReply(200, body, detail="results is not a list"))
        next_url = body.get("next_url")
        return results, next_url if isinstance(next_url, str) and next_url else None

    def _read_page(self, body: object, sieve: BarSieve) -> str | None:
        results, next_url = self._page(body, counted=True)
        sieve.offer_epoch_rows(
            results, lambda row: self._offer(row, sieve), stamp="t", unit=_MILLISECOND, fields=_FIELDS
        )
        return next_url

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

    def _read_reference_page(self, body: object, *, sieve: ActionSieve, kind: str, ticker: str) -> str | None:
        """Offer a page of splits or dividends to `sieve`; its next_url. No `results` (or null) is none."""
        results, next_url = self._page(body, counted=False)
        for row in results:
            self._offer_action(row, kind, ticker, sieve)
        return next_url

    def _offer_action(self, row: object, kind: str, ticker: str, sieve: ActionSieve) -> None:
        if not isinstance(row, dict):
            sieve.reject({"row": row}, "not an object")
            return
        reported = row.get("ticker")
        if reported != ticker:
            what = "missing" if reported is None else f"{str(reported)[:20]!r}"
            sieve.reject(row, f"ticker {what}, not {ticker} as asked")
            return
        date_field = _DATE_FIELDS[kind]
        text = row.get(date_field)
        if text is None:
            sieve.reject(row, f"{date_field} missing")
            return
        try:
            if not isinstance(text, str) or not _ISO_DATE.fullmatch(text):
                raise ValueError(text)
            ex_date = dt.date.fromisoformat(text)
        except ValueError:
            sieve.reject(row, f"{date_field} is not a YYYY-MM-DD date")
            return
        reference = row.get("id")
        reference = reference if isinstance(reference, str) and reference else None
        if kind == "splits":
            sieve.offer_split(row, ex_date, row.get("split_from"), row.get("split_to"), reference)
            return
        dividend_type = row.get("dividend_type")
        if dividend_type not in _CASH_DIVIDENDS:
            if dividend_type in ("LT", "ST"):
                what = f"capital gains distribution ({dividend_type})"
            elif dividend_type is None:
                what = "dividend_type missing"
            else:
                what = f"dividend_type {str(dividend_type)[:20]!r} unknown"
            sieve.reject(row, f"{what}: not a cash dividend, not applied", ex_date)
            return
        sieve.offer_dividend(row, ex_date, row.get("cash_amount"), row.get("currency"), reference)
