"""BOT_HTTP_TLS_CERTFILE / BOT_HTTP_TLS_KEYFILE: the bot's HTTP port (Alertmanager's notifications with their
token, Prometheus' scrapes, the health check) serves HTTPS with a certificate from the internal CA, and
no plain HTTP; both files or neither, each a file."""

import asyncio
import os
import secrets
import socket
import ssl
import subprocess  # nosec B404
import sys

import pytest
import uvicorn
from plugins.pki import make_test_pki
from plugins.processes import free_port
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bot.app import http_server_config
from bot.settings import BotSettings

pytestmark = pytest.mark.integration

REQUIRED = {
    "rocketchat_url": "http://127.0.0.1:3000",
    "rocketchat_user_id": "bot-id",
    "rocketchat_token": secrets.token_hex(16),
    "erp_url": "http://127.0.0.1:8000",
    "erp_api_key": secrets.token_hex(16),
}


def _app() -> Starlette:
    async def readyz(request):
        return PlainTextResponse("ready")

    return Starlette(routes=[Route("/readyz", readyz)])


def _plain(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), 5) as plain:
        plain.settimeout(5)
        plain.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
        try:
            return plain.recv(64)
        except (ConnectionResetError, TimeoutError):
            return b""


def _tls(port: int, ca, name: str = "localhost") -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), 5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
        return tls.recv(64)


async def test_the_http_port_serves_https_with_the_files_and_no_plain_http(tmp_path) -> None:
    pki = make_test_pki(tmp_path)
    port = free_port()
    settings = BotSettings(
        **REQUIRED,
        http_host="127.0.0.1",
        http_port=port,
        http_tls_certfile=pki.cert,
        http_tls_keyfile=pki.key,
    )
    server = uvicorn.Server(http_server_config(settings, _app()))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(100):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        answer = await asyncio.to_thread(_tls, port, pki.ca)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        plain = await asyncio.to_thread(_plain, port)
        assert b" 200 " not in plain, plain
        # A client trusting another CA refuses the certificate.
        (tmp_path / "other").mkdir()
        other = make_test_pki(tmp_path / "other", ca_name="Another CA")
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(_tls, port, other.ca)
        # What the runbooks tell an operator to run inside the container.
        env = {**os.environ, "BOT_HTTP_PORT": str(port), "BOT_HTTP_TLS_CERTFILE": str(pki.cert),
               "BOT_CA_FILE": str(pki.ca)}  # fmt: skip
        ready = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bot.ready"], env=env, capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert (ready.returncode, ready.stdout.strip()) == (0, "200 ready"), ready.stderr
        # Issue 10: with an ACME certificate on the proxy BOT_CA_FILE is the public trust, which lacks the
        # internal CA: BOT_HTTP_TLS_CAFILE names the CA of its own port, and is what is checked.
        split = {**env, "BOT_CA_FILE": str(other.ca), "BOT_HTTP_TLS_CAFILE": str(pki.ca)}
        ready = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bot.ready"], env=split, capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert (ready.returncode, ready.stdout.strip()) == (0, "200 ready"), ready.stderr
        wrong = {**env, "BOT_HTTP_TLS_CAFILE": str(other.ca)}
        ready = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bot.ready"], env=wrong, capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert ready.returncode == 2, (ready.stdout, ready.stderr)
        plain_env = {key: value for key, value in env.items() if key != "BOT_HTTP_TLS_CERTFILE"}
        refused = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bot.ready"], env=plain_env, capture_output=True,
            text=True, timeout=30, check=False,
        )  # fmt: skip
        # Plain HTTP to the TLS port: no HTTP answer, said in one line.
        assert refused.returncode == 2, (refused.stdout, refused.stderr)
        assert "nothing answers on http://127.0.0.1" in refused.stderr
    finally:
        server.should_exit = True
        await task


def test_without_the_files_it_serves_plain_http() -> None:
    config = http_server_config(BotSettings(**REQUIRED), _app())
    assert config.ssl_certfile is None
    assert config.ssl_keyfile is None


def test_the_two_files_go_together_and_must_exist(tmp_path) -> None:
    pki = make_test_pki(tmp_path)
    with pytest.raises(ValidationError, match="go together"):
        BotSettings(**REQUIRED, http_tls_certfile=pki.cert)
    with pytest.raises(ValidationError, match=r"BOT_HTTP_TLS_KEYFILE: .* is not a file"):
        BotSettings(**REQUIRED, http_tls_certfile=pki.cert, http_tls_keyfile=tmp_path / "missing.key")
