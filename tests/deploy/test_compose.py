"""docker-compose.yml, .env.example, the Dockerfile and deploy/: what docker-compose makes of them.

No Docker engine runs here, so nothing is started: Debian's docker-compose 1.29.2 (`config`) resolves
the file as `up` would (variables, anchors, profiles, required values), and the tests read what it
resolved. The broker side of the stack is tested against a real mosquitto in test_mosquitto_acl.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from jieshui.cli import build_parser
from jieshui.inventory import load_site
from jieshui.mqtt_accounts import add_parser

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
ONE_SHOTS = {"mqtt-accounts", "backfill"}
DEMO_ONLY = {"simulators", "backfill"}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET")
# `${VAR`, not `$${...}` (compose's escape for a literal dollar)
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")
TEXT = COMPOSE.read_text(encoding="utf-8")
REQUIRED = sorted({m[1] for m in VARIABLE.finditer(TEXT) if m[2] == ":?"})
MOSQUITTO_UID = "1883"  # user mosquitto in the eclipse-mosquitto:2 image


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose not found; install it with: apt-get install docker-compose (make test does)"
        )
    return found


def _compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Only the env file speaks: a variable in the caller's environment would override it.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    return subprocess.run(
        [_docker_compose(), "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file),
         "config", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines())
    return {k: v for k, v in (p for p in pairs if len(p) == 2) if not k.startswith("#")}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """docker-compose.yml as docker-compose resolves it with .env.example."""
    result = _compose(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """docker-compose.yml as written (anchors merged, variables not resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(TEXT)
    return loaded


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only), from docker-compose 1.x's short or 2.x's long volume syntax."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            out[target] = (source, "ro" in (mode[0].split(",") if mode else []))
        else:
            out[volume["target"]] = (volume["source"], bool(volume.get("read_only")))
    return out


def _depends(service: dict[str, Any]) -> dict[str, str]:
    """dependency -> condition."""
    return {name: dep["condition"] for name, dep in service.get("depends_on", {}).items()}


def test_config_is_valid_with_the_example_env() -> None:
    result = _compose(ENV_EXAMPLE, "-q")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy(config: dict[str, Any]) -> None:
    services = config["services"]
    assert {n for n, s in services.items() if s.get("restart") == "no"} == ONE_SHOTS
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert "healthcheck" not in service, name
            continue
        assert service.get("restart") in ("unless-stopped", "always"), name
        check = service.get("healthcheck", {})
        assert check.get("test", ["NONE"])[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert not check.get("disable", False), name


def test_simulators_and_backfill_run_only_in_the_demo_profile(config: dict[str, Any]) -> None:
    profiles = {name: s.get("profiles") for name, s in config["services"].items()}
    assert {n for n, p in profiles.items() if p} == DEMO_ONLY
    assert all(profiles[n] == ["demo"] for n in DEMO_ONLY)


def test_services_start_in_dependency_order(config: dict[str, Any]) -> None:
    services = config["services"]
    assert _depends(services["mosquitto"]) == {"mqtt-accounts": "service_completed_successfully"}
    assert _depends(services["collector"]) == {"influxdb": "service_healthy", "mosquitto": "service_healthy"}
    assert _depends(services["simulators"]) == {
        "collector": "service_started",
        "mosquitto": "service_healthy",
    }
    for name in ("api", "grafana", "backfill"):
        assert _depends(services[name]) == {"influxdb": "service_healthy"}, name
    # The simulators serve the inventory's 127.0.0.1 Modbus endpoints inside the collector's network.
    assert services["simulators"]["network_mode"] == "service:collector"


def test_secrets_come_only_from_required_variables(raw: dict[str, Any], config: dict[str, Any]) -> None:
    example = _env_example()
    secret_vars = {m[1] for m in VARIABLE.finditer(TEXT) if SECRET_NAME.search(m[1])}
    assert secret_vars == {
        "INFLUX_ADMIN_PASSWORD", "JIESHUI_INFLUX_TOKEN", "JIESHUI_MQTT_DEVICE_SECRET",
        "JIESHUI_MQTT_COLLECTOR_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
    }  # fmt: skip
    for m in VARIABLE.finditer(TEXT):
        if m[1] in secret_vars:
            assert m[2] == ":?", f"{m[0]} must be required (no default)"
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}: {key} is not a variable"
    for value in (example[v] for v in secret_vars):
        assert value.startswith("CHANGE-ME")
        assert value not in TEXT
    # the resolved values are the env file's
    env = config["services"]["collector"]["environment"]
    assert env["JIESHUI_INFLUX_TOKEN"] == example["JIESHUI_INFLUX_TOKEN"]
    assert env["JIESHUI_MQTT_URL"] == (
        f"mqtt://{example['JIESHUI_MQTT_COLLECTOR_USER']}:{example['JIESHUI_MQTT_COLLECTOR_PASSWORD']}@mosquitto:1883"
    )


