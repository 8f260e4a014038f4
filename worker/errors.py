"""Every exception pgbars raises on purpose, in one place.

Two families: `PgbarsError` is a failure to show the user as one line (the
CLI prints it and exits 1); `ProviderError` is what a provider's answer
means for the work (the worker reduces it to a kind and the database
settles the lease). Neither ever carries a secret.
"""

from __future__ import annotations


class PgbarsError(Exception):
    """A failure to show the user as one line: what was wrong, never a secret."""


class SchemaError(PgbarsError):
    """The database schema is missing, or differs from what this code expects."""


class ClockError(PgbarsError, ValueError):
    """PGBARS_NOW does not name an instant."""
