"""Issue 10, for real: a real ERP process (`python -m erp serve --ssl-certfile … --ssl-keyfile …`, what
the erp_api role runs) serves HTTPS with a certificate from a throwaway CA, and a real nginx (the
project's image when this machine has it, else Debian's binary) with the role template's own upstream
TLS lines verifies it: the request passes with that CA and the
ERP's name, and fails (502, certificate verify error) with another CA or another name. The ERP's port
refuses plain HTTP."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from plugins.erp import TEST_SETTINGS, run_cli
from plugins.pki import ServerPki, make_test_pki
from plugins.processes import ROOT, free_port, wait_listening

pytestmark = pytest.mark.integration

TEMPLATE = ROOT / "roles" / "tls_proxy" / "templates" / "nginx.conf.j2"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
IMAGE = "photomatrix/nginx:current"  # the proxy's image, when this machine built it (make up)
SERVER_NAME = "erp-api"  # erp_api_tls_server_name: first in every ERP certificate


@dataclass(frozen=True)
class TlsErp:
    port: int
    pki: ServerPki
    other: ServerPki  # another CA, whose certificates the ERP's clients must refuse


def wait_for_tls(port: int, ca: Path, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    context = ssl.create_default_context(cafile=str(ca))
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the ERP exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"https://127.0.0.1:{port}/readyz", verify=context, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"the ERP did not answer over HTTPS in {timeout} s:\n{tail}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def tls_erp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsErp]:
    tmp = tmp_path_factory.mktemp("erp-tls")
    (tmp / "ca").mkdir()
    (tmp / "other").mkdir()
    names = (SERVER_NAME, "127.0.0.1", "photomatrix-erp-api")
    pki = make_test_pki(tmp / "ca", "ERP TLS test CA", names=names)
    other = make_test_pki(tmp / "other", "Another CA", names=(SERVER_NAME, "127.0.0.1"))
    env = {
        **TEST_SETTINGS,
        "ERP_DATABASE_URL": f"sqlite:///{tmp / 'erp.sqlite3'}",
        "ERP_SECRET_KEY": secrets.token_urlsafe(32),
    }
    run_cli(env, "migrate")
    port = free_port()
    log = tmp / "erp.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "erp", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key)],
            env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_tls(port, pki.ca, process, log)
        yield TlsErp(port, pki, other)
    finally:
        process.terminate()
        process.wait(15)


def test_serve_wants_both_the_certificate_and_its_key(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path)
    env = {**os.environ, **TEST_SETTINGS, "ERP_SECRET_KEY": secrets.token_urlsafe(32)}
    result = subprocess.run(
        [sys.executable, "-m", "erp", "serve", "--ssl-certfile", str(pki.cert)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--ssl-keyfile" in result.stderr


def test_the_erp_port_speaks_tls_only_with_a_certificate_of_its_ca(tls_erp: TlsErp) -> None:
    # Plain HTTP gets no HTTP answer: the server expects a TLS handshake.
    with socket.create_connection(("127.0.0.1", tls_erp.port), timeout=5) as plain:
        plain.settimeout(5)
        plain.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
        try:
            answer = plain.recv(64)
        except OSError:
            answer = b""
    assert not answer.startswith(b"HTTP/"), answer
    # Verified against its CA, for the callers' name: TLS 1.2 or 1.3, the certificate names erp-api.
    context = ssl.create_default_context(cafile=str(tls_erp.pki.ca))
    with (
        socket.create_connection(("127.0.0.1", tls_erp.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        names = [value for _, value in tls.getpeercert()["subjectAltName"]]
        assert names[0] == SERVER_NAME
    # Another CA does not verify it.
    wrong = ssl.create_default_context(cafile=str(tls_erp.other.ca))
    with socket.create_connection(("127.0.0.1", tls_erp.port), timeout=5) as raw, pytest.raises(ssl.SSLError):
        wrong.wrap_socket(raw, server_hostname=SERVER_NAME)


def upstream_tls_macro(ca: Path, name: str) -> list[str]:
    """The proxy_ssl_* lines of the role's template macro upstream_tls (one for every internal hop: the
    ERP, the bot, Rocket.Chat's sidecars), with this test's CA file and upstream name."""
    template = TEMPLATE.read_text(encoding="utf-8")
    start = template.index("{% macro upstream_tls(name) %}")
    block = template[start : template.index("endmacro", start)]
    picked = [line.strip() for line in block.splitlines() if line.strip().startswith("proxy_ssl_")]
    assert "proxy_ssl_verify on;" in picked, block
    filled = [
        line.replace("{{ name }}", name).replace("/etc/nginx/tls/upstream-ca.crt", str(ca)) for line in picked
    ]
    assert not any("{{" in line or "{%" in line for line in filled), filled
    return filled


def role_upstream_tls_lines(ca: Path, name: str) -> list[str]:
    """The ERP's upstream TLS lines as the role's template writes them with TLS on (the macro, called for
    the ERP's name at the server level), with this test's CA file and upstream name."""
    template = TEMPLATE.read_text(encoding="utf-8")
    start = template.index("{% if tls_proxy_erp_tls | bool %}")
    block = template[start : template.index("{% endif %}", start)]
    assert "{{ upstream_tls(tls_proxy_erp_tls_name) | indent(4) }}" in block, block
    return upstream_tls_macro(ca, name)


@dataclass(frozen=True)
class Proxy:
    url: str
    error_log: Path


def nginx_command(tmp: Path, ca: Path) -> tuple[list[str], str]:
    """The project's nginx image when this machine has it (what the proxy runs), else Debian's nginx
    binary, else a skip saying so; and the container's name to remove afterwards ("" for the binary)."""
    image_there = (
        shutil.which("docker")
        and not subprocess.run(
            ["docker", "image", "inspect", IMAGE], capture_output=True, timeout=60, check=False
        ).returncode
    )
    if image_there:
        container = f"erp-tls-test-{secrets.token_hex(4)}"
        mounts = [arg for path in {tmp, ca.parent} for arg in ("-v", f"{path}:{path}")]
        return [
            "docker", "run", "--rm", "--name", container, "--network", "host", "--user", "0",
            *mounts, "--entrypoint", "nginx", IMAGE, "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
            "-g", "daemon off;",
        ], container  # fmt: skip
    if Path(NGINX).exists():
        return [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"], ""
    if os.environ.get("CI") == "true":
        pytest.fail("nginx is not installed (.ci/apt-packages.txt lists it)")
    pytest.skip(f"no nginx here: neither the {IMAGE} image nor Debian's nginx binary (apt-get install nginx)")


def run_nginx(tmp: Path, ca: Path, port: int) -> tuple[subprocess.Popen, str]:
    """Start nginx on TMP's nginx.conf (nginx_command) and wait until it listens on PORT."""
    command, container = nginx_command(tmp, ca)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_listening(process, port, "nginx")
    return process, container


def start_nginx(tmp: Path, erp_port: int, ca: Path, name: str) -> tuple[subprocess.Popen, Proxy, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "tmp").mkdir(exist_ok=True)
    port = free_port()
    nl = "\n    "
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/tmp/body;
  proxy_temp_path {tmp}/tmp/proxy;
  fastcgi_temp_path {tmp}/tmp/fastcgi;
  uwsgi_temp_path {tmp}/tmp/uwsgi;
  scgi_temp_path {tmp}/tmp/scgi;
  upstream erp_servers {{
    server 127.0.0.1:{erp_port} max_fails=1 fail_timeout=5s;
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    {nl.join(role_upstream_tls_lines(ca, name))}
    location / {{
      proxy_pass https://erp_servers;
    }}
  }}
}}
""",
        encoding="utf-8",
    )
    process, container = run_nginx(tmp, ca, port)
    return process, Proxy(f"http://127.0.0.1:{port}", tmp / "error.log"), container


def stop_nginx(process: subprocess.Popen, container: str) -> None:
    if container:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, timeout=60, check=False)
    process.terminate()
    process.wait(30)


@pytest.mark.parametrize(
    ("case", "expected"),
    [("right CA and name", 200), ("another CA", 502), ("another name", 502)],
)
def test_nginx_verifies_the_erp_certificate_against_the_internal_ca(
    tls_erp: TlsErp, tmp_path: Path, case: str, expected: int
) -> None:
    ca = tls_erp.other.ca if case == "another CA" else tls_erp.pki.ca
    name = "rocketchat" if case == "another name" else SERVER_NAME
    process, proxy, container = start_nginx(tmp_path / "nginx", tls_erp.port, ca, name)
    try:
        with httpx.Client(base_url=proxy.url, timeout=10) as http:
            statuses = [http.get("/readyz").status_code for _ in range(3)]
    finally:
        stop_nginx(process, container)
    assert statuses == [expected] * 3, (statuses, proxy.error_log.read_text()[-2000:])
    if expected == 502:
        log = proxy.error_log.read_text()
        assert re.search(r"upstream SSL certificate (verify error|does not match)", log), log[-2000:]
