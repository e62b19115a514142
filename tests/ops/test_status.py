"""`make status`: the rendering (unit), and the whole command against a container, a TLS server and an
inventory this test makes itself (never the user's stack); it changes nothing it looks at."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ops import status as ops_status

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def sample(**overrides) -> ops_status.Status:
    values = {
        "hosts": [
            ops_status.HostStatus(
                "app1",
                [
                    {"Names": "photomatrix-erp-api", "State": "running", "Status": "Up 2 hours (healthy)"},
                    {"Names": "photomatrix-chatbot", "State": "running", "Status": "Up 1 minute (unhealthy)"},
                    {"Names": "photomatrix-proxy", "State": "exited", "Status": "Exited (1) 5 minutes ago"},
                    {"Names": "photomatrix-redis", "State": "running", "Status": "Up 9 s (health: starting)"},
                ],
            ),
            ops_status.HostStatus("app2", error="unreachable"),
        ],
        "alerts": [
            {
                "labels": {"alertname": "ErpDown", "severity": "critical"},
                "annotations": {"summary": "ERP not answering"},
                "startsAt": "2026-12-02T11:50:00Z",
            }
        ],
        "alerts_error": "",
        "cert_not_after": NOW + dt.timedelta(days=10),
        "cert_error": "",
        "public": "chat.example",
    }
    values.update(overrides)
    return ops_status.Status(**values)


@pytest.mark.unit
def test_render_shows_what_is_down_alerting_and_expiring() -> None:
    text = ops_status.render(sample(), now=NOW)
    assert "app1: 2/4 up" in text
    assert "ok   photomatrix-erp-api" in text
    # Docker's first check is one interval after a start: not checked yet is no problem, but shown.
    assert "wait photomatrix-redis" in text
    assert "DOWN photomatrix-chatbot" in text  # running but unhealthy
    assert "DOWN photomatrix-proxy" in text
    assert "app2: UNKNOWN (unreachable)" in text
    assert "FIRING ErpDown (critical) since 2026-12-02 11:50 ERP not answering" in text
    assert "chat.example: SOON, expires 2026-12-12 12:00 UTC (10 days)" in text
    assert text.endswith("5 thing(s) need attention")  # 2 down, 1 host, 1 alert, 1 cert
    assert len(text.splitlines()) < 40, "one screen"


@pytest.mark.unit
def test_render_all_good_and_unknowns() -> None:
    good = sample(
        hosts=[ops_status.HostStatus("h", [{"Names": "x", "State": "running", "Status": "Up 1 hour"}])],
        alerts=[],
        cert_not_after=NOW + dt.timedelta(days=80),
    )
    text = ops_status.render(good, now=NOW)
    assert "none firing" in text
    assert "chat.example: ok" in text
    assert text.endswith("all good")
    unknown = ops_status.render(
        sample(alerts=None, alerts_error="no container", cert_not_after=None, cert_error="refused"), now=NOW
    )
    assert "Alerts\n  UNKNOWN (no container)" in unknown
    assert "chat.example: UNKNOWN (refused)" in unknown
    expired = ops_status.render(sample(cert_not_after=NOW - dt.timedelta(days=1)), now=NOW)
    assert "EXPIRED" in expired


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_server(tmp_path: Path):
    """A loopback TLS server with a certificate for `status.test` from a CA made here (30 days)."""
    ca_key, ca, key, csr, crt = (tmp_path / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt"))
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
        "-subj", "/CN=status test CA", "-keyout", str(ca_key), "-out", str(ca),
    )  # fmt: skip
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=status.test",
        "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:status.test\n")
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "30", "-extfile", str(ext), "-out", str(crt),
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(5)
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield {"port": listener.getsockname()[1], "ca": ca}
    stop.set()
    thread.join(5)
    listener.close()


@pytest.fixture
def own_container(tmp_path: Path):
    """A created (never started) container from an empty imported image: real Docker, nothing to pull."""
    tag = f"pmxstatus-{secrets.token_hex(4)}"
    empty = tmp_path / "empty.tar"
    subprocess.run(["tar", "cf", str(empty), "--files-from", "/dev/null"], check=True, timeout=30)
    subprocess.run(
        ["docker", "import", str(empty), f"{tag}:test"], check=True, capture_output=True, timeout=60
    )
    name = f"{tag}-web"
    subprocess.run(
        ["docker", "create", "--name", name, f"{tag}:test", "/none"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield tag, name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)
        subprocess.run(["docker", "rmi", f"{tag}:test"], capture_output=True, timeout=60, check=False)


def docker_state(name: str) -> dict:
    return json.loads(
        subprocess.run(
            ["docker", "inspect", "--type", "container", name],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )[0]


@pytest.mark.integration
def test_status_against_its_own_container_and_tls_server_changes_nothing(
    tmp_path: Path, tls_server: dict, own_container: tuple[str, str]
) -> None:
    prefix, name = own_container
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  children:\n    docker_hosts:\n      hosts:\n        localhost:\n"
        f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n"
    )
    (inventory / "group_vars" / "all.yml").write_text(
        f"photomatrix_domain: status.test\nphotomatrix_ca_file: {tls_server['ca']}\n"
    )
    before = docker_state(name)
    files_before = {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()}
    # Through the documented target (STATUS_ARGS aims it at this test's own container and TLS server).
    args = f"--prefix {prefix} --alertmanager {prefix}-alertmanager"
    args += f" --address 127.0.0.1 --port {tls_server['port']}"
    result = subprocess.run(
        [
            "make", "--no-print-directory", "-s", "-o", ".venv/.installed", "status",
            f"INVENTORY={inventory}", f"STATUS_ARGS={args}",
        ],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert "localhost: 0/1 up" in text, text
    assert f"DOWN {name}" in text
    assert "Created" in text
    assert "Alerts\n  UNKNOWN (" in text  # no Alertmanager container of that name
    assert re.search(r"status\.test: ok, expires \d{4}-\d\d-\d\d \d\d:\d\d UTC \((29|30) days\)", text), text
    # Read-only: the container, the inventory are exactly as before.
    assert docker_state(name) == before
    assert {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()} == files_before
    assert before["State"]["Status"] == "created"


@pytest.mark.integration
def test_status_refuses_a_missing_inventory(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ops.status", "--inventory", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no hosts.yml" in result.stderr


@pytest.mark.integration
def test_the_inventory_settings_are_read_as_ansible_templates_them(tmp_path: Path) -> None:
    """inventory/lab's and inventory/staging's CA file is "{{ inventory_dir }}/…": a path only once Ansible
    templates it (read raw, make status found no such file and said UNKNOWN for the certificate)."""
    from ops.status import inventory_settings

    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  children:\n    docker_hosts:\n      hosts:\n        db: {ansible_host: 10.9.0.2}\n"
        "        edge: {ansible_host: 10.9.0.1}\n    proxy:\n      hosts:\n        edge:\n"
    )
    (inventory / "group_vars" / "all.yml").write_text(
        'photomatrix_domain: chat.example.test\nphotomatrix_ca_file: "{{ inventory_dir }}/.lab/ca.crt"\n'
    )
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars" / "edge.yml").write_text("tls_proxy_cert_mode: provided\n")
    assert inventory_settings(inventory) == {
        "photomatrix_domain": "chat.example.test",
        "photomatrix_ca_file": f"{inventory}/.lab/ca.crt",
        "tls_proxy_cert_mode": "provided",  # the proxy host's, not the first Docker host's
    }
    (inventory / "hosts.yml").write_text("all: {hosts: {}}\n")
    assert inventory_settings(inventory) == {}  # no host: the raw group_vars stand in