def test_config_without_any_variables_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    result = _compose(empty, "-q")
    assert result.returncode != 0
    assert re.search(r"set ([A-Z_]+) in \.env", result.stderr), result.stderr


@pytest.mark.parametrize("variable", REQUIRED)
def test_config_without_a_required_variable_fails_naming_it(tmp_path: Path, variable: str) -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    env_file = tmp_path / "partial.env"
    env_file.write_text(
        "\n".join(x for x in lines if not x.startswith(f"{variable}=")) + "\n", encoding="utf-8"
    )
    result = _compose(env_file, "-q")
    assert result.returncode != 0
    assert f"set {variable} in .env" in result.stderr


def test_every_variable_is_documented_in_env_example_with_its_default() -> None:
    used = {m[1] for m in VARIABLE.finditer(TEXT)}
    example = _env_example()
    assert used == set(example), "docker-compose.yml and .env.example name different variables"
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"{line.split('=')[0]} has no comment above it"
    for m in VARIABLE.finditer(TEXT):
        if m[2] == ":-":
            assert example[m[1]] == m[3], (
                f"{m[1]}: default {m[3]!r} in docker-compose.yml, {example[m[1]]!r} here"
            )
    assert len(REQUIRED) == 5


def test_bind_mounts_exist_and_named_volumes_are_declared(config: dict[str, Any]) -> None:
    declared = set(config["volumes"])
    used: set[str] = set()
    for name, service in config["services"].items():
        for source, _ in _mounts(service).values():
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert used == declared
    # the default site, which every application service mounts, is a valid inventory
    load_site(ROOT / "examples" / "district.yaml")


def test_grafana_is_provisioned_from_the_repository(config: dict[str, Any]) -> None:
    grafana = config["services"]["grafana"]
    provisioning = ROOT / "grafana" / "provisioning"
    assert _mounts(grafana)["/etc/grafana/provisioning"] == (str(provisioning), True)
    for sub in ("datasources", "dashboards", "dashboards/json"):
        assert (provisioning / sub).is_dir(), sub
    # the dashboards provider reads a path inside the mount, which exists in the repository
    for provider_file in (provisioning / "dashboards").glob("*.yaml"):
        for provider in yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]:
            path = provider["options"]["path"]
            assert path.startswith("/etc/grafana/provisioning/")
            assert (provisioning / path.removeprefix("/etc/grafana/provisioning/")).is_dir(), path
    # every variable the datasource reads is set
    for source in (provisioning / "datasources").glob("*.yaml"):
        settings = "\n".join(
            x for x in source.read_text(encoding="utf-8").splitlines() if not x.startswith("#")
        )
        for variable in re.findall(r"\$\{([A-Z_]+)\}", settings):
            assert grafana["environment"].get(variable), f"grafana lacks {variable} ({source.name})"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["environment"]["GF_DATE_FORMATS_DEFAULT_TIMEZONE"] == "Asia/Shanghai"


def test_mosquitto_reads_what_mqtt_accounts_writes(config: dict[str, Any]) -> None:
    services = config["services"]
    settings: dict[str, str] = {}
    for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings.setdefault(key, value)
    assert settings["allow_anonymous"] == "false"
    assert settings["max_queued_messages"] == "0"
    assert settings["persistence"] == "true"
    mounts = {target: source for target, (source, _) in _mounts(services["mosquitto"]).items()}
    assert mounts["/mosquitto/config/mosquitto.conf"] == str(MOSQUITTO_CONF)
    auth_dir = str(Path(settings["password_file"]).parent)
    assert str(Path(settings["acl_file"]).parent) == auth_dir
    volume = mounts[auth_dir]
    assert mounts[settings["persistence_location"].rstrip("/")] == "mosquitto-data"
    command = services["mqtt-accounts"]["command"]
    out = command[command.index("--out") + 1]
    assert _mounts(services["mqtt-accounts"])[out] == (volume, False)
    assert _mounts(services["mosquitto"])[auth_dir] == (volume, True)
    assert command[command.index("--owner") + 1] == f"{MOSQUITTO_UID}:{MOSQUITTO_UID}"
    assert services["mqtt-accounts"]["user"] == "0:0"  # only root may give files away


