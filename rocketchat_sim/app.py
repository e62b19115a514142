"""Wires the simulator together: state, workspace, REST routes, DDP endpoint, webhooks, faults."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import rest
from .config import SimSettings
from .ddp import Realtime
from .faults import Faults
from .ratelimit import RateLimiter
from .rest.base import ENDPOINTS, json_response, make_route_handler
from .state import State
from .webhooks import OutgoingWebhooks, incoming_hook
from .workspace import Workspace

log = logging.getLogger("rocketchat_sim")


# Starlette tries routes in order: the message path first, the disabled-feature routes last.
_HOT_MODULES = ("chat", "authn", "rooms")


def _route_order(endpoints: list[Any]) -> list[Any]:
    def key(ep: Any) -> tuple[bool, int]:
        module = ep.handler.__module__.rsplit(".", 1)[-1]
        hot = _HOT_MODULES.index(module) if module in _HOT_MODULES else len(_HOT_MODULES)
        return (ep.handler is rest.admin.disabled, hot)

    return sorted(endpoints, key=key)


class Simulator:
    def __init__(self, config: SimSettings) -> None:
        self.config = config
        self.state = State(config.SIM_STATE_FILE, config.SIM_MAX_MESSAGES_PER_ROOM)
        self.workspace = Workspace(self.state, config)
        self.realtime = Realtime(self)
        self.workspace.realtime = self.realtime
        self.webhooks = OutgoingWebhooks(self)
        self.workspace.webhooks = self.webhooks
        self.ratelimiter = RateLimiter()
        self.faults = Faults()
        self.ready = False
        self._tasks: list[asyncio.Task[None]] = []
        self.workspace.bootstrap()
        # Before anything is served: the first start's documents and the migrations control version
        # (read from the file by the upgrade playbooks once the container is healthy).
        self.state.save()
        self.http = self._build_http()

    def _build_http(self) -> Starlette:
        _ = rest.MODULES  # importing rest registers every endpoint
        routes = [
            Route(ep.path, make_route_handler(self, ep), methods=list(ep.methods))
            for ep in _route_order(ENDPOINTS)
        ]
        routes += [
            Route("/livez", self._livez, methods=["GET"]),
            Route("/health", self._livez, methods=["GET"]),
            Route("/readyz", self._readyz, methods=["GET"]),
            Route("/hooks/{integration_id}/{token:path}", self._hook, methods=["POST", "GET"]),
        ]
        return Starlette(
            routes=routes,
            exception_handlers={404: self._not_found, 405: self._not_found},
        )

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        # ApiClass's notFound(): JSON, never an HTML page
        return json_response(404, {"success": False, "error": "Resource not found"})

    async def _livez(self, request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        if not self.ready:
            return json_response(503, {"status": "error", "checks": {"startup": "pending"}})
        return json_response(200, {"status": "ok", "checks": {"memory": "ok", "eventLoop": "ok"}})

    async def _hook(self, request: Request) -> Response:
        return await incoming_hook(self, request)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "")
        if kind == "websocket":
            if path.rstrip("/") in ("/websocket", "/sockjs/websocket"):
                await self.realtime.serve(scope, receive, send)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            return
        if self.faults.active:
            handled = await self.faults.apply_http(scope, receive, send)
            if handled:
                return
        await self.http(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start_background(self) -> None:
        self._tasks = [
            asyncio.create_task(self.state.autosave()),
            asyncio.create_task(self.realtime.heartbeat()),
        ]
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.webhooks.close()
        self.state.save()
