"""pgbars: years of OHLC bars in Postgres, kept current. `read_bars` reads them into DataFrames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reading import read_bars, read_bars_async

__all__ = ["read_bars", "read_bars_async"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI and the worker never load the reading API (numpy, pandas).
    if name in __all__:
        from . import reading

        return getattr(reading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
