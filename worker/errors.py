"""Every exception pgbars raises on purpose, in one place.

Two families: `PgbarsError` is a failure to show the user as one line (the
CLI prints it and exits 1); `ProviderError` is what a provider's answer
means for the work (the worker reduces it to a kind and the database
settles the lease). Neither ever carries a secret.
"""

from __future__ import annotations

from typing import ClassVar, Literal

# What a failed lease was, for pgbars.settle_lease, which decides what it means.
FailureKind = Literal["rate_limited", "refused", "not_covered", "transient", "permanent", "unfinished"]


class PgbarsError(Exception):
    """A failure to show the user as one line: what was wrong, never a secret."""


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


class NotCovered(ProviderError):
    """Not retryable: the plan does not cover the range, or the ticker is unknown."""

    kind: ClassVar[FailureKind] = "not_covered"


class TransientError(ProviderError):
    """Retryable: 5xx, timeouts, dropped connections, broken JSON, error bodies."""

    kind: ClassVar[FailureKind] = "transient"
