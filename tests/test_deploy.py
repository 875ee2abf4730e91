"""The image and the compose deployment: consistent with the code, validated by Docker where it runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from app.settings import Settings
from tests.conftest import by_nature

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"


def _pins(lock: Path) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", lock.read_text(), re.MULTILINE))


def _docker(*args: str) -> subprocess.CompletedProcess[str] | None:
    """Run `docker args…`, or None when there is no docker CLI."""
    if shutil.which("docker") is None:
        return None
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600, check=False)


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_the_image_installs_the_runtime_lock_with_hashes_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "--require-hashes" in dockerfile
    assert "-r /tmp/requirements.runtime.lock" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users, "the image names a user"
    assert users[-1] not in ("root", "0")
    runtime, full = _pins(ROOT / "requirements.runtime.lock"), _pins(ROOT / "requirements.lock")
    assert runtime, "the runtime lock pins something"
    assert {name: full.get(name) for name in runtime} == runtime, "same pins as requirements.lock"
    assert "pytest" not in runtime
    assert "playwright" not in runtime
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*", "everything is left out of the build context unless named"


def test_compose_runs_two_instances_a_replica_redis_a_balancer_and_a_worker() -> None:
    services = _compose()["services"]
    assert {"postgres", "postgres-replica", "redis", "troika-1", "troika-2", "lb", "worker"} <= set(services)
    for name in ("troika-1", "troika-2"):
        assert services[name]["command"][0] == "serve"
    fields = {f"TROIKA_{name.upper()}" for name in Settings.model_fields}
    for name, service in services.items():
        environment = service.get("environment") or {}
        unknown = {key for key in environment if key.startswith("TROIKA_")} - fields
        assert not unknown, f"{name}: settings Troika does not have: {unknown}"
    haproxy = (ROOT / "deploy/haproxy/haproxy.cfg").read_text()
    assert "option httpchk GET /readyz" in haproxy
    assert all(f"server {n} {n}:8000" in haproxy for n in ("troika-1", "troika-2"))


def test_docker_compose_validates_the_file() -> None:
    version = _docker("compose", "version")
    if version is None or version.returncode != 0:
        # CI's machines carry the docker CLI without the compose plugin: this check runs where a
        # developer has Docker Compose.
        by_nature("needs the docker CLI with the compose plugin (`docker compose`)")
    env = {"POSTGRES_PASSWORD": "x", "REPLICATION_PASSWORD": "x"}
    env |= {"TROIKA_TOKEN_SECRET": "x", "TROIKA_PII_KEY": "x", "TROIKA_PII_INDEX_KEY": "x"}
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr


def test_the_image_builds() -> None:
    info = _docker("info", "--format", "{{.ServerVersion}}")
    if info is None or info.returncode != 0:
        # A sandboxed CI machine runs no Docker daemon: the build runs where one is.
        by_nature("needs a running Docker daemon (`docker info` fails here)")
    result = _docker("build", "--quiet", "-t", "troika:test", str(ROOT))
    assert result is not None
    assert result.returncode == 0, result.stderr
