"""A chat user's client, as Rocket.Chat's own clients behave: REST for login and sending, one DDP
(WebSocket) connection for everything the server pushes.

Locust's custom-client pattern: every REST call, the DDP handshake and every realtime round trip
(send over REST, the bot's answer on the stream) fires one `events.request`, so each is its own line
in locust's statistics. Runs under gevent (locust patches sockets): the DDP reader is a greenlet.

Each simulated person may get a source address of its own on loopback (127.x.y.z): Rocket.Chat's
REST limiter counts per client address and route, and people use devices of their own.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.event
import gevent.queue
import requests
import websocket
from requests.adapters import HTTPAdapter

from loadtests.settings import is_loopback

REST_TIMEOUT = 15.0


class JourneyError(Exception):
    """A step of a journey went wrong in a way the statistics should show (the failure's text)."""


def _ca_verify() -> str | bool:
    return os.environ.get("LOAD_CA_FILE") or True


# A kept-alive connection idle longer than this is not reused: the servers close theirs after 4 s (the
# proxy's keepalive_timeout) or 5 s (uvicorn's), and a request sent as the server closes fails with
# "Remote end closed connection without response" though the server never saw it (the bot's own client
# does the same: bot/http_client.py). Measured as a failed chat.sendMessage in CI at load 180.
KEEPALIVE_EXPIRY = 3.0


class KeepAliveAdapter(HTTPAdapter):
    """requests adapter that drops its pooled connections after KEEPALIVE_EXPIRY seconds without use."""

    def __init__(self, **kwargs: Any) -> None:
        self._last_used = time.monotonic()
        super().__init__(**kwargs)

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        if time.monotonic() - self._last_used > KEEPALIVE_EXPIRY:
            self.poolmanager.clear()
        try:
            return super().send(request, **kwargs)
        finally:
            self._last_used = time.monotonic()


class SourceAddressAdapter(KeepAliveAdapter):
    """requests adapter that binds outgoing connections to one local address."""

    def __init__(self, source_ip: str, **kwargs: Any) -> None:
        self.source_ip = source_ip
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(*args, **kwargs)


_address_counter = itertools.count(1)


def next_source_ip(url: str) -> str | None:
    """A fresh 127.w.x.y for a new simulated person, when the target is on loopback (None otherwise).

    `w` is 100 + the locust worker's index, so the processes of one run never share an address."""
    if os.environ.get("LOAD_SOURCE_ADDRESSES", "auto") == "off" or not is_loopback(url):
        return None
    n = next(_address_counter)
    while n % 256 == 0:  # x.y.0 is avoided; every other number maps to an address of its own
        n = next(_address_counter)
    worker = int(os.environ.get("LOAD_WORKER_INDEX", "0"))
    return f"127.{100 + worker % 150}.{(n >> 8) & 255}.{n & 255}"


class Timer:
    """Fires one locust request event for the block; an exception inside marks it failed (and re-raises)."""

    def __init__(self, fire: Callable[..., None], request_type: str, name: str) -> None:
        self.fire, self.request_type, self.name = fire, request_type, name
        self.length = 0

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, gevent.GreenletExit):
            return False
        self.fire(
            request_type=self.request_type,
            name=self.name,
            response_time=(time.perf_counter() - self.started) * 1000,
            response_length=self.length,
            exception=exc,
            context={},
        )
        return False


@dataclass
class Account:
    user_id: str
    username: str
    password: str
    token: str = ""


