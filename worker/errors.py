"""Every exception pgbars raises on purpose, in one place.

Two families: `PgbarsError` is a failure to show the user as one line (the
CLI prints it and exits 1); `ProviderError` is what a provider's answer
means for the work (the worker reduces it to a kind and the database
settles the lease). Neither ever carries a secret.
"""

from __future__ import annotations

from typing import ClassVar, Literal

# What a failed lease was, for pgbars.settle_lease, which decides what it means.
FailureKind = Literal[
    "rate_limited", "refused", "not_covered", "transient", "unreachable", "permanent", "unfinished"
]


class PgbarsError(Exception):
    """A failure to show the user as one line: what was wrong, never a secret."""


class DatabaseUnavailable(PgbarsError):
    """No connection to the database: it is down, restarting or unreachable (pgbars serve retries)."""


class SchemaError(PgbarsError):
    """The database schema is missing, or differs from what this code expects."""


class ClockError(PgbarsError, ValueError):
    """PGBARS_NOW does not name an instant."""


# --- provider failures: what a provider's answer means for the work --------------------


class ProviderError(Exception):
    """Base of every provider failure. Its text never contains a credential.

    Raised as-is (not a subclass) when the provider refused the request as
    malformed (e.g. HTTP 400): retrying the same request cannot help.
    `kind` is what the worker reports to pgbars.settle_lease.
    """

    kind: ClassVar[FailureKind] = "permanent"


class RateLimited(ProviderError):
    """HTTP 429: wait `retry_after` seconds (None when the provider did not say)."""

    kind: ClassVar[FailureKind] = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ProviderError):
    """The credential is missing or refused (401/403); the message names it, never its value."""

    kind: ClassVar[FailureKind] = "refused"


class Misconfigured(ProviderError):
    """The request cannot even be made as configured (a base URL that is not http(s) with a host).

    Settled like a refused credential: the run stops using the provider and the
    lease goes back unspent. The message names the setting, never its value.
    """

    kind: ClassVar[FailureKind] = "refused"


class NotCovered(ProviderError):
    """Not retryable: the plan does not cover the range, or the ticker is unknown."""

    kind: ClassVar[FailureKind] = "not_covered"


class TransientError(ProviderError):
    """Retryable, an attempt spent: 5xx, an answer that broke off or came too slowly, broken JSON,
    error bodies. (No answer at all is its subclass Unreachable.)"""

    kind: ClassVar[FailureKind] = "transient"


class Unreachable(TransientError):
    """No HTTP answer at all: the connection failed, was reset or timed out before a status line.

    Not the request's fault: the lease goes back without spending an attempt, and
    consecutive ones open the provider's circuit breaker in the database (a pause
    shared by every worker, like a 429's).
    """

    kind: ClassVar[FailureKind] = "unreachable"
