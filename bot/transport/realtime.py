"""Realtime adapter: receive on the `__my_messages__` stream over DDP, act through REST.

Reconnects with exponential backoff and jitter, resubscribes, then catches up on what was missed from
REST history since the last seen message time. Messages are deduplicated by id in the router's store, so
the overlap between catch-up and the live stream (and Rocket.Chat re-sending edited messages) is harmless.

The last seen time stored for the next catch-up (by this leader or the standby taking over) never passes
a message still being handled: one that was in hand when the leader died is found again in history, and
the router handles it again (at least once; its replies are posted once: bot/core/router.py). A message
another live replica has in hand is tried again a little later, until that one finished or died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from datetime import UTC, datetime
from typing import Any

from bot import metrics
from bot.core.ports import Identity, IncomingMessage
from bot.core.router import BUSY, Router
from bot.store import Store
from bot.transport.ddp import DdpClient, DdpError
from bot.transport.rest import RocketChatRest

log = logging.getLogger("bot.realtime")
LAST_SEEN_KEY = "realtime.last_seen_ts"
CATCH_UP_SLACK_SECONDS = 5.0
LAST_SEEN_PERSIST_SECONDS = 1.0
BUSY_RETRY_SECONDS = 2.0
BUSY_RETRY_MAX = 60  # two minutes: longer than any lease (a dead holder's claims end with its lease)


def message_time(value: Any) -> float:
    """EJSON `{"$date": ms}` on the stream, ISO 8601 strings from REST; seconds since the epoch."""
    if isinstance(value, dict) and "$date" in value:
        return float(value["$date"]) / 1000
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    if isinstance(value, int | float):
        return float(value) / 1000
    return 0.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def to_incoming(
    message: dict[str, Any], room_type: str, bot_user_id: str, room_name: str = ""
) -> IncomingMessage | None:
    user = message.get("u") or {}
    if not message.get("_id") or not message.get("rid") or not user.get("_id"):
        return None
    mentions = message.get("mentions") or []
    return IncomingMessage(
        message_id=str(message["_id"]),
        room_id=str(message["rid"]),
        room_type=room_type,
        text=str(message.get("msg") or ""),
        user_id=str(user["_id"]),
        username=str(user.get("username") or ""),
        ts=message_time(message.get("ts")),
        edited=bool(message.get("editedAt")),
        from_bot=bool(message.get("bot")),
        system=bool(message.get("t")),
        mentions_bot=any(isinstance(m, dict) and m.get("_id") == bot_user_id for m in mentions),
        room_name=room_name if room_type in ("c", "p") else "",
    )


class RealtimeTransport:
    def __init__(
        self,
        *,
        ws_url: str,
        rest: RocketChatRest,
        router: Router,
        store: Store,
        identity: Identity,
        ssl_context: ssl.SSLContext | None = None,
        reconnect_max_seconds: float = 30.0,
    ) -> None:
        self.ws_url, self.rest, self.router, self.store, self.identity = ws_url, rest, router, store, identity
        self.ssl_context, self.reconnect_max = ssl_context, reconnect_max_seconds
        self.connected = False
        self.last_seen = 0.0
        self._last_persisted = 0.0
        self._client: DdpClient | None = None
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._in_hand: dict[str, float] = {}  # message id -> its time, from dispatch until handled
        self._busy_tries: dict[str, int] = {}
        self._retries: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        stored = await self.store.get_value(LAST_SEEN_KEY)
        # First start ever: the backlog before the bot existed is not ours to answer.
        self.last_seen = float(stored) if stored else time.time()
        if not stored:
            await self.store.set_value(LAST_SEEN_KEY, repr(self.last_seen))
        attempt = 0
        while not self._stopping.is_set():
            try:
                await self._session()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "realtime connection failed", extra={"reason": f"{type(exc).__name__}: {exc}"[:200]}
                )
            finally:
                self.connected = False
                metrics.REALTIME_CONNECTED.set(0)
            if self._stopping.is_set():
                break
            delay = random.uniform(0.5, 1.0) * min(self.reconnect_max, 0.5 * 2**attempt)  # noqa: S311  # nosec B311
            attempt += 1
            metrics.RECONNECTS.inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def stop(self) -> None:
        self._stopping.set()
        if self._client is not None:
            await self._client.close()
        for retry in list(self._retries):
            retry.cancel()
        tails = list(self._tails.values())
        if tails:
            await asyncio.wait(tails, timeout=10)
        await self._persist_last_seen(force=True)

    async def _session(self) -> None:
        client = DdpClient(self.ws_url, ssl_context=self.ssl_context)
        self._client = client
        client.on_changed = self._on_changed
        await client.connect()
        try:
            if self.rest.token is None:
                await self.rest.login()
            try:
                user_id = await client.login_resume(self.rest.token or "")
            except DdpError:
                if not self.rest.can_login:
                    raise  # a revoked personal access token: nothing to renew it with
                log.info("login token refused by the stream; logging in again")
                await self.rest.login()  # the kept login token expired or was revoked
                user_id = await client.login_resume(self.rest.token or "")
            if self.identity.user_id and user_id != self.identity.user_id:
                log.warning("stream login is another user than REST", extra={"stream_user": user_id})
            await client.subscribe(
                "stream-room-messages", "__my_messages__", {"useCollection": False, "args": []}
            )
            self.connected = True
            metrics.REALTIME_CONNECTED.set(1)
            log.info("realtime connected")
            await self._catch_up()
            await client.closed.wait()
        finally:
            await client.close()
        log.info("realtime disconnected")

    async def _on_changed(self, collection: str, fields: dict[str, Any]) -> None:
        if collection != "stream-room-messages" or fields.get("eventName") != "__my_messages__":
            return
        args = fields.get("args") or []
        if not args or not isinstance(args[0], dict):
            return
        meta = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
        if meta.get("roomParticipant") is False:
            # __my_messages__ also carries public channels the bot may read but is not in (it left or was
            # removed): not its conversation, and answering there would make it join again.
            return
        room_type, room_name = str(meta.get("roomType") or ""), str(meta.get("roomName") or "")
        incoming = to_incoming(args[0], room_type, self.identity.user_id, room_name)
        if incoming is not None:
            self.dispatch(incoming)

    def dispatch(self, msg: IncomingMessage) -> asyncio.Task[None]:
        """Handle without blocking the reader; one user's messages run in the order they arrived."""
        previous = self._tails.get(msg.user_id)
        self._in_hand.setdefault(msg.message_id, msg.ts)
        task = asyncio.create_task(self._handle_after(previous, msg))
        self._tails[msg.user_id] = task

        def _forget(done: asyncio.Task[None], user_id: str = msg.user_id) -> None:
            if self._tails.get(user_id) is done:
                del self._tails[user_id]

        task.add_done_callback(_forget)
        return task

    async def _handle_after(self, previous: asyncio.Task[None] | None, msg: IncomingMessage) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        outcome = None
        try:
            outcome = await self.router.handle(msg)
        except Exception:
            log.exception("message handling failed")
        if outcome == BUSY and self._retry_later(msg):
            return  # still in hand: the stored last seen time stays before it
        self._in_hand.pop(msg.message_id, None)
        self._busy_tries.pop(msg.message_id, None)
        if msg.ts > self.last_seen:
            self.last_seen = msg.ts
        await self._persist_last_seen()

    def _retry_later(self, msg: IncomingMessage) -> bool:
        tries = self._busy_tries.get(msg.message_id, 0) + 1
        if tries > BUSY_RETRY_MAX or self._stopping.is_set():
            return False
        self._busy_tries[msg.message_id] = tries

        async def again() -> None:
            await asyncio.sleep(BUSY_RETRY_SECONDS)
            self.dispatch(msg)

        task = asyncio.create_task(again())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)
        return True

    def watermark(self) -> float:
        """The time to store as last seen: the last handled message's, but before any still in hand."""
        return min([self.last_seen, *(ts - 0.001 for ts in self._in_hand.values() if ts > 0)])

    async def _persist_last_seen(self, force: bool = False) -> None:
        # At most once a second: catch-up re-reads a slack window and dedupe absorbs the overlap.
        now = time.monotonic()
        if not force and now - self._last_persisted < LAST_SEEN_PERSIST_SECONDS:
            return
        self._last_persisted = now
        with contextlib.suppress(Exception):
            await self.store.set_value(LAST_SEEN_KEY, repr(self.watermark()))

    async def _catch_up(self) -> None:
        """Replay what arrived while the stream was down, oldest first."""
        since = iso(self.last_seen - CATCH_UP_SLACK_SECONDS)
        try:
            rooms = await self.rest.rooms_updated_since(since)
            missed: list[IncomingMessage] = []
            for room in rooms:
                for message in await self.rest.history(room, since):
                    room_type, room_name = str(room.get("t") or ""), str(room.get("name") or "")
                    incoming = to_incoming(message, room_type, self.identity.user_id, room_name)
                    if incoming is not None and incoming.user_id != self.identity.user_id:
                        missed.append(incoming)
        except Exception as exc:
            log.warning("catch-up failed", extra={"reason": f"{type(exc).__name__}: {exc}"[:200]})
            return
        missed.sort(key=lambda m: m.ts)
        for msg in missed:
            metrics.CAUGHT_UP.inc()
            self.dispatch(msg)
        if missed:
            log.info("caught up", extra={"messages": len(missed)})
