"""ERP fixtures: start the real ERP server (migrated, positions seeded, keys made) as a process.

`erp_api` (session) is the SQLite server other parts' integration tests use. `start_erp_server` starts
one with any settings and database; `temporary_postgres_database` makes a throwaway PostgreSQL database.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from plugins.processes import ROOT, ServiceProcess, free_port

# Generous limits: suites that are not about rate limiting must never trip them.
TEST_SETTINGS = {
    "ERP_ENVIRONMENT": "test",
    "ERP_RATE_LIMIT_KEY_PER_SECOND": "10000",
    "ERP_RATE_LIMIT_KEY_BURST": "10000",
    "ERP_RATE_LIMIT_IP_PER_SECOND": "10000",
    "ERP_RATE_LIMIT_IP_BURST": "10000",
    "ERP_RATE_LIMIT_ACTIVATION_PER_MINUTE": "10000",
    "ERP_AUTH_FAILURE_LIMIT": "10000",
    "ERP_ALERT_AUTH_FAILURES_THRESHOLD": "100000",
    "ERP_ALERT_RATE_LIMITED_THRESHOLD": "100000",
    "ERP_ALERT_REGISTRATIONS_THRESHOLD": "100000",
    "ERP_API_KEY_CACHE_SECONDS": "0.5",
}


@dataclass
class ErpServer:
    base_url: str
    bot_key: str
    admin_key: str
    process: ServiceProcess
    env: dict[str, str]
    state_dir: Path
    extra: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args, check=check)

    def create_key(self, name: str, scopes: tuple[str, ...] = ("bot",), allow: tuple[str, ...] = ()) -> str:
        """A further API key (printed once by the CLI); `allow` lists permitted source networks."""
        args = ["keys", "create", "--name", name]
        for scope in scopes:
            args += ["--scope", scope]
        for net in allow:
            args += ["--allow", net]
        return self.cli(*args).stdout.strip()

    def revoke_key(self, name: str) -> None:
        self.cli("keys", "revoke", name)

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=15.0, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.process.stop()


def run_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erp", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def start_erp_server(
    state_dir: Path,
    *,
    database_url: str | None = None,
    settings: dict[str, str] | None = None,
    name: str = "erp",
) -> ErpServer:
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **TEST_SETTINGS,
        "ERP_DATABASE_URL": database_url or f"sqlite:///{state_dir / 'erp.sqlite3'}",
        "ERP_SECRET_KEY": secrets.token_urlsafe(32),
        **(settings or {}),
    }
    run_cli(env, "migrate")
    run_cli(env, "seed-positions")
    bot_key = run_cli(env, "keys", "create", "--name", "bot", "--scope", "bot").stdout.strip()
    admin_key = run_cli(
        env, "keys", "create", "--name", "admin", "--scope", "bot", "--scope", "admin"
    ).stdout.strip()
    process = ServiceProcess(
        name,
        ["-m", "erp", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_dir=state_dir,
    ).start()
    return ErpServer(f"http://127.0.0.1:{port}", bot_key, admin_key, process, env, state_dir, settings or {})


def idem() -> dict[str, str]:
    """Headers with a fresh Idempotency-Key (POST /staff requires one)."""
    return {"Idempotency-Key": secrets.token_hex(12)}


def _plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def temporary_postgres_database(base_url: str) -> Iterator[str]:
    """A fresh database next to the one `base_url` names (its role needs CREATEDB); dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = "erp_t_" + secrets.token_hex(6)
    with psycopg.connect(_plain_url(base_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_plain_url(base_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def erp_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpServer]:
    """The ERP reference server on SQLite: `.base_url`, `.bot_key`, `.admin_key`, `.create_key(...)`."""
    server = start_erp_server(tmp_path_factory.mktemp("erp-api"))
    try:
        yield server
    finally:
        server.stop()
