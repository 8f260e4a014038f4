"""Every command the docs show is run here, so the docs say what the code does now.

- ```bash blocks are commands: each `pgbars ...` line runs, in order, against
  the test database and the local provider servers, and must succeed.
  `export` lines set up the environment the text describes (the test supplies
  its own DATABASE_URL). `bash scripts/test` is what CI itself runs, and
  `bash scripts/demo` is `pgbars demo` after installing (tests/integration/test_demo.py).
- ```sql blocks outside docs/monitoring.md (which tests/sql/test_monitoring.py
  runs as pgbars_reader) run against the test database and must succeed.
- ```text blocks are synopses and output, not commands.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from worker.emulator import PolygonServer, TradierServer, YahooServer
from worker.main import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
RUN_BY_CI = {"bash scripts/test", "bash scripts/demo"}


def _blocks(doc: Path, language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(doc.read_text()) if lang == language]


def _command_lines(block: str) -> list[str]:
    lines = []
    for raw in block.splitlines():
        line = raw.split("  #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_every_fenced_block_says_what_it_is() -> None:
    for doc in DOCS:
        for lang, _ in _FENCE.findall(doc.read_text()):
            assert lang in ("bash", "sql", "text", "mermaid", "yaml"), (
                f"{doc.name}: a ``` block without a language"
            )


@pytest.mark.parametrize("doc", [d for d in DOCS if _blocks(d, "bash")], ids=lambda d: d.name)
def test_bash_commands_run(doc: Path, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # files a command writes (pgbars export --out bars/) land here
    with (
        PolygonServer("docs-polygon-key") as polygon,
        YahooServer() as yahoo,
        TradierServer("docs-tradier-token") as tradier,
    ):
        env = {
            "DATABASE_URL": dsn,
            "POLYGON_API_KEY": "",
            "TRADIER_TOKEN": "",
            "POLYGON_BASE_URL": polygon.base_url,
            "YAHOO_BASE_URL": yahoo.base_url,
            "TRADIER_BASE_URL": tradier.base_url,
        }
        ran = 0
        for block in _blocks(doc, "bash"):
            for line in _command_lines(block):
                if line in RUN_BY_CI or line.startswith("export "):
                    continue
                words = shlex.split(line)
                assert words[0] == "pgbars", f"{doc.name}: no test runs {line!r}"
                result = CliRunner().invoke(cli, words[1:], env=env)
                assert result.exit_code == 0, f"{doc.name}: {line}\n{result.output}"
                ran += 1
        assert ran > 0


@pytest.mark.parametrize(
    "doc", [d for d in DOCS if _blocks(d, "sql") and d.name != "monitoring.md"], ids=lambda d: d.name
)
def test_sql_blocks_run(doc: Path, conn: psycopg.Connection[Any]) -> None:
    # In a transaction rolled back at the end: roles are cluster-wide, and a
    # documented CREATE ROLE must not outlive this test's database.
    conn.autocommit = False
    try:
        for block in _blocks(doc, "sql"):
            for statement in (s.strip() for s in block.split(";")):
                if statement and not all(line.startswith("--") for line in statement.splitlines()):
                    conn.execute(statement.encode())
    finally:
        conn.rollback()
        conn.autocommit = True
