"""Issue 10, for real: the TLS sidecar beside Rocket.Chat (roles/rocketchat, templates/rocketchat-tls.conf.j2)
is a real nginx from the project's image (what the role runs, read-only, as www-data), its configuration the
role's template, its certificate from a CA made for this test, in front of a real Rocket.Chat stand-in (an
HTTP and WebSocket server on loopback that answers with the headers it received). Reached over TLS and
verified against that CA for the name the proxy checks (rocketchat-tls): an HTTP request and a WebSocket
upgrade pass, X-Forwarded-For, X-Real-IP and X-Forwarded-Proto arrive exactly as the proxy sent them (the
sidecar adds no hop: Rocket.Chat counts one, HTTP_FORWARDED_COUNT=1), a client trusting another CA fails
the handshake, plain HTTP is refused, and a caller that is not the proxy gets 403."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest
from plugins.pki import ServerPki, make_test_pki
from plugins.processes import ROOT, free_port, wait_listening
from websockets.asyncio.server import serve
from websockets.sync.client import connect

pytestmark = pytest.mark.integration

TEMPLATE = ROOT / "roles" / "rocketchat" / "templates" / "rocketchat-tls.conf.j2"
IMAGE = "photomatrix/nginx:current"  # the proxy's image, which the sidecar runs (make up builds it)
SERVER_NAME = "rocketchat-tls"  # rocketchat_tls_server_name: what the proxy verifies (proxy_ssl_name)
PROXY = "127.0.0.1"  # the proxy's address as it arrives (rocketchat_tls_allow)
FRONT = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.7", "X-Forwarded-Proto": "https"}


class StandIn:
    """Rocket.Chat's stand-in on loopback: GET answers the request's headers as JSON; /websocket upgrades,
    sends the headers of its upgrade request, then echoes every message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Future | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _headers(request) -> str:
        return json.dumps({"path": request.path, **{k.lower(): v for k, v in request.headers.raw_items()}})

    def _process(self, connection, request):
        if request.path.startswith("/websocket"):
            return None  # the WebSocket handshake
        return connection.respond(200, self._headers(request))

    async def _echo(self, websocket) -> None:
        await websocket.send(self._headers(websocket.request))
        async for message in websocket:
            await websocket.send(message)

    async def _serve(self) -> None:
        self.stop = self.loop.create_future()
        async with serve(self._echo, "127.0.0.1", self.port, process_request=self._process):
            self.ready.set()
            await self.stop

    def _run(self) -> None:
        self.loop.run_until_complete(self._serve())

    def __enter__(self) -> StandIn:
        self.thread.start()
        assert self.ready.wait(10), "the stand-in did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(lambda: self.stop.set_result(None))
        self.thread.join(10)


PROMETHEUS = "127.0.0.3"  # Prometheus's address as it arrives (rocketchat_tls_metrics_allow)


@dataclass(frozen=True)
class Sidecar:
    port: int
    metrics_port: int  # Rocket.Chat's exporter through the sidecar (rocketchat_tls_metrics)
    pki: ServerPki
    other: ServerPki  # another CA: a client trusting it must not get through


