"""Issue 11, for real: every ERP replica marked failed at once must not make the proxy answer 502 "no live
upstreams" to a replica that answers again.

The silent-replica drill once saw 33 requests answered 502 in 9 s: one replica frozen (skipped after its
connect timeout), the survivor's TLS handshake slow under load (past proxy_connect_timeout, max_fails=1
marked it failed too), and with every server of `upstream erp_servers` marked failed nginx answered "no
live upstreams" until fail_timeout passed. This test makes that state without load: the role's own
nginx.conf (rendered by ansible as the role deploys it, with HTTPS to the ERP and proxy_ssl_verify) in a
real nginx (the project's image when this machine has it, else Debian's binary), in front of

- replica A, frozen: a socket that listens and never accepts (its kernel completes the TCP handshake, no
  TLS handshake ever comes: nginx gives up after proxy_connect_timeout), and
- replica B, a real HTTPS server (a certificate of the upstream CA for the ERP's name) stopped and started
  again at will.

With B stopped, one request marks both failed (both are down: it fails). B is started again and the next
request follows at once, well within fail_timeout: nginx must try the replicas (the role's backup entries)
and pass it to B (200), not answer 502 "no live upstreams". fail_timeout is set to 30 s here (the role's
default is 5 s) so that a loaded test machine cannot let it pass between the two requests: the state
judged is "every replica marked failed", which a longer fail_timeout only holds longer.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from plugins.pki import ServerPki, make_test_pki
from plugins.processes import free_port
from roles.test_erp_upstream_tls import SERVER_NAME, run_nginx, stop_nginx
from roles.test_topology_render import rendered_nginx_conf

pytestmark = pytest.mark.integration

PATH = "/activate/style.css"  # an ERP location without a rate limit or an allowlist (nginx.conf.j2)
FAIL_TIMEOUT = "30s"


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"replica B\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Replica:
    """An HTTPS server on 127.0.0.1:PORT (HTTP/1.0: every connection closed after its answer, so nginx
    keeps none of them across a stop) that can be stopped (connections refused) and started again."""

    def __init__(self, port: int, pki: ServerPki) -> None:
        self.port = port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(pki.cert, pki.key)
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Answer)
        server.socket = self.context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def frozen() -> Iterator[int]:
    """Replica A: listens, never accepts; its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def host_conf(conf: str, tmp: Path, tls: Path, port: int) -> str:
    """The rendered nginx.conf for a process on this host: the HTTPS server on 127.0.0.1:PORT, the HTTP one
    on another free port, the container's /tmp and /etc/nginx/tls under TMP and TLS, logs in files, no
    health socket."""
    replaced = [
        ("/tmp/", f"{tmp}/"),  # first: TMP itself may be under /tmp
        ("listen 8443 ", f"listen 127.0.0.1:{port} "),
        ("listen 8080 ", f"listen 127.0.0.1:{free_port()} "),
        ("error_log /dev/stderr warn;", f"error_log {tmp}/error.log warn;"),
        ("access_log /dev/stdout;", f"access_log {tmp}/access.log;"),
        ("/etc/nginx/tls/", f"{tls}/"),
    ]
    for old, new in replaced:
        assert old in conf, f"the rendered nginx.conf has no {old!r}"
        conf = conf.replace(old, new)
    return re.sub(r"^\s*listen unix:.*\n", "", conf, flags=re.MULTILINE)


def test_a_replica_back_within_fail_timeout_is_tried_when_every_replica_was_marked_failed(
    tmp_path: Path, frozen: int
) -> None:
    tls = tmp_path / "nginx" / "tls"
    tls.mkdir(parents=True)
    pki = make_test_pki(tls, "ERP upstream test CA", names=(SERVER_NAME, "127.0.0.1"))
    shutil.copy(pki.cert, tls / "fullchain.pem")  # the proxy's own certificate: this one names 127.0.0.1 too
    shutil.copy(pki.ca, tls / "upstream-ca.crt")  # the internal CA nginx checks the ERP against
    for path in tls.iterdir():
        path.chmod(0o644)

    replica_b = Replica(free_port(), pki)
    servers = [f"127.0.0.1:{frozen}", f"127.0.0.1:{replica_b.port}"]
    (tmp_path / "render").mkdir()
    rendered = rendered_nginx_conf(
        tmp_path / "render",
        multi=False,
        extra={
            "tls_proxy_erp_servers": servers,
            "tls_proxy_erp_tls": True,
            "tls_proxy_erp_fail_timeout": FAIL_TIMEOUT,
        },
    )
    upstream = re.search(r"upstream erp_servers \{([^}]*)\}", rendered)
    assert upstream, rendered
    assert "set $erp_upstream https://erp_servers;" in rendered
    nginx_dir = tmp_path / "nginx"
    port = free_port()
    (nginx_dir / "nginx.conf").write_text(host_conf(rendered, nginx_dir, tls, port), encoding="utf-8")

    trust = ssl.create_default_context(cafile=str(pki.ca))
    replica_b.start()
    process, container = run_nginx(nginx_dir, tls / "upstream-ca.crt", port)
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=60) as http:
            # Both replicas configured: B answers (A, if tried first, is skipped after the connect timeout).
            first = http.get(PATH)
            replica_b.stop()
            # Both down for real: this one fails, and both are now marked failed for fail_timeout.
            down = http.get(PATH)
            replica_b.start()
            # B is back, within fail_timeout: it must get this request.
            back = http.get(PATH)
    finally:
        replica_b.stop()
        stop_nginx(process, container)
    log = (nginx_dir / "error.log").read_text()
    assert (first.status_code, first.text) == (200, "replica B\n"), log[-3000:]
    assert down.status_code == 502, log[-3000:]
    assert (back.status_code, back.text) == (200, "replica B\n"), (back.status_code, log[-3000:])
    assert "no live upstreams" not in log, log[-3000:]
