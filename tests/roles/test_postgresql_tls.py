"""The ERP → PostgreSQL hop over TLS with the real photomatrix/postgresql image: the server started with the
postgresql role's own arguments and pg_hba.conf (rendered from the role's files, postgresql_tls on), a
certificate from a test CA standing in for the internal one, and a client configured as the erp_api role
configures the ERP's container (PGSSLMODE=verify-full, PGSSLROOTCERT, PGPASSFILE, the URL without a
password). A plain connection, a certificate from another CA and a name the certificate does not carry
are refused."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess  # nosec B404
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest
import yaml
from plugins.pki import make_test_pki

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "postgresql"
IMAGE = os.environ.get("PHOTOMATRIX_POSTGRESQL_IMAGE", "photomatrix/postgresql:current")
UID = 999


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # nosec B603
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _render(text: str, values: dict) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701  # nosec B701
    env.filters["bool"] = lambda value: str(value).lower() in ("true", "1", "yes", "on")
    return env.from_string(text).render(**values)


def role_values() -> dict:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    return {
        **{k: v for k, v in defaults.items() if isinstance(v, int | str) and "{{" not in str(v)},
        "postgresql_tls": True,
        "postgresql_client_networks": ["0.0.0.0/0"],
        "ansible_managed": "test",
    }


def role_command(values: dict) -> list[str]:
    """The `postgres` command line of the role's "Run PostgreSQL" task, rendered."""
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text(encoding="utf-8"))
    task = next(t for t in tasks if t.get("name") == "Run PostgreSQL")
    return [_render(str(arg), values) for arg in task["community.docker.docker_container"]["command"]]


@dataclass
class Server:
    port: int
    ca: Path
    password: str
    work: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which("docker") is None or _docker("image", "inspect", IMAGE).returncode != 0:
        pytest.skip(f"needs Docker and the image {IMAGE} (built by make up or the lab cycle)")
    work = tmp_path_factory.mktemp("pgtls")
    values = role_values()
    secrets_dir, config_dir = work / "secrets", work / "config"
    secrets_dir.mkdir()
    config_dir.mkdir()
    (work / "pki-src").mkdir()
    pki = make_test_pki(work / "pki-src")
    password = secrets.token_hex(16)
    (secrets_dir / "erp_password").write_text(password, encoding="utf-8")
    shutil.copy(pki.cert, secrets_dir / "server.crt")
    shutil.copy(pki.key, secrets_dir / "server.key")
    for path in secrets_dir.iterdir():
        os.chown(path, UID, UID)
        path.chmod(0o600)
    secrets_dir.chmod(0o711)
    config_dir.chmod(0o755)
    hba = _render((ROLE / "templates" / "pg_hba.conf.j2").read_text(encoding="utf-8"), values)
    assert "hostssl" in hba
    (config_dir / "pg_hba.conf").write_text(hba, encoding="utf-8")
    (config_dir / "pg_hba.conf").chmod(0o644)
    name = f"pmtest-pgtls-{secrets.token_hex(4)}"
    # A network of its own: the default bridge may be absent on a machine whose engine other tests share.
    created = _docker("network", "create", name)
    assert created.returncode == 0, created.stderr
    run = _docker(
        "run", "--detach", "--name", name, "--network", name, "--read-only", "--tmpfs", "/tmp:size=16m",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges:true", "--publish", "127.0.0.1::5432",
        "--env", f"POSTGRES_APP_USER={values['postgresql_erp_user']}",
        "--env", f"POSTGRES_APP_DATABASE={values['postgresql_erp_database']}",
        "--env", "POSTGRES_APP_PASSWORD_FILE=/run/secrets/postgresql/erp_password",
        "--volume", "/var/lib/postgresql/data",
        "--mount", f"type=bind,source={secrets_dir},target=/run/secrets/postgresql,readonly",
        "--mount", f"type=bind,source={config_dir},target=/etc/photomatrix/postgresql,readonly",
        IMAGE, *role_command(values),
    )  # fmt: skip
    try:
        assert run.returncode == 0, run.stderr
        deadline = time.monotonic() + 120
        while True:
            info = json.loads(_docker("inspect", name).stdout)[0]
            if info["State"].get("Health", {}).get("Status") == "healthy":
                break
            assert info["State"]["Running"], _docker("logs", name).stderr[-2000:]
            assert time.monotonic() < deadline, _docker("logs", name).stderr[-2000:]
            time.sleep(1)
        port = int(info["NetworkSettings"]["Ports"]["5432/tcp"][0]["HostPort"])
        yield Server(port, pki.ca, password, work)
    finally:
        _docker("rm", "--force", "--volumes", name)
        _docker("network", "rm", name)


def _connect(server: Server, monkeypatch: pytest.MonkeyPatch, host: str = "127.0.0.1", **env: str):
    """Connect as the ERP's container does: the URL without a password, the rest from libpq's environment."""
    import psycopg

    passfile = server.work / "pgpass"
    passfile.write_text(f"*:*:*:*:{server.password}\n", encoding="utf-8")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "10")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return psycopg.connect(f"postgresql://erp@{host}:{server.port}/erp", hostaddr="127.0.0.1")


def test_the_erp_connects_over_verified_tls(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    with _connect(server, monkeypatch, PGSSLMODE="verify-full", PGSSLROOTCERT=str(server.ca)) as conn:
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None
    assert row[0] is True
    assert row[1] in ("TLSv1.2", "TLSv1.3")


def test_a_plain_connection_is_refused(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        _connect(server, monkeypatch, PGSSLMODE="disable")


def test_a_server_certificate_from_another_ca_is_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import psycopg

    other = make_test_pki(tmp_path, ca_name="Another CA")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        _connect(server, monkeypatch, PGSSLMODE="verify-full", PGSSLROOTCERT=str(other.ca))


def test_a_name_the_certificate_does_not_carry_is_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        _connect(
            server, monkeypatch, "db.elsewhere.test", PGSSLMODE="verify-full", PGSSLROOTCERT=str(server.ca)
        )