def test_collector_keeps_a_stable_identity_and_its_buffer_on_a_volume(config: dict[str, Any]) -> None:
    collector = config["services"]["collector"]
    env = collector["environment"]
    assert env["JIESHUI_COLLECTOR_ID"] == "compose"
    assert env["JIESHUI_INFLUX_API"] == "v2"
    assert _mounts(collector)[str(Path(env["JIESHUI_BUFFER_PATH"]).parent)] == ("collector-buffer", False)
    api = config["services"]["api"]
    db_dir = str(Path(api["environment"]["JIESHUI_DB_URL"].removeprefix("sqlite:///")).parent)
    assert _mounts(api)[db_dir] == ("api-data", False)


def _jieshui_parser() -> Any:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(sub, argparse._SubParsersAction)
    if "mqtt" not in sub.choices:  # until cli.py wires `jieshui mqtt`
        add_parser(sub)
    return parser


def test_service_commands_are_valid_jieshui_command_lines(config: dict[str, Any], tmp_path: Path) -> None:
    parser = _jieshui_parser()
    for name in ("mqtt-accounts", "collector", "api", "simulators"):
        args = parser.parse_args(config["services"][name]["command"])
        assert args.func is not None, name
        assert args.site == "/site/site.yaml"
    # backfill runs a shell line: run it with a `jieshui` that prints its arguments instead
    backfill = config["services"]["backfill"]
    assert backfill["entrypoint"] == ["sh", "-c"]
    fake = tmp_path / "jieshui"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    fake.chmod(0o755)
    line = backfill["command"][0].replace("$$", "$")
    shown = subprocess.run(["sh", "-c", line], env={"PATH": f"{tmp_path}:{os.environ['PATH']}"},
                           capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    args = parser.parse_args(shown)
    assert (args.command, args.mode) == ("simulate", "backfill")
    assert int(args.end[:4]) - int(args.start[:4]) == 1
    assert args.start.endswith("-01-01")
    assert args.end.endswith("-01-01")


def _stages() -> dict[str, tuple[str, list[str]]]:
    """Dockerfile stage name -> (base, its instructions)."""
    stages: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for line in DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        if m := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = []
            stages[m[2]] = (m[1], current)
        elif line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    return stages


def _last(stages: dict[str, tuple[str, list[str]]], stage: str, instruction: str) -> str | None:
    base, lines = stages[stage]
    found = [x.split(None, 1)[1] for x in lines if x.split(None, 1)[0] == instruction]
    if found:
        return found[-1]
    return _last(stages, base, instruction) if base in stages else None


def test_dockerfile_targets_run_as_a_non_root_user(config: dict[str, Any]) -> None:
    stages = _stages()
    targets = {s["build"]["target"] for s in config["services"].values() if "build" in s}
    assert targets == {"app", "api"}
    for target in targets:
        user = _last(stages, target, "USER")
        assert user is not None, target
        assert user.split(":")[0] not in ("root", "0"), f"{target} runs as {user}"
        assert _last(stages, target, "ENTRYPOINT") == '["jieshui"]'
    assert stages["build"][0] == "${PYTHON_IMAGE}"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text(encoding="utf-8")
    assert "10001" in _last(stages, "app", "USER")  # type: ignore[operator]


def test_dockerfile_copies_every_package_the_wheel_is_built_from() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copies = {x for x in _stages()["build"][1] if x.startswith("COPY ")}
    for package in packages:
        assert f"COPY {package}/ {package}/" in copies, f"the image would lack {package}"
    assert "COPY pyproject.toml README.md ./" in copies


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines())
    assert {".env", ".venv", "var", ".git", ".pytest_cache", ".mypy_cache"} <= ignored


def test_influxdb_init_script_is_executable_shell(config: dict[str, Any]) -> None:
    init_dir = ROOT / "deploy" / "influxdb"
    assert _mounts(config["services"]["influxdb"])["/docker-entrypoint-initdb.d"] == (str(init_dir), True)
    scripts = sorted(init_dir.glob("*.sh"))
    assert scripts
    for script in scripts:
        # the image runs them with run-parts: only executable files whose name ends in sh
        assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable (git keeps the bit)"
        subprocess.run(["bash", "-n", str(script)], check=True)
    text = "\n".join(s.read_text(encoding="utf-8") for s in scripts)
    create = re.search(r"influx v1 dbrp create ([^\n]*\\\n[^\n]*)", text)
    assert create is not None
    flags = shlex.split(create[1].replace("\\\n", " "))
    assert flags[flags.index("--rp") + 1] == "autogen"
    assert "--default" in flags
    assert flags[flags.index("--db") + 1] == "${database}"
    assert 'database="${JIESHUI_INFLUX_DATABASE:-jieshui}"' in text
    assert config["services"]["influxdb"]["environment"]["JIESHUI_INFLUX_DATABASE"] == "jieshui"
