"""The Rocket.Chat outgoing-webhook route refuses oversized bodies before handing anything to the router."""

import httpx
import pytest
from starlette.applications import Starlette

from bot.transport.webhook import MAX_BODY_BYTES, webhook_routes

pytestmark = pytest.mark.unit
PATH = "/rocketchat/outgoing"


class RouterThatMustNotRun:
    calls = 0

    async def handle(self, incoming):  # type: ignore[no-untyped-def]
        self.calls += 1
        return None


async def test_oversized_webhook_bodies_are_413_by_length_and_while_streaming():
    router = RouterThatMustNotRun()
    app = Starlette(routes=webhook_routes(PATH, "secret-token", router))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http:
        declared = await http.post(PATH, content=b"x" * (MAX_BODY_BYTES + 1))

        async def chunks():
            for _ in range(MAX_BODY_BYTES // 1024 + 2):
                yield b" " * 1024

        streamed = await http.post(PATH, content=chunks())  # no Content-Length
        small = await http.post(PATH, json={"token": "wrong"})
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert small.status_code == 403  # a body under the limit is read and judged on its token
    assert router.calls == 0
