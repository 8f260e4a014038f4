"""Every call pgbars makes into Postgres lives in this package.

The database owns the rules (sql/); these modules only send statements and
shape their results. Access is asyncio (psycopg 3 async connections), except in
`frames`, whose statements the reading API also sends on blocking connections.
Callers use this package's names (`from worker import db; db.claim_chunks`);
the modules behind it are split by concern:

- `connection`: connecting (with the planning clock), one-line errors;
- `installer`: `pgbars db upgrade`, the calendar load, the schema checks;
- `queue`: the worker's claims, leases, ledger calls, stores and settlements;
- `reads`: what the CLI asks and shows (watchlists, requests, progress, repair);
- `frames`: the reading API's (`read_bars`, `pgbars export`): bars as binary arrays;
- `demo`: the demo's database;
- `schedules`: pgqueuer's tables (pgbars_queue) and `pgbars serve`'s channels.
"""

from ..db.connection import connect, describe_error, session_kwargs
from ..db.demo import (
    DatabaseKind,
    create_database,
    database_exists,
    database_kind,
    demo_contents,
    drop_database,
    drop_pgbars_schema,
    provider_limits,
    record_demo_run,
    require_not_demo,
    set_provider_limits,
)
from ..db.installer import (
    ROUTINES,
    SCHEMA_LOCK,
    SqlFile,
    UpgradeReport,
    ensure_schema_current,
    migration_files,
    require_schema,
    routine_files,
    routines_checksum,
    schema_file,
    upgrade,
)
from ..db.queue import (
    Lease,
    LeaseKind,
    LiveState,
    Reservation,
    Settlement,
    StoredChunk,
    cancel_call,
    claim,
    cleanup_provisional,
    complete_call,
    enabled_providers,
    live_state,
    open_worker_pool,
    reserve_call,
    roll_forward,
    seconds_until_claimable,
    settle,
    store,
    store_actions,
)
from ..db.reads import (
    add_to_watchlist,
    backfill_progress,
    backfill_progress_with_eta,
    bar_coverage,
    list_watchlists,
    normalize_ticker,
    price_basis_issues,
    read_bars,
    remove_from_watchlist,
    repair_gaps,
    request_backfill,
)
from ..db.schedules import (
    BARS_CHANNEL,
    QUEUE_SCHEMA,
    WAKE_CHANNEL,
    install_queue,
    listen,
    prune,
    queue_queries,
    require_queue,
    seconds_until_live_refresh,
    wake_workers,
)

__all__ = [
    "BARS_CHANNEL",
    "QUEUE_SCHEMA",
    "ROUTINES",
    "SCHEMA_LOCK",
    "WAKE_CHANNEL",
    "DatabaseKind",
    "Lease",
    "LeaseKind",
    "LiveState",
    "Reservation",
    "Settlement",
    "SqlFile",
    "StoredChunk",
    "UpgradeReport",
    "add_to_watchlist",
    "backfill_progress",
    "backfill_progress_with_eta",
    "bar_coverage",
    "cancel_call",
    "claim",
    "cleanup_provisional",
    "complete_call",
    "connect",
    "create_database",
    "database_exists",
    "database_kind",
    "demo_contents",
    "describe_error",
    "drop_database",
    "drop_pgbars_schema",
    "enabled_providers",
    "ensure_schema_current",
    "install_queue",
    "list_watchlists",
    "listen",
    "live_state",
    "migration_files",
    "normalize_ticker",
    "open_worker_pool",
    "price_basis_issues",
    "provider_limits",
    "prune",
    "queue_queries",
    "read_bars",
    "record_demo_run",
    "remove_from_watchlist",
    "repair_gaps",
    "request_backfill",
    "require_not_demo",
    "require_queue",
    "require_schema",
    "reserve_call",
    "roll_forward",
    "routine_files",
    "routines_checksum",
    "schema_file",
    "seconds_until_claimable",
    "seconds_until_live_refresh",
    "session_kwargs",
    "set_provider_limits",
    "settle",
    "store",
    "store_actions",
    "upgrade",
    "wake_workers",
]
