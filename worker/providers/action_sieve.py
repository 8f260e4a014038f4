"""Turning a provider's split and dividend rows into corporate actions: one sieve for every source.

The checks (dates, ratios, amounts, currencies, two rows on one ex-date) are the
same whoever answered, so they live here once, as the bar checks live in
sieve.py; each provider parses its own shapes and names its own fields, so a
reason says what was wrong in the provider's words. Nothing is dropped silently:
a row that does not become an action is kept, verbatim, with why.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from decimal import Decimal

from ..providers.grid import day_start
from ..providers.types import ActionsRequest, ActionsResult, CorporateAction, RawRow

__all__ = ["ActionSieve"]

_CURRENCY = re.compile(r"[A-Z]{3}")


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _positive(name: str, value: object) -> float:
    if value is None:
        raise _Reject(f"{name} missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        raise _Reject(f"{name} is not a number") from None
    if not math.isfinite(number):
        raise _Reject(f"{name} is not a number")
    if number <= 0:
        raise _Reject(f"{name} is not positive")
    return number


def _ratio(action: CorporateAction) -> str:
    return f"{action.split_from:g}:{action.split_to:g}"


class ActionSieve:
    """Checks parsed action rows against the request; keeps actions, rejects the rest.

    On one ex-date, two identical splits are one split and two different ones
    keep the first (the second is rejected: which is right is not ours to
    guess); dividends are summed (a regular and a special one on the same day
    are one price adjustment), in one currency only.
    """

    def __init__(self, request: ActionsRequest) -> None:
        self.request = request
        self.rejected: list[RawRow] = []
        self._splits: dict[dt.date, CorporateAction] = {}
        self._dividends: dict[dt.date, tuple[CorporateAction, Decimal]] = {}

    def reject(self, raw: Mapping[str, object], reason: str, ex_date: dt.date | None = None) -> None:
        self.rejected.append(RawRow(dict(raw), reason, None if ex_date is None else day_start(ex_date)))

    def offer_split(
        self,
        raw: Mapping[str, object],
        ex_date: dt.date,
        split_from: object,
        split_to: object,
        reference: str | None,
        *,
        names: tuple[str, str] = ("split_from", "split_to"),
    ) -> None:
        """A split of `split_to` new shares for `split_from` old; `names` are the provider's fields."""
        try:
            self._check_inside(ex_date)
            old, new = _positive(names[0], split_from), _positive(names[1], split_to)
            if old == new:
                raise _Reject(f"{names[0]} equals {names[1]} ({old:g}:{new:g}): not a split")
        except _Reject as rejection:
            self.reject(raw, rejection.reason, ex_date)
            return
        action = CorporateAction("split", ex_date, old, new, None, None, reference)
        earlier = self._splits.get(ex_date)
        if earlier is None:
            self._splits[ex_date] = action
        elif (earlier.split_from, earlier.split_to) != (old, new):
            reason = f"two splits on {ex_date} disagree: {_ratio(earlier)} and {_ratio(action)}"
            self.reject(raw, reason, ex_date)
        # else the same split reported twice: one split

    def offer_dividend(
        self,
        raw: Mapping[str, object],
        ex_date: dt.date,
        cash_amount: object,
        currency: object,
        reference: str | None,
        *,
        names: tuple[str, str] = ("cash_amount", "currency"),
    ) -> None:
        """A cash dividend of `cash_amount` per share in `currency`; `names` are the provider's fields."""
        try:
            self._check_inside(ex_date)
            amount = _positive(names[0], cash_amount)
            if currency is None:
                raise _Reject(f"{names[1]} missing")
            if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
                raise _Reject(f"{names[1]} is not a 3-letter code")
        except _Reject as rejection:
            self.reject(raw, rejection.reason, ex_date)
            return
        earlier = self._dividends.get(ex_date)
        if earlier is None:
            action = CorporateAction("dividend", ex_date, None, None, amount, currency, reference)
            self._dividends[ex_date] = (action, Decimal(repr(amount)))
            return
        action, total = earlier
        if action.currency != currency:
            reason = f"two dividends on {ex_date} in different currencies: {action.currency} and {currency}"
            self.reject(raw, reason, ex_date)
            return
        # Summed as the decimals the provider wrote: 0.24 + 0.01 is 0.25, not 0.25000000000000006.
        total += Decimal(repr(amount))
        references = ",".join(r for r in (action.reference, reference) if r) or None
        self._dividends[ex_date] = (action._replace(cash_amount=float(total), reference=references), total)

    def result(self, provider: str, requests: int) -> ActionsResult:
        actions = [*self._splits.values(), *(action for action, _ in self._dividends.values())]
        actions.sort(key=lambda a: (a.ex_date, a.kind))
        return ActionsResult(provider, actions, self.rejected, requests)

    def _check_inside(self, ex_date: dt.date) -> None:
        # The provider was asked for these dates only: anything else is its mistake, kept for a look.
        if not self.request.start <= ex_date <= self.request.end:
            raise _Reject(f"ex-date {ex_date} outside {self.request.start}..{self.request.end}")
