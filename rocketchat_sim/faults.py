"""Fault injection for reliability tests, driven over a control API on a loopback-only port.

POST /faults/drop-websockets  {"abort": false}        close (or abort) every DDP connection
POST /faults/refuse           {"seconds": 5}          stop listening, cut open connections
POST /faults/delay            {"ms": 500, "path": ""} delay HTTP responses (under a path prefix)
POST /faults/error            {"path": "/api/v1/chat.postMessage", "status": 503, "count": null}
POST /faults/reset                                    clear delays and errors
GET  /faults                                          what is active
POST /state/save                                      write the state file now
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    import uvicorn

    from .app import Simulator

log = logging.getLogger("rocketchat_sim.faults")

_ERROR_BODIES = {
    500: {"success": False, "error": "Internal server error"},
    503: {"success": False, "error": "Service Unavailable"},
}


@dataclass
class ErrorRule:
    path: str
    status: int
    remaining: int | None = None


@dataclass
class Faults:
    delay_ms: int = 0
    delay_path: str = ""
    errors: list[ErrorRule] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.delay_ms > 0 or bool(self.errors)

    def describe(self) -> dict[str, Any]:
        return {
            "delay": {"ms": self.delay_ms, "path": self.delay_path},
            "errors": [{"path": e.path, "status": e.status, "remaining": e.remaining} for e in self.errors],
        }

    def reset(self) -> None:
        self.delay_ms = 0
        self.delay_path = ""
        self.errors.clear()

    async def apply_http(self, scope: dict[str, Any], receive: Any, send: Any) -> bool:
        """Delay and/or answer an error instead of the app; True when the request was answered here."""
        path = scope.get("path", "")
        if self.delay_ms and path.startswith(self.delay_path):
            await asyncio.sleep(self.delay_ms / 1000)
        for rule in self.errors:
            if path.startswith(rule.path):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self.errors.remove(rule)
                body = _ERROR_BODIES.get(rule.status, {"success": False, "error": "Internal server error"})
                response = JSONResponse(body, status_code=rule.status)
                await response(scope, receive, send)
                return True
        return False


class ListenerControl:
    """Close and reopen the main server's listening sockets (uvicorn internals, kept in one place)."""

    def __init__(self, server: uvicorn.Server, host: str, port: int) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.refusing = False

    async def refuse(self, seconds: float) -> None:
        if self.refusing:
            return
        self.refusing = True
        for srv in self.server.servers:
            srv.close()
        # cut the connections that are open, as a crashing server would
        for proto in list(self.server.server_state.connections):
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.abort()
        asyncio.get_running_loop().call_later(seconds, lambda: asyncio.ensure_future(self._reopen()))

    async def _reopen(self) -> None:
        config = self.server.config
        factory = functools.partial(
            config.http_protocol_class,
            config=config,
            server_state=self.server.server_state,
            app_state=self.server.lifespan.state,
        )
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(config.backlog)
        sock.setblocking(False)
        srv = await asyncio.get_running_loop().create_server(factory, sock=sock, backlog=config.backlog)
        self.server.servers = [srv]
        self.refusing = False
        log.warning("listening again on %s:%s", self.host, self.port)


def control_app(sim: Simulator, listeners: ListenerControl | None) -> Starlette:
    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            data = await request.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def drop(request: Request) -> JSONResponse:
        data = await body(request)
        return JSONResponse({"dropped": sim.realtime.drop_all(abort=bool(data.get("abort")))})

    async def refuse(request: Request) -> JSONResponse:
        data = await body(request)
        seconds = data.get("seconds", 5)
        if not isinstance(seconds, int | float) or seconds <= 0 or seconds > 600:
            return JSONResponse({"error": "seconds must be a number in (0, 600]"}, status_code=400)
        if listeners is None:
            return JSONResponse({"error": "listener control unavailable"}, status_code=409)
        sim.realtime.drop_all(abort=True)
        await listeners.refuse(float(seconds))
        return JSONResponse({"refusing_for": seconds})

    async def delay(request: Request) -> JSONResponse:
        data = await body(request)
        ms = data.get("ms", 0)
        if not isinstance(ms, int) or ms < 0 or ms > 120_000:
            return JSONResponse({"error": "ms must be an integer in [0, 120000]"}, status_code=400)
        sim.faults.delay_ms = ms
        sim.faults.delay_path = str(data.get("path", ""))
        return JSONResponse(sim.faults.describe())

    async def error(request: Request) -> JSONResponse:
        data = await body(request)
        status = data.get("status", 500)
        count = data.get("count")
        if not isinstance(status, int) or not 500 <= status <= 599:
            return JSONResponse({"error": "status must be a 5xx integer"}, status_code=400)
        if count is not None and (not isinstance(count, int) or count <= 0):
            return JSONResponse({"error": "count must be a positive integer or null"}, status_code=400)
        sim.faults.errors.append(ErrorRule(str(data.get("path", "/")), status, count))
        return JSONResponse(sim.faults.describe())

    async def reset(request: Request) -> JSONResponse:
        sim.faults.reset()
        return JSONResponse(sim.faults.describe())

    async def show(request: Request) -> JSONResponse:
        return JSONResponse(sim.faults.describe())

    async def save(request: Request) -> JSONResponse:
        sim.state.save()
        return JSONResponse({"saved": sim.state.path is not None})

    return Starlette(
        routes=[
            Route("/faults/drop-websockets", drop, methods=["POST"]),
            Route("/faults/refuse", refuse, methods=["POST"]),
            Route("/faults/delay", delay, methods=["POST"]),
            Route("/faults/error", error, methods=["POST"]),
            Route("/faults/reset", reset, methods=["POST"]),
            Route("/faults", show, methods=["GET"]),
            Route("/state/save", save, methods=["POST"]),
        ]
    )
