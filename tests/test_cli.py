"""The `pgbars` command line against the test database."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.sql.helpers import seed
from worker.main import cli
from worker.render import duration_text, progress_cell


def pgbars(dsn: str | None, *args: str) -> Result:
    env = {"DATABASE_URL": dsn or ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_db_upgrade_on_an_installed_database_is_a_no_op(dsn: str) -> None:
    result = pgbars(dsn, "db", "upgrade")
    assert result.exit_code == 0
    assert result.output.startswith("schema is up to date")


def test_watch_add_list_remove(dsn: str, conn: psycopg.Connection[Any]) -> None:
    added = pgbars(dsn, "watch", "add", "aapl", "MSFT", "--watchlist", "tech")
    assert added.exit_code == 0, added.output
    assert added.output.splitlines() == [
        "AAPL added to watchlist tech",
        "MSFT added to watchlist tech",
    ]
    assert conn.execute("SELECT count(*) FROM pgbars.backfill_jobs").fetchone() == (2,)

    listed = pgbars(dsn, "watch", "list")
    assert [line.split()[:2] for line in listed.output.splitlines()[2:]] == [
        ["tech", "AAPL"],
        ["tech", "MSFT"],
    ]

    removed = pgbars(dsn, "watch", "remove", "msft", "--watchlist", "tech")
    assert removed.output.strip() == "MSFT removed from watchlist tech"
    assert pgbars(dsn, "watch", "remove", "MSFT", "--watchlist", "tech").output.strip() == (
        "MSFT was not in watchlist tech"
    )


def test_watch_list_never_prints_control_characters(dsn: str, conn: psycopg.Connection[Any]) -> None:
    # a name stored before add_to_watchlist refused control characters, by a plain INSERT
    conn.execute("INSERT INTO pgbars.watchlists (name) VALUES (%s)", ("evil\x1b]0;owned\x07",))
    conn.execute(
        "INSERT INTO pgbars.watchlist_items (watchlist_id, symbol_id) SELECT w.id, s.id"
        " FROM pgbars.watchlists AS w, pgbars._ensure_symbol('AAPL') AS s (id)"
    )
    listed = pgbars(dsn, "watch", "list")
    assert listed.exit_code == 0, listed.output
    assert "\x1b" not in listed.output and "\x07" not in listed.output
    assert "evil?]0;owned?" in listed.output


def test_bad_ticker_prints_one_line_and_adds_nothing(dsn: str, conn: psycopg.Connection[Any]) -> None:
    result = CliRunner().invoke(cli, ["watch", "add", "AAPL", "'; DROP"], env={"DATABASE_URL": dsn})
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith("pgbars: error: invalid ticker")
    assert "Traceback" not in result.output
    assert conn.execute("SELECT count(*) FROM pgbars.watchlist_items").fetchone() == (0,)


def test_request_and_status_json(dsn: str) -> None:
    result = pgbars(dsn, "request", "NVDA", "--timeframe", "h1", "--timeframe", "d1", "--years", "2")
    assert result.exit_code == 0, result.output
    assert "NVDA h1: 10 new chunks" in result.output
    assert "NVDA d1: 1 new chunks" in result.output
    again = pgbars(dsn, "request", "NVDA")
    assert "NVDA h1: 0 new chunks" in again.output

    status = pgbars(dsn, "status", "nvda", "--json")
    rows = json.loads(status.output)
    assert [(r["symbol"], r["timeframe"], r["status"], r["total"]) for r in rows] == [
        ("NVDA", "h1", "pending", 10),
        ("NVDA", "d1", "pending", 1),
    ]
    # h1 from Polygon (12 s per request), d1 from Yahoo (2 s): separate queues
    assert [(r["provider"], r["remaining_requests"], r["eta_seconds"]) for r in rows] == [
        ("polygon", 10, 120),
        ("yahoo", 1, 2),
    ]


# -- pgbars status -------------------------------------------------------------------


def partial_backfill(conn: psycopg.Connection[Any]) -> None:
    """NVDA h1, 2 years (10 chunks): the 3 newest done (138 sessions), the next failed,
    1,200 bars stored; AMD h1, July to December 2024 (3 chunks), untouched. Both on Polygon."""
    seed(conn, "NVDA", start=dt.date(2023, 1, 1), end=dt.date(2024, 12, 31))
    seed(conn, "AMD", start=dt.date(2024, 7, 1), end=dt.date(2024, 12, 31))
    claimed = claim(conn, "NVDA", 4)
    for chunk_id, lease_id in claimed[:3]:
        conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 800, 0, 1)", (chunk_id, lease_id))
    conn.execute("SELECT pgbars.fail_backfill_chunk(%s, %s, 'HTTP 403', false)", claimed[3])
    # 1,200 h1 bars, plus a forecast and a d1 bar that are not the job's stored bars
    conn.execute(
        "INSERT INTO pgbars.ohlc_bars_v2 (symbol_id, timeframe, ts, provider, is_forecast,"
        " open, high, low, close, volume)"
        " SELECT s.id, v.tf, '2024-06-03 08:00+00'::timestamptz + i * interval '1 hour', 'polygon',"
        " v.forecast, 10, 11, 9, 10, 5"
        " FROM pgbars.symbols AS s, generate_series(1, 1200) AS i,"
        " (VALUES ('h1', false), ('h1', true), ('d1', false)) AS v (tf, forecast)"
        " WHERE s.ticker = 'NVDA' AND (i = 1 OR (v.tf = 'h1' AND NOT v.forecast))"
    )


def claim(conn: psycopg.Connection[Any], ticker: str, limit: int) -> list[Any]:
    return conn.execute(
        "SELECT chunk_id, lease_id FROM pgbars.claim_backfill_chunks('w', '{polygon}', %s, p_tickers => %s)",
        (limit, [ticker]),
    ).fetchall()


def test_status_table_shows_progress_bars_bars_and_eta(dsn: str, conn: psycopg.Connection[Any]) -> None:
    partial_backfill(conn)
    result = pgbars(dsn, "status")
    assert result.exit_code == 0, result.output
    # AMD: its 3 requests and 3 of NVDA's, 72 s; NVDA: its 6 and AMD's 3, 108 s (12 s per request)
    assert result.output.splitlines() == [
        "symbol  timeframe  status   progress         chunks  failed   bars  eta",
        "------  ---------  -------  ---------------  ------  ------  -----  ------",
        "AMD     h1         pending  ░░░░░░░░░░   0%     0/3       0      0  ~1 min",
        "NVDA    h1         running  ██░░░░░░░░  27%    3/10       1  1,200  ~2 min",
    ]


def test_status_json_has_machine_values(dsn: str, conn: psycopg.Connection[Any]) -> None:
    partial_backfill(conn)
    job_id = conn.execute("SELECT min(id) FROM pgbars.backfill_jobs").fetchone()
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = pgbars(dsn, "status", " nvda", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    eta_at = dt.datetime.fromisoformat(row.pop("eta_at"))
    assert before <= eta_at - dt.timedelta(seconds=108) < before + dt.timedelta(seconds=10)
    assert row == {
        "symbol": "NVDA",
        "timeframe": "h1",
        "status": "running",
        "progress": 27.5,
        "done": 3,
        "pending": 6,
        "running": 0,
        "failed": 1,
        "total": 10,
        "sessions_done": 138,
        "sessions_total": 502,
        "bars_written": 2400,
        "first_session": "2023-01-03",
        "last_session": "2024-12-31",
        "job_id": job_id and job_id[0],
        "derived_from": None,
        "bars": 1200,
        "provider": "polygon",
        "remaining_chunks": 6,
        "remaining_requests": 6,
        "requests_ahead": 3,
        "paused_until": None,
        "eta_seconds": 108,
        "price_basis_issues": [],
    }


def test_status_shows_what_keeps_adjusted_prices_from_being_trusted(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    partial_backfill(conn)
    conn.execute(
        "UPDATE pgbars.action_refreshes SET last_error = 'polygon: HTTP 500', last_error_at = now()"
        " WHERE provider = 'polygon' AND symbol_id = (SELECT id FROM pgbars.symbols WHERE ticker = 'NVDA')"
    )
    detail = "polygon: splits and dividends could not be fetched: polygon: HTTP 500"
    result = pgbars(dsn, "status")
    assert result.exit_code == 0, result.output
    assert "price basis (pgbars.price_basis_issues):" in result.output
    assert f"NVDA    actions_not_fetched  {detail}" in result.output
    result = pgbars(dsn, "status", "--json")
    rows = {r["symbol"]: r["price_basis_issues"] for r in json.loads(result.output)}
    assert rows == {"AMD": [], "NVDA": [{"issue": "actions_not_fetched", "detail": detail}]}


def test_status_shows_a_provider_pause_and_done_jobs(dsn: str, conn: psycopg.Connection[Any]) -> None:
    partial_backfill(conn)
    for chunk_id, lease_id in claim(conn, "AMD", 3):
        conn.execute("SELECT pgbars.complete_backfill_chunk(%s, %s, 10)", (chunk_id, lease_id))
    paused = conn.execute("SELECT pgbars.pause_provider('polygon', now() + interval '1 hour')").fetchone()
    assert paused is not None
    until: dt.datetime = paused[0]
    result = pgbars(dsn, "status")
    assert result.exit_code == 0, result.output
    # NVDA: 6 requests at 12 s after the hour's pause: 3,672 s
    assert result.output.splitlines()[2:] == [
        "AMD     h1         done     ██████████ 100%     3/3       0      0  —",
        "NVDA    h1         running  ██░░░░░░░░  27%    3/10       1  1,200"
        f"  ~1 h 1 min (paused until {until.astimezone():%H:%M})",
    ]
    (nvda,) = json.loads(pgbars(dsn, "status", "NVDA", "--json").output)
    assert dt.datetime.fromisoformat(nvda["paused_until"]) == until.replace(microsecond=0)
    assert 3600 + 60 <= nvda["eta_seconds"] <= 3600 + 72
    (amd,) = json.loads(pgbars(dsn, "status", "AMD", "--json").output)
    assert (amd["status"], amd["remaining_requests"], amd["eta_seconds"], amd["eta_at"]) == (
        "done",
        0,
        None,
        None,
    )


def test_status_with_no_jobs_says_so(dsn: str) -> None:
    result = pgbars(dsn, "status")
    assert (result.exit_code, result.output) == (
        0,
        "no backfill jobs yet: add a ticker with `pgbars watch add AAPL`\n",
    )
    assert json.loads(pgbars(dsn, "status", "--json").output) == []


@pytest.mark.parametrize(
    ("ticker", "message"),
    [
        ("zzzz", "pgbars: error: no backfill for ZZZZ: request one with `pgbars request ZZZZ`\n"),
        # named as stored, so the command it suggests is one that works
        ("\tbrk / b", "pgbars: error: no backfill for BRK.B: request one with `pgbars request BRK.B`\n"),
        ("'; DROP", "pgbars: error: invalid ticker '''; DROP' (A ticker is 1-10 letters"),
    ],
    ids=["unknown", "share class", "invalid"],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_status_of_an_unknown_or_invalid_ticker_is_one_error_line(
    dsn: str, conn: psycopg.Connection[Any], ticker: str, message: str, as_json: bool
) -> None:
    partial_backfill(conn)
    args = ["status", ticker, "--json"] if as_json else ["status", ticker]
    result = CliRunner().invoke(cli, args, env={"DATABASE_URL": dsn})
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert result.output.startswith(message)


def test_status_needs_only_the_reader_role(dsn: str, conn: psycopg.Connection[Any]) -> None:
    partial_backfill(conn)
    role = f"pgbars_viewer_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'viewer-pw'").format(sql.Identifier(role)))
    try:
        conn.execute(sql.SQL("GRANT pgbars_reader TO {}").format(sql.Identifier(role)))
        result = pgbars(make_conninfo(dsn, user=role, password="viewer-pw"), "status", "--json")
        assert result.exit_code == 0, result.output
        assert [(r["symbol"], r["bars"], r["eta_seconds"]) for r in json.loads(result.output)] == [
            ("AMD", 0, 72),
            ("NVDA", 1200, 108),
        ]
    finally:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "now"),
        (59.4, "now"),
        (72, "~1 min"),
        (108, "~2 min"),
        (3569, "~59 min"),
        (3571, "~1 h"),
        (7800, "~2 h 10 min"),
        (86_000, "~23 h 53 min"),
        (86_370, "~1 d"),
        (2 * 86_400 + 5 * 3600, "~2 d 5 h"),
    ],
)
def test_eta_reads_like_a_person_would_say_it(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


@pytest.mark.parametrize(
    ("percent", "bar"),
    [
        (0, "░░░░░░░░░░   0%"),
        (9.9, "░░░░░░░░░░   9%"),
        (52.4, "█████░░░░░  52%"),
        (99.9, "█████████░  99%"),
        (100, "██████████ 100%"),
    ],
)
def test_progress_bar_rounds_down_so_full_means_done(percent: float, bar: str) -> None:
    assert progress_cell(percent) == bar


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["request", "AAPL", "--timeframe", "h7"], "unknown timeframe 'h7'"),
        (["request", "AAPL", "--start", "2024-06-01", "--end", "2024-01-01"], "is after end date"),
        (["request", "AAPL", "--end", "2999-01-01"], "in the future"),
    ],
)
def test_bad_requests_print_one_line(dsn: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args, env={"DATABASE_URL": dsn})
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["watch", "add", "AA\x1b[2J\nPL"], "pgbars: error: invalid ticker 'AA?[2J?PL' (A ticker is"),
        (
            ["request", "AAPL", "--timeframe", "h1\r\x9b"],
            "pgbars: error: unknown timeframe 'h1??' (Timeframes",
        ),
        (["status", "\x07AAPL\x07"], "pgbars: error: invalid ticker '?AAPL?' (A ticker is"),
    ],
)
def test_an_error_line_shows_control_characters_as_question_marks(
    dsn: str, args: list[str], line: str
) -> None:
    # found by tests/faults: a typed escape or line break reached the terminal raw, over two lines
    result = CliRunner().invoke(cli, args, env={"DATABASE_URL": dsn})
    assert result.exit_code == 1
    assert result.output.startswith(line) and result.output.count("\n") == 1, result.output


def test_watch_remove_shows_a_control_character_in_the_watchlist_name_as_a_question_mark(dsn: str) -> None:
    result = pgbars(dsn, "watch", "remove", "AAPL", "--watchlist", "x\x1b]0;owned\x07")
    assert (result.exit_code, result.output) == (0, "AAPL was not in watchlist x?]0;owned?\n")


def test_a_usage_error_shows_control_characters_as_question_marks() -> None:
    result = CliRunner().invoke(cli, ["status", "AAPL", "MS\x1b[2J\nFT"], env={"DATABASE_URL": ""})
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == "Error: Got unexpected extra argument (MS?[2J?FT)"
    # the help a group shows when given no command keeps its lines
    bare = CliRunner().invoke(cli, ["watch"])
    assert "Commands:" in bare.output.splitlines()


def test_unreachable_database_and_missing_url(tmp_path: Any) -> None:
    missing = CliRunner().invoke(cli, ["status"], env={"DATABASE_URL": ""})
    assert missing.exit_code == 1
    assert "DATABASE_URL is not set" in missing.output
    unreachable = CliRunner().invoke(
        cli, ["status"], env={"DATABASE_URL": f"postgresql://nobody:secret-pw@/x?host={tmp_path}"}
    )
    assert unreachable.exit_code == 1
    assert unreachable.output.startswith("pgbars: error: cannot connect to the database")
    assert "secret-pw" not in unreachable.output


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:Sup3r%zzS3cretPw@host/db",  # malformed: libpq quotes the bad token
        "postgresql://u:Sup3r%25S3cretPw@/db?host=/nonexistent&connect_timeout=2",
        "postgresql:///db?host=/nonexistent&password=Sup3r%25S3cretPw",
        "host=/nonexistent dbname=db password='Sup3r%S3cretPw",  # unterminated quote: malformed
    ],
)
@pytest.mark.parametrize("command", [["status"], ["work", "--max-seconds", "5"]])
def test_no_part_of_the_database_password_is_ever_shown(url: str, command: list[str]) -> None:
    result = CliRunner().invoke(cli, command, env={"DATABASE_URL": url})
    assert result.exit_code == 1, result.output
    assert result.output.startswith("pgbars: error: ")
    password = "Sup3r%S3cretPw"
    shown = result.output.replace("%25", "%")
    pieces = {password[i : i + 4] for i in range(len(password) - 3)} | {"zzS3", "S3cr", "cretPw"}
    assert not [piece for piece in pieces if piece in shown], result.output


def test_schema_missing_is_one_line(server_dsn: Any) -> None:
    result = CliRunner().invoke(cli, ["status"], env={"DATABASE_URL": server_dsn("postgres")})
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert "pgbars.backfill_progress" in result.output or "schema" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["watch", "add", "AAPL"],
        ["watch", "remove", "AAPL"],
        ["watch", "list"],
        ["request", "AAPL"],
        ["status"],
        ["status", "AAPL"],
        ["repair"],
        ["work", "--max-seconds", "5"],
    ],
)
def test_every_command_that_needs_the_schema_says_to_install_it(server_dsn: Any, args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, env={"DATABASE_URL": server_dsn("postgres")})
    assert result.exit_code == 1, result.output
    (line,) = result.output.splitlines()
    assert line == "pgbars: error: the pgbars schema is not installed: run `pgbars db upgrade`"


def test_an_older_schema_is_told_to_upgrade(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("DROP FUNCTION pgbars.repair_gaps")
    result = CliRunner().invoke(cli, ["repair"], env={"DATABASE_URL": dsn})
    assert result.exit_code == 1
    assert "run `pgbars db upgrade`" in result.output and len(result.output.splitlines()) == 1


def test_root_help_lists_whole_sentences_in_the_order_people_use_them() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    commands = [line.split(None, 1) for line in lines[lines.index("Commands:") + 1 :] if line.strip()]
    assert [name for name, _ in commands] == [
        "demo", "db", "watch", "request", "work", "serve", "status", "repair", "export"
    ]  # fmt: skip
    for name, text in commands:
        assert text.endswith(".") and not text.endswith("..."), (name, text)
    for group in (["db"], ["watch"]):
        sub = CliRunner().invoke(cli, [*group, "--help"]).output.splitlines()
        for line in sub[sub.index("Commands:") + 1 :]:
            assert line.strip().endswith(".") and not line.strip().endswith("..."), line


def test_version_and_debug_before_or_after_the_command() -> None:
    assert CliRunner().invoke(cli, ["--version"]).output.startswith("pgbars ")
    for args in (["--debug", "status"], ["status", "--debug"], ["watch", "list", "--debug"]):
        result = CliRunner().invoke(cli, args, env={"DATABASE_URL": ""})
        assert result.exit_code == 1
        # --debug shows the traceback: the exception escapes instead of one line
        assert result.exception is not None and "DATABASE_URL is not set" in str(result.exception), args
    quiet = CliRunner().invoke(cli, ["status"], env={"DATABASE_URL": ""})
    assert quiet.output == (
        "pgbars: error: DATABASE_URL is not set: point it at your Postgres (libpq URI),"
        " or try `pgbars demo`, which needs none\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--years", "0"], "0 is not in the range 1<=x<=50"),
        (["--years", "51"], "51 is not in the range 1<=x<=50"),
        (["--years", "99999999999"], "is not in the range 1<=x<=50"),
        (["--years", "two"], "'two' is not a valid integer"),
        (["--start", "2024-02-30"], "'2024-02-30' is not a date like 2024-01-31"),
        (["--end", "yesterday"], "'yesterday' is not a date like 2024-01-31"),
        (["--years", "2", "--start", "2024-01-02"], "give --years or --start, not both"),
    ],
)
def test_request_options_are_checked_before_the_database(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["request", "AAPL", *args], env={"DATABASE_URL": ""})
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_request_years_is_a_real_range(dsn: str) -> None:
    one = pgbars(dsn, "request", "AAPL", "--years", "1")
    assert one.exit_code == 0, one.output
    fifty = pgbars(dsn, "request", "MSFT", "--years", "50", "--timeframe", "d1")
    assert fifty.exit_code == 1  # the calendar starts in 2000: a clear refusal, not a missing function
    assert "before the trading calendar" in fifty.output


def test_help_explains_each_command_with_an_example() -> None:
    for command in (
        ["db", "upgrade"],
        ["watch", "add"],
        ["watch", "remove"],
        ["watch", "list"],
        ["request"],
        ["status"],
        ["work"],
        ["demo"],
    ):
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0
        assert "Example:" in result.output and "pgbars " in result.output, command


def test_request_of_a_derived_timeframe_says_where_it_comes_from(dsn: str) -> None:
    result = pgbars(dsn, "request", "AAPL", "--timeframe", "h4")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("AAPL h1: 10 new chunks")
    assert lines[1] == "AAPL h4: derived from h1 in SQL, no requests of its own (0 bars derived so far)"


def test_status_shows_a_derived_timeframe_with_its_source(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT set_config('pgbars.now', %s, false)", ("2025-01-02 12:00 America/New_York",))
    conn.execute("SELECT pgbars.request_backfill('SPY', '{h1,h4}', '2024-12-02', '2024-12-31', NULL)")
    result = pgbars(dsn, "status", "SPY")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[:4] for line in lines[2:]] == [
        ["SPY", "h1", "pending", "░░░░░░░░░░"],
        ["SPY", "h4", "(from", "h1)"],
    ]
    as_json = json.loads(pgbars(dsn, "status", "SPY", "--json").output)
    assert [(r["timeframe"], r["derived_from"]) for r in as_json] == [("h1", None), ("h4", "h1")]
