"""Fixtures for the deployment tests: the deployed stack on this machine, reached with testinfra.

The tests in tests/infra/ verify a stack that `make up` deployed; they skip unless `make verify`
(PHOTOMATRIX_VERIFY=1) or `make test-infra` runs them, so a plain `pytest` run stays quick.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Stack:
    """Names and paths of the deployed stack (inventory/local)."""

    root: Path = Path(os.environ.get("PHOTOMATRIX_ROOT", "/srv/photomatrix"))
    domain: str = os.environ.get("PHOTOMATRIX_DOMAIN", "localhost")
    https_port: int = 443
    http_port: int = 80
    proxy: str = "photomatrix-proxy"
    rocketchat: str = "photomatrix-rocketchat"
    erp: str = "photomatrix-erp-api"
    bot: str = "photomatrix-chatbot"
    mongodb: str = "photomatrix-mongodb"
    proxy_internal_url: str = "https://proxy:8443"
    containers: tuple[str, ...] = field(default=())

    @property
    def ca_file(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def base_url(self) -> str:
        return f"https://{self.domain}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def docker_inspect(name: str) -> dict:
    out = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)[0]


def container_python(container: str, code: str, timeout: float = 60) -> str:
    """Run Python inside a deployed container (its own interpreter and libraries) and return stdout."""
    out = subprocess.run(
        ["docker", "exec", container, "python", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, f"{container}: {out.stderr[-2000:]}"
    return out.stdout


@pytest.fixture(scope="session")
def stack() -> Stack:
    if os.environ.get("PHOTOMATRIX_VERIFY") != "1":
        pytest.skip("deployment tests run through `make verify` / `make test-infra` (PHOTOMATRIX_VERIFY=1)")
    running = subprocess.run(
        ["docker", "ps", "--filter", "name=^photomatrix-", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    names = tuple(sorted(running.stdout.split()))
    if not names:
        pytest.fail("no photomatrix-* container runs: deploy first with `make up`")
    return Stack(containers=names)


@pytest.fixture(scope="session")
def host() -> testinfra.host.Host:
    return testinfra.get_host("local://")


@pytest.fixture(scope="session")
def bot_api_key(stack: Stack) -> str:
    return (stack.root / "secrets" / "bot" / "erp_api_key").read_text().strip()