def render(directory: Path, port: int, upstream: str, allow: list[str], metrics_port: int) -> None:
    """The role's template, as tasks/tls.yml writes it for the first instance (Docker's resolver left out:
    the stand-in is an address on loopback, no name to look up)."""
    # An nginx configuration, not HTML: nothing to escape.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # noqa: S701
    env.filters["bool"] = lambda value: str(value).lower() in ("true", "yes", "1")  # Ansible's filter
    text = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        ansible_managed="test",
        rocketchat_tls_instance=0,
        rocketchat_tls_port=port,
        rocketchat_tls_upstream=upstream,
        rocketchat_tls_allow=allow,
        rocketchat_tls_resolver="",
        # The stand-in plays Rocket.Chat's exporter too (it answers any GET with what it received).
        rocketchat_tls_metrics=True,
        rocketchat_prometheus_port=metrics_port,
        rocketchat_tls_metrics_upstream=upstream,
        rocketchat_tls_metrics_allow=[PROMETHEUS],
    )
    (directory / "nginx.conf").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    inspect = ["docker", "image", "inspect", IMAGE]
    if subprocess.run(inspect, capture_output=True, timeout=60, check=False).returncode:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no {IMAGE} image (make up builds it)")
        pytest.skip(f"no {IMAGE} image here (make up builds it)")
    tmp = tmp_path_factory.mktemp("rocketchat-tls")
    (tmp / "ca").mkdir()
    (tmp / "other").mkdir()
    pki = make_test_pki(tmp / "ca", "Rocket.Chat sidecar test CA", names=(SERVER_NAME, "127.0.0.1"))
    other = make_test_pki(tmp / "other", "Another CA", names=(SERVER_NAME, "127.0.0.1"))
    conf = tmp / "conf"
    conf.mkdir()
    conf.joinpath("tls.crt").write_bytes(pki.cert.read_bytes())
    conf.joinpath("tls.key").write_bytes(pki.key.read_bytes())
    for path in (conf, *conf.iterdir()):
        os.chown(path, 33, 33) if os.geteuid() == 0 else path.chmod(0o755 if path.is_dir() else 0o644)
    port = free_port()
    metrics_port = free_port()
    container = f"rocketchat-tls-test-{secrets.token_hex(4)}"
    with StandIn() as standin:
        render(conf, port, f"127.0.0.1:{standin.port}", [PROXY], metrics_port)
        # As the role runs it (tasks/tls.yml): www-data, read-only, /tmp a tmpfs, no capabilities, the
        # directory mounted read-only; the host's network here (the stand-in is on loopback).
        process = subprocess.Popen(
            ["docker", "run", "--rm", "--name", container, "--network", "host", "--user", "33:33",
             "--read-only", "--tmpfs", "/tmp:size=16m,mode=1777", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges:true",
             "--mount", f"type=bind,source={conf},target=/etc/nginx/photomatrix,readonly",
             IMAGE, "nginx", "-c", "/etc/nginx/photomatrix/nginx.conf", "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_listening(process, port, "the sidecar's nginx")
            wait_listening(process, metrics_port, "the sidecar's exporter server")
            yield Sidecar(port, metrics_port, pki, other)
        finally:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60, check=False)
            process.wait(30)


def tls_client(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def get(
    sidecar: Sidecar, path: str, headers: dict[str, str], *, source: str = PROXY, port: int | None = None
) -> tuple[int, bytes]:
    """A GET over TLS verified for the proxy's name, from SOURCE (a loopback address) to PORT (the
    sidecar's main one by default); (status, body)."""
    with socket.socket() as raw:
        raw.bind((source, 0))
        raw.settimeout(10)
        raw.connect(("127.0.0.1", port or sidecar.port))
        with tls_client(sidecar.pki.ca).wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            lines = [f"GET {path} HTTP/1.1", "Host: chat.photomatrix.test", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_an_http_request_passes_with_the_proxys_headers_unchanged(sidecar: Sidecar) -> None:
    status, body = get(sidecar, "/api/info", FRONT)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["path"] == "/api/info"
    assert seen["host"] == "chat.photomatrix.test"
    # Exactly as the proxy sent them: no second X-Forwarded-For entry (the sidecar's or the proxy's).
    assert seen["x-forwarded-for"] == "203.0.113.7"
    assert seen["x-real-ip"] == "203.0.113.7"
    assert seen["x-forwarded-proto"] == "https"
    # A list the proxy sent stays that list.
    status, body = get(sidecar, "/api/info", FRONT | {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
    assert status == 200, body
    assert json.loads(body)["x-forwarded-for"] == "198.51.100.1, 203.0.113.7"


def test_a_websocket_upgrade_passes_with_the_proxys_headers_unchanged(sidecar: Sidecar) -> None:
    with connect(
        f"wss://127.0.0.1:{sidecar.port}/websocket",
        ssl=tls_client(sidecar.pki.ca),
        server_hostname=SERVER_NAME,
        additional_headers=FRONT,
        open_timeout=10,
    ) as websocket:
        seen = json.loads(websocket.recv(timeout=10))
        assert seen["path"] == "/websocket"
        assert seen["upgrade"].lower() == "websocket"
        assert seen["x-forwarded-for"] == "203.0.113.7"
        websocket.send('{"msg":"connect","version":"1"}')
        assert websocket.recv(timeout=10) == '{"msg":"connect","version":"1"}'


def test_a_client_trusting_another_ca_fails_the_handshake(sidecar: Sidecar) -> None:
    with (
        socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        tls_client(sidecar.other.ca).wrap_socket(raw, server_hostname=SERVER_NAME)


def test_a_name_the_certificate_lacks_fails_the_handshake(sidecar: Sidecar) -> None:
    with (
        socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        tls_client(sidecar.pki.ca).wrap_socket(raw, server_hostname="erp-api")


def test_plain_http_gets_nothing_from_rocketchat(sidecar: Sidecar) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as plain:
        plain.sendall(b"GET /api/info HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = plain.recv(4096)
    # nginx's own refusal of plain HTTP on a TLS port, never the stand-in's answer.
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"x-forwarded-for" not in answer


def test_a_caller_that_is_not_the_proxy_is_refused(sidecar: Sidecar) -> None:
    status, body = get(sidecar, "/api/info", FRONT, source="127.0.0.2")
    assert status == 403, body


def test_prometheus_reads_rocketchats_exporter_over_tls_and_nobody_else_does(sidecar: Sidecar) -> None:
    """The exporter's server: /metrics over TLS (the certificate verified for rocketchat-tls) for
    Prometheus's address alone; the proxy's address is refused there, and nothing but /metrics passes."""
    status, body = get(sidecar, "/metrics", {}, source=PROMETHEUS, port=sidecar.metrics_port)
    assert status == 200, body
    assert json.loads(body)["path"] == "/metrics"
    status, _ = get(sidecar, "/metrics", {}, source=PROXY, port=sidecar.metrics_port)
    assert status == 403
    status, _ = get(sidecar, "/api/info", {}, source=PROMETHEUS, port=sidecar.metrics_port)
    assert status == 404
    # And Prometheus gets nothing from Rocket.Chat's API port: that one is the proxy's.
    status, _ = get(sidecar, "/api/info", FRONT, source=PROMETHEUS)
    assert status == 403
