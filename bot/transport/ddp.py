"""A small DDP client over WebSocket (`websockets`): connect, login (resume), method calls, subscriptions.

Written here instead of wrapping rocketchat-async, which is unmaintained, has no reconnect and ignores
refused subscriptions. This client only speaks the protocol; reconnecting is the realtime adapter's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

log = logging.getLogger("bot.ddp")

ChangedHandler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class DdpError(Exception):
    def __init__(self, error: Any) -> None:
        reason = error.get("reason") or error.get("message") if isinstance(error, dict) else error
        super().__init__(f"DDP error: {reason}")
        self.error = error


class DdpClosed(Exception):
    pass


class DdpClient:
    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0) -> None:
        self.url, self.ssl_context, self.timeout = url, ssl_context, timeout
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.on_changed: ChangedHandler | None = None
        self.closed = asyncio.Event()

    async def connect(self) -> None:
        kwargs: dict[str, Any] = {
            "open_timeout": self.timeout,
            "ping_interval": 20,
            "ping_timeout": 20,
            "max_size": 8 * 1024 * 1024,
        }
        if self.url.startswith("wss://"):
            kwargs["ssl"] = self.ssl_context or ssl.create_default_context()
        self._ws = await websockets.connect(self.url, **kwargs)
        await self._send({"msg": "connect", "version": "1", "support": ["1"]})
        # Wait for `connected`; the server may first send a frame without `msg` (server_id).
        async with asyncio.timeout(self.timeout):
            while True:
                frame = json.loads(await self._ws.recv())
                if frame.get("msg") == "connected":
                    break
                if frame.get("msg") == "failed":
                    raise DdpError({"reason": f"DDP version refused: {frame.get('version')}"})
        self._reader = asyncio.create_task(self._read(), name="ddp-reader")

    async def _send(self, frame: dict[str, Any]) -> None:
        if self._ws is None:
            raise DdpClosed("not connected")
        try:
            await self._ws.send(json.dumps(frame))
        except websockets.ConnectionClosed as exc:
            raise DdpClosed(str(exc)) from None

    def _next_id(self) -> str:
        return str(next(self._ids))

    async def call(self, method: str, *params: Any) -> Any:
        ident = self._next_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            await self._send({"msg": "method", "method": method, "params": list(params), "id": ident})
            async with asyncio.timeout(self.timeout):
                return await future
        finally:
            self._pending.pop(ident, None)

    async def subscribe(self, name: str, *params: Any) -> str:
        ident = self._next_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            await self._send({"msg": "sub", "id": ident, "name": name, "params": list(params)})
            async with asyncio.timeout(self.timeout):
                await future
        finally:
            self._pending.pop(ident, None)
        return ident

    async def login_resume(self, token: str) -> str:
        result = await self.call("login", {"resume": token})
        return str(result["id"])

    async def _read(self) -> None:
        if self._ws is None:
            return
        try:
            async for raw in self._ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue
                await self._dispatch(frame)
        except websockets.ConnectionClosed:
            pass
        except Exception:
            log.exception("ddp reader failed")
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DdpClosed("connection closed"))
            self.closed.set()

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("msg")
        if kind == "ping":
            pong: dict[str, Any] = {"msg": "pong"}
            if "id" in frame:
                pong["id"] = frame["id"]
            with contextlib.suppress(DdpClosed):
                await self._send(pong)
        elif kind == "result":
            future = self._pending.get(str(frame.get("id")))
            if future and not future.done():
                if "error" in frame:
                    future.set_exception(DdpError(frame["error"]))
                else:
                    future.set_result(frame.get("result"))
        elif kind == "ready":
            for sub in frame.get("subs", []):
                future = self._pending.get(str(sub))
                if future and not future.done():
                    future.set_result(None)
        elif kind == "nosub":
            future = self._pending.get(str(frame.get("id")))
            if future and not future.done():
                future.set_exception(DdpError(frame.get("error") or {"reason": "subscription refused"}))
            elif future is None:
                log.warning("subscription ended by the server", extra={"sub": frame.get("id")})
                await self.close()  # a silently lost stream must not go unnoticed: reconnect
        elif kind == "changed" and self.on_changed is not None:
            outcome = self.on_changed(str(frame.get("collection")), frame.get("fields") or {})
            if asyncio.iscoroutine(outcome):
                await outcome
        elif kind == "error":
            log.warning("ddp error frame", extra={"reason": str(frame.get("reason"))[:200]})

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None and self._reader is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._reader), timeout=5)
        self.closed.set()
