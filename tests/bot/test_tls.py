"""BOT_CA_FILE: the ERP client (HTTPS) and the DDP client (WSS) trust a private CA, and only it."""

import asyncio
import datetime
import ipaddress
import json
import ssl

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from plugins.processes import free_port
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from bot.erp_client import ErpClient, ErpUnavailable
from bot.transport.ddp import DdpClient

pytestmark = pytest.mark.integration


def make_ca_and_server_cert(directory):
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Photomatrix test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


async def positions(request):
    return JSONResponse({"items": [{"code": "ENG", "name": "Инженер"}]})


async def websocket(ws):
    await ws.accept()
    while True:
        frame = json.loads(await ws.receive_text())
        if frame.get("msg") == "connect":
            await ws.send_text(json.dumps({"msg": "connected", "session": "s1"}))


@pytest.fixture
async def tls_server(tmp_path):
    paths = make_ca_and_server_cert(tmp_path)
    port = free_port()
    app = Starlette(
        routes=[Route("/api/bot/v1/positions", positions), WebSocketRoute("/websocket", websocket)]
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(paths["cert"]),
            ssl_keyfile=str(paths["key"]),
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(250):  # uvicorn offers no "started" event to await
        if server.started:
            break
        await asyncio.sleep(0.02)
    yield port, paths["ca"]
    server.should_exit = True
    await task


async def test_erp_client_trusts_the_private_ca_only(tls_server):
    port, ca = tls_server
    trusting = ErpClient(f"https://127.0.0.1:{port}/api/bot/v1", "k", ca_file=str(ca), retries=0)
    assert (await trusting.positions())[0]["code"] == "ENG"
    await trusting.aclose()
    default = ErpClient(f"https://127.0.0.1:{port}/api/bot/v1", "k", retries=0)
    with pytest.raises((ErpUnavailable, httpx.HTTPError)):
        await default.positions()
    await default.aclose()


async def test_ddp_client_over_wss_with_the_private_ca(tls_server):
    port, ca = tls_server
    client = DdpClient(
        f"wss://127.0.0.1:{port}/websocket", ssl_context=ssl.create_default_context(cafile=str(ca))
    )
    await client.connect()
    await client.close()
    untrusting = DdpClient(f"wss://127.0.0.1:{port}/websocket")
    with pytest.raises(ssl.SSLError):
        await untrusting.connect()