@dataclass
class ChatClient:
    """One person's REST session and DDP connection against one Rocket.Chat."""

    base_url: str
    fire: Callable[..., None]
    source_ip: str | None = None
    session: requests.Session = field(init=False)
    account: Account | None = None
    ws: Any = None
    reader: Any = None
    messages: dict[str, gevent.queue.Queue] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _results: dict[str, gevent.event.AsyncResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session = requests.Session()
        # Only what this run names: no proxy or CA bundle from the environment (REQUESTS_CA_BUNDLE
        # would replace LOAD_CA_FILE, an HTTP(S)_PROXY would send the traffic elsewhere).
        self.session.trust_env = False
        self.session.verify = _ca_verify()
        adapter = SourceAddressAdapter(self.source_ip) if self.source_ip else KeepAliveAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    # ------------------------------------------------------------------ REST
    def rest(self, method: str, endpoint: str, *, name: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """One REST call as its own request line; a non-2xx answer or `success: false` fails it."""
        line = name or f"{method} /api/v1/{endpoint}"
        with Timer(self.fire, "REST", line) as timer:
            response = self.session.request(
                method, f"{self.base_url}/api/v1/{endpoint}", timeout=REST_TIMEOUT, **kwargs
            )
            timer.length = len(response.content)
            body = response.json() if response.content else {}
            if response.status_code >= 400 or body.get("success") is False:
                raise JourneyError(f"HTTP {response.status_code} {str(body.get('error', ''))[:80]}")
        return body

    def auth_headers(self) -> dict[str, str]:
        assert self.account is not None
        return {"X-User-Id": self.account.user_id, "X-Auth-Token": self.account.token}

    def login(self, username: str, password: str) -> Account:
        data = self.rest("POST", "login", json={"user": username, "password": password})["data"]
        self.account = Account(data["userId"], username, password, data["authToken"])
        return self.account

    def direct_room(self, username: str) -> str:
        room = self.rest("POST", "dm.create", headers=self.auth_headers(), json={"username": username})[
            "room"
        ]
        return room.get("rid") or room["_id"]

    def send(self, room_id: str, text: str) -> str:
        message_id = secrets.token_hex(8) + "l"
        self.rest(
            "POST",
            "chat.sendMessage",
            headers=self.auth_headers(),
            json={"message": {"_id": message_id, "rid": room_id, "msg": text}},
        )
        return message_id

    # ------------------------------------------------------------------ DDP
    def connect_realtime(self, room_ids: list[str]) -> None:
        """WebSocket + DDP connect + resume login + the subscriptions a client keeps, as one line."""
        assert self.account is not None
        with Timer(self.fire, "DDP", "DDP connect+login+subscribe"):
            self.ws = self._open_socket()
            self.reader = gevent.spawn(self._read)
            self._send({"msg": "connect", "version": "1", "support": ["1"]})
            self._wait("connect", REST_TIMEOUT)
            result = self._call("login", {"resume": self.account.token})
            if "error" in result:
                raise JourneyError(f"DDP login refused: {result['error'].get('reason', '')}")
            uid = self.account.user_id
            for event in ("notification", "rooms-changed", "subscriptions-changed", "message"):
                self._subscribe("stream-notify-user", f"{uid}/{event}")
            for rid in room_ids:
                self.watch_room(rid)

    def watch_room(self, room_id: str) -> None:
        self.messages.setdefault(room_id, gevent.queue.Queue())
        self._subscribe("stream-room-messages", room_id)

    def _open_socket(self) -> Any:
        parts = urlsplit(self.base_url)
        ws_url = ("wss" if parts.scheme == "https" else "ws") + f"://{parts.netloc}{parts.path}/websocket"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        sock = socket.create_connection(
            (parts.hostname, port),
            timeout=REST_TIMEOUT,
            source_address=(self.source_ip, 0) if self.source_ip else None,
        )
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=os.environ.get("LOAD_CA_FILE") or None)
            sock = context.wrap_socket(sock, server_hostname=parts.hostname)
        ws = websocket.WebSocket()
        ws.settimeout(REST_TIMEOUT)
        ws.connect(ws_url, socket=sock)
        ws.settimeout(None)
        return ws

    def _send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def _read(self) -> None:
        while True:
            try:
                raw = self.ws.recv()
            except Exception:
                return
            if not raw:
                return
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            kind = frame.get("msg")
            if kind == "ping":
                self._send({"msg": "pong", **({"id": frame["id"]} if "id" in frame else {})})
            elif kind in ("connected", "failed"):
                self._resolve("connect", frame)
            elif kind == "result":
                self._resolve(f"m:{frame.get('id')}", frame)
            elif kind == "ready":
                for sub_id in frame.get("subs", []):
                    self._resolve(f"s:{sub_id}", frame)
            elif kind == "nosub":
                self._resolve(f"s:{frame.get('id')}", frame)
            elif kind == "changed" and frame.get("collection") == "stream-room-messages":
                fields = frame.get("fields", {})
                queue = self.messages.get(fields.get("eventName", ""))
                if queue is not None:
                    for message in fields.get("args", []):
                        queue.put((time.perf_counter(), message))

    def _resolve(self, key: str, frame: dict[str, Any]) -> None:
        result = self._results.pop(key, None)
        if result is not None:
            result.set(frame)

    def _wait(self, key: str, timeout: float) -> dict[str, Any]:
        result = self._results.setdefault(key, gevent.event.AsyncResult())
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            self._results.pop(key, None)
            raise JourneyError(f"no DDP answer to {key.split(':')[0]} in {timeout:.0f} s") from None

    def _call(self, method: str, *params: Any) -> dict[str, Any]:
        mid = str(next(self._ids))
        self._results[f"m:{mid}"] = gevent.event.AsyncResult()
        self._send({"msg": "method", "method": method, "params": list(params), "id": mid})
        return self._wait(f"m:{mid}", REST_TIMEOUT)

    def _subscribe(self, name: str, event: str) -> None:
        sid = f"s{next(self._ids)}"
        self._results[f"s:{sid}"] = gevent.event.AsyncResult()
        self._send({"msg": "sub", "id": sid, "name": name, "params": [event, {"useCollection": False}]})
        frame = self._wait(f"s:{sid}", REST_TIMEOUT)
        if frame.get("msg") == "nosub":
            raise JourneyError(f"subscription {name} {event.split('/')[-1]} refused")

    # ------------------------------------------------------------------ the round trip
    def drain(self, room_id: str) -> None:
        queue = self.messages[room_id]
        while not queue.empty():
            queue.get_nowait()

    def next_from(
        self, room_id: str, username: str, timeout: float, match: re.Pattern[str] | None = None
    ) -> tuple[float, str]:
        """The next message `username` posts in the room (matching `match`, when given): (arrival, text)."""
        queue = self.messages[room_id]
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JourneyError(f"no answer from the bot in {timeout:.0f} s")
            try:
                arrived, message = queue.get(timeout=left)
            except gevent.queue.Empty:
                continue
            if (message.get("u") or {}).get("username") != username or message.get("t"):
                continue
            text = str(message.get("msg", ""))
            if match is None or match.search(text):
                return arrived, text

    def round_trip(
        self,
        room_id: str,
        text: str,
        bot_username: str,
        line: str,
        timeout: float,
        match: re.Pattern[str] | None = None,
    ) -> str:
        """Send over REST, receive the bot's answer on the stream: one line, timed send → answer."""
        self.drain(room_id)
        started = time.perf_counter()
        error: BaseException | None = None
        answer = ""
        arrived = started
        try:
            self.send(room_id, text)
            arrived, answer = self.next_from(room_id, bot_username, timeout, match)
        except JourneyError as exc:
            error = exc
            arrived = time.perf_counter()
        self.fire(
            request_type="BOT",
            name=line,
            response_time=(arrived - started) * 1000,
            response_length=len(answer),
            exception=error,
            context={},
        )
        if error is not None:
            raise error
        return answer

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # a socket that is already gone
                self.ws.close(timeout=1)
        if self.reader is not None:
            self.reader.kill(block=False)
        self.session.close()
