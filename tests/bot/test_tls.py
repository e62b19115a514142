"""BOT_CA_FILE: the ERP client (HTTPS) and the DDP client (WSS) trust a private CA, and only it."""

import asyncio
import json
import ssl

import httpx
import pytest
import uvicorn
from plugins.pki import make_test_pki
from plugins.processes import free_port
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from bot.erp_client import ErpClient, ErpUnavailable
from bot.transport.ddp import DdpClient

pytestmark = pytest.mark.integration


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
    pki = make_test_pki(tmp_path)
    port = free_port()
    app = Starlette(
        routes=[Route("/api/bot/v1/positions", positions), WebSocketRoute("/websocket", websocket)]
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(pki.cert),
            ssl_keyfile=str(pki.key),
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(250):  # uvicorn offers no "started" event to await
        if server.started:
            break
        await asyncio.sleep(0.02)
    yield port, pki.ca
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
