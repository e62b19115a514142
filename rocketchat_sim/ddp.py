"""The realtime API: DDP over WebSocket at /websocket, and the streams it publishes.

Fan-out is the hot path: a stream event is serialized and framed ONCE, then the same bytes are
written to every subscriber's transport without awaiting (uvicorn's sans-I/O websocket protocol
gives us the transport; any other server falls back to the ASGI send).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from . import auth, views
from .errors import ApiError
from .util import dumps, ejson_date, hash_token, new_id, now_ms, sha256_hex

if TYPE_CHECKING:
    from .app import Simulator

log = logging.getLogger("rocketchat_sim.ddp")

# A subscriber whose socket buffer grows past this is dropped instead of eating memory.
MAX_BUFFERED_BYTES = 16 * 1024 * 1024
_SEND_MESSAGE_KEYS = {
    "_id", "rid", "msg", "tmid", "tshow", "ts", "t", "bot", "content", "e2e",
    "e2eMentions", "customFields", "federation", "groupable", "sentByEmail",
}  # fmt: skip


def text_frame(payload: str) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    data = payload.encode()
    n = len(data)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + data


def meteor_error(error: Any, reason: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "isClientSafe": True,
        "error": error,
        "reason": reason,
        "message": f"{reason} [{error}]",
        "errorType": "Meteor.Error",
    }
    if details:
        out["details"] = details
    return out


class MethodError(Exception):
    def __init__(self, error: Any, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.payload = meteor_error(error, reason, details)


class Connection:
    def __init__(self, realtime: Realtime, send: Any, transport: Any) -> None:
        self.realtime = realtime
        self.session = new_id()
        self._send = send
        self.transport = transport
        self.connected = False
        self.user_id: str | None = None
        self.token_hash: str | None = None
        self.subs: dict[str, tuple[str, str]] = {}  # sub id → (listener key, eventName)
        self.last_seen = time.monotonic()
        self.ping_sent_at: float | None = None
        self.closed = False
        self.send_times: list[float] = []  # sendMessage rate limit window
        self.out: list[bytes] = []  # frames waiting for this loop turn's flush

    def write(self, frame: bytes, text: str) -> None:
        if self.closed:
            return
        if self.transport is not None:
            # Frames queue up and go out in one write per connection per loop turn: one syscall for
            # many messages instead of one per frame.
            if not self.out:
                self.realtime.schedule_flush(self)
            self.out.append(frame)
        else:
            self._keep(asyncio.ensure_future(self._send({"type": "websocket.send", "text": text})))

    def flush(self) -> None:
        if not self.out:
            return
        data = b"".join(self.out)
        self.out.clear()
        if self.closed or self.transport is None or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            log.warning("dropping slow websocket subscriber %s", self.session)
            self.abort()
            return
        self.transport.write(data)

    def send_obj(self, obj: dict[str, Any]) -> None:
        text = dumps(obj)
        self.write(text_frame(text) if self.transport is not None else b"", text)

    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        self._keep(asyncio.ensure_future(self._safe_close(code)))

    async def _safe_close(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": code})

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        else:
            self._keep(asyncio.ensure_future(self._safe_close(1011)))

    def _keep(self, task: asyncio.Future[Any]) -> None:
        # the loop holds tasks weakly: keep a reference until each one finishes
        self.realtime.pending.add(task)
        task.add_done_callback(self.realtime.pending.discard)


class Realtime:
    """Connections, their stream subscriptions, and the publishing side used by the workspace."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.connections: set[Connection] = set()
        # listener key → {connection: number of subscriptions on it}
        self.listeners: dict[str, dict[Connection, int]] = defaultdict(dict)
        self.my_messages: dict[Connection, int] = {}
        self.pending: set[asyncio.Future[Any]] = set()
        self._to_flush: list[Connection] = []

    def schedule_flush(self, conn: Connection) -> None:
        if not self._to_flush:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._to_flush.append(conn)

    def _flush_all(self) -> None:
        conns, self._to_flush = self._to_flush, []
        for conn in conns:
            conn.flush()

    # ------------------------------------------------------------ subscription registry
    def _listen(self, conn: Connection, key: str) -> None:
        if key == "__my_messages__":
            self.my_messages[conn] = self.my_messages.get(conn, 0) + 1
        else:
            bucket = self.listeners[key]
            bucket[conn] = bucket.get(conn, 0) + 1

    def _unlisten(self, conn: Connection, key: str) -> None:
        bucket = self.my_messages if key == "__my_messages__" else self.listeners.get(key)
        if not bucket or conn not in bucket:
            return
        bucket[conn] -= 1
        if bucket[conn] <= 0:
            del bucket[conn]
        if key != "__my_messages__" and not bucket:
            self.listeners.pop(key, None)

    def forget(self, conn: Connection) -> None:
        for key, _event in conn.subs.values():
            self._unlisten(conn, key)
        conn.subs.clear()
        self.connections.discard(conn)

    # ------------------------------------------------------------ publishing
    @staticmethod
    def _changed(collection: str, event: str, args: list[Any]) -> str:
        return dumps(
            {
                "msg": "changed",
                "collection": collection,
                "id": "id",
                "fields": {"eventName": event, "args": args},
            }
        )

    def _broadcast(self, bucket: dict[Connection, int] | None, text: str) -> None:
        if not bucket:
            return
        frame = text_frame(text)
        for conn, count in list(bucket.items()):
            for _ in range(count):
                conn.write(frame, text)

    def publish_message(self, room: dict[str, Any], msg: dict[str, Any]) -> None:
        rid = room["_id"]
        bucket = self.listeners.get(f"room:{rid}")
        if not bucket and not self.my_messages:
            return
        rendered = views.message_ddp(msg)
        if bucket:
            self._broadcast(bucket, self._changed("stream-room-messages", rid, [rendered]))
        if self.my_messages:
            variants: dict[bool, tuple[bytes, str]] = {}
            ws = self.sim.workspace
            for conn, count in list(self.my_messages.items()):
                uid = conn.user_id
                if uid is None or not ws.can_access_room(uid, room):
                    continue
                participant = (rid, uid) in self.sim.state.subscriptions
                if participant not in variants:
                    extra = {
                        "roomParticipant": participant,
                        "roomType": room["t"],
                        "roomName": room.get("name"),
                    }
                    text = self._changed("stream-room-messages", "__my_messages__", [rendered, extra])
                    variants[participant] = (text_frame(text), text)
                frame, text = variants[participant]
                for _ in range(count):
                    conn.write(frame, text)

    def message_deleted(self, room: dict[str, Any], msg: dict[str, Any]) -> None:
        event = f"{room['_id']}/deleteMessage"
        self._broadcast(
            self.listeners.get(f"notify-room:{event}"),
            self._changed("stream-notify-room", event, [{"_id": msg["_id"]}]),
        )

    def room_updated(self, room: dict[str, Any]) -> None:
        """rooms-changed "updated" to members listening for it (Rocket.Chat sends it on new messages)."""
        members = self.sim.state.room_members.get(room["_id"])
        if not members:
            return
        rendered = None
        for uid in members:
            bucket = self.listeners.get(f"user:{uid}/rooms-changed")
            if not bucket:
                continue
            if rendered is None:
                rendered = views.room_ddp(room)
            self._broadcast(
                bucket, self._changed("stream-notify-user", f"{uid}/rooms-changed", ["updated", rendered])
            )

    def user_event(self, uid: str, event: str, args: list[Any], *, kind: str = "raw") -> None:
        bucket = self.listeners.get(f"user:{uid}/{event}")
        if not bucket:
            return
        if kind == "room":
            args = [args[0], views.room_ddp(args[1])]
        elif kind == "sub":
            args = [args[0], views.ddp(args[1])]
        self._broadcast(bucket, self._changed("stream-notify-user", f"{uid}/{event}", args))

    def ephemeral(self, uid: str, rid: str, text: str) -> None:
        now = now_ms()
        msg = {
            "groupable": False,
            "u": {"_id": "rocket.cat", "username": "rocket.cat"},
            "private": True,
            "_id": new_id(),
            "rid": rid,
            "ts": ejson_date(now),
            "_updatedAt": ejson_date(now),
            "msg": text,
        }
        self.user_event(uid, "message", [msg])

    def user_logged_out(self, uid: str) -> None:
        for conn in [c for c in self.connections if c.user_id == uid]:
            conn.close(1000)

    def user_removed_from_room(self, uid: str, rid: str) -> None:
        key = f"room:{rid}"
        for conn in [c for c in self.connections if c.user_id == uid]:
            for sub_id, (lkey, _ev) in list(conn.subs.items()):
                if lkey == key:
                    self._unlisten(conn, lkey)
                    del conn.subs[sub_id]

    def is_online(self, uid: str) -> bool:
        return any(c.user_id == uid for c in self.connections)

    def drop_all(self, *, abort: bool = False) -> int:
        conns = list(self.connections)
        for conn in conns:
            if abort:
                conn.abort()
            else:
                conn.close(1001)
        return len(conns)

    # ------------------------------------------------------------ heartbeat
    async def heartbeat(self) -> None:
        interval = self.sim.config.SIM_DDP_PING_INTERVAL
        timeout = self.sim.config.SIM_DDP_PING_TIMEOUT
        tick = min(1.0, interval / 3)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.ping_sent_at is not None:
                    if now - conn.ping_sent_at > timeout:
                        log.info("closing idle DDP connection %s", conn.session)
                        conn.close(1000)
                elif now - conn.last_seen > interval:
                    conn.ping_sent_at = now
                    conn.send_obj({"msg": "ping"})

    # ------------------------------------------------------------ ASGI endpoint
    async def serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        proto = getattr(send, "__self__", None)
        transport = getattr(proto, "transport", None) if hasattr(proto, "conn") else None
        conn = Connection(self, send, transport)
        self.connections.add(conn)
        conn.send_obj({"server_id": "0"})
        try:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    break
                if event["type"] != "websocket.receive":
                    continue
                conn.last_seen = time.monotonic()
                conn.ping_sent_at = None
                text = event.get("text")
                if text is None and event.get("bytes") is not None:
                    text = event["bytes"].decode(errors="replace")
                self.handle(conn, text or "")
                if conn.closed:
                    break
        finally:
            conn.closed = True
            self.forget(conn)

    # ------------------------------------------------------------ protocol
    def handle(self, conn: Connection, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            conn.send_obj({"msg": "error", "reason": "Parse error"})
            return
        if not isinstance(frame, dict) or "msg" not in frame:
            conn.send_obj({"msg": "error", "reason": "Bad request", "offendingMessage": frame})
            return
        kind = frame["msg"]
        if not conn.connected:
            if kind != "connect":
                conn.send_obj({"msg": "error", "reason": "Must connect first", "offendingMessage": frame})
                return
            if frame.get("version") != "1" and "1" not in (frame.get("support") or []):
                conn.send_obj({"msg": "failed", "version": "1"})
                conn.close(1002)
                return
            conn.connected = True
            conn.send_obj({"msg": "connected", "session": conn.session})
            return
        if kind == "connect":
            conn.send_obj({"msg": "error", "reason": "Already connected", "offendingMessage": frame})
        elif kind == "ping":
            conn.send_obj({"msg": "pong", "id": frame["id"]} if "id" in frame else {"msg": "pong"})
        elif kind == "pong":
            pass
        elif kind == "method":
            self._method(conn, frame)
        elif kind == "sub":
            self._sub(conn, frame)
        elif kind == "unsub":
            self._unsub(conn, frame)
        else:
            conn.send_obj({"msg": "error", "reason": "Bad request", "offendingMessage": frame})

    def _method(self, conn: Connection, frame: dict[str, Any]) -> None:
        mid = frame.get("id")
        name = frame.get("method")
        params = frame.get("params") or []
        if not isinstance(mid, str) or not isinstance(name, str) or not isinstance(params, list):
            conn.send_obj({"msg": "error", "reason": "Bad request", "offendingMessage": frame})
            return
        reply: dict[str, Any] = {"msg": "result", "id": mid}
        handler = getattr(self, "m_" + name.replace("/", "_").replace("-", "_"), None)
        try:
            if handler is None:
                raise MethodError(404, f"Method '{name}' not found")
            result = handler(conn, params)
            if result is not _NO_RESULT:
                reply["result"] = result
        except MethodError as exc:
            reply["error"] = exc.payload
        except ApiError as exc:
            code = exc.body.get("errorType") or "error"
            reply["error"] = meteor_error(code, _reason(exc.body.get("error", "")), exc.body.get("details"))
        except Exception:
            log.exception("DDP method %s failed", name)
            reply["error"] = meteor_error(500, "Internal server error")
        conn.send_obj(reply)
        conn.send_obj({"msg": "updated", "methods": [mid]})

    # ---- methods (m_<name>, "/" and "-" mapped to "_")
    def _user(self, conn: Connection) -> dict[str, Any]:
        user = self.sim.state.users.get(conn.user_id) if conn.user_id else None
        if user is None:
            raise MethodError("error-invalid-user", "Invalid user")
        return user

    def m_login(self, conn: Connection, params: list[Any]) -> dict[str, Any]:
        opts = params[0] if params and isinstance(params[0], dict) else {}
        state, ws = self.sim.state, self.sim.workspace
        expiration = int(ws.settings.get("Accounts_LoginExpiration", 90))
        if "resume" in opts:
            hashed = hash_token(str(opts["resume"]))
            uid = state.tokens.get(hashed)
            user = state.users.get(uid) if uid else None
            record = auth.find_token(user, hashed) if user else None
            if user is None or record is None or not user.get("active", True):
                raise MethodError(403, "You've been logged out by the server. Please log in again.")
            if (
                record.get("type") != "personalAccessToken"
                and auth.token_expires_ms(record, expiration) < now_ms()
            ):
                raise MethodError(403, "Your session has expired. Please log in again.")
            token, kind = str(opts["resume"]), "resume"
        else:
            selector = opts.get("user")
            password = opts.get("password")
            user = None
            if isinstance(selector, dict):
                if selector.get("username"):
                    user = ws.user_by_username(str(selector["username"]))
                elif selector.get("email"):
                    user = ws.user_by_login(str(selector["email"]))
            elif isinstance(selector, str):
                user = ws.user_by_login(selector)
            if user is None:
                raise MethodError(403, "User not found")
            if isinstance(password, dict) and password.get("algorithm") == "sha-256":
                digest = password.get("digest")
            elif isinstance(password, str):
                digest = sha256_hex(password)
            else:
                raise MethodError(400, "Match failed")
            if not auth.check_password_digest(user, str(digest)):
                raise MethodError(403, "Incorrect password")
            if not user.get("active", True):
                raise MethodError("error-user-is-not-activated", "User is not activated")
            token, record = auth.issue_login_token(state, user)
            kind = "password"
        conn.user_id = user["_id"]
        conn.token_hash = record["hashedToken"]
        user["lastLogin"] = now_ms()
        expires = record.get("when", now_ms()) + expiration * 86_400_000
        return {"id": user["_id"], "token": token, "tokenExpires": ejson_date(expires), "type": kind}

    def m_logout(self, conn: Connection, params: list[Any]) -> object:
        conn.user_id = None
        conn.token_hash = None
        return _NO_RESULT

    def m_sendMessage(self, conn: Connection, params: list[Any]) -> object:
        user = self._user(conn)
        message = params[0] if params else None
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("rid"), str)
            or set(message) - _SEND_MESSAGE_KEYS
        ):
            raise MethodError(400, "Match failed")
        ws = self.sim.workspace
        if not ws.has_permission(user["_id"], "send-many-messages"):
            now = time.monotonic()
            conn.send_times = [t for t in conn.send_times if now - t < 1.0]
            if len(conn.send_times) >= 5:
                wait = max(1, int(1 - (now - conn.send_times[0])) + 1)
                raise MethodError(
                    "too-many-requests",
                    "Error, too many requests. Please slow down. "
                    f"You must wait {wait} seconds before trying again.",
                    {"timeToReset": int((1 - (now - conn.send_times[0])) * 1000)},
                )
            conn.send_times.append(now)
        room = self.sim.state.rooms.get(message["rid"])
        if room is None or not ws.can_access_room(user["_id"], room):
            raise MethodError("error-not-allowed", "Not allowed", {"method": "sendMessage"})
        fields = {
            k: message[k]
            for k in ("_id", "msg", "tmid", "tshow", "customFields", "bot", "groupable")
            if k in message
        }
        if fields.get("_id") in self.sim.state.message_index:
            # Rocket.Chat's sendMessage stores nothing and returns undefined for a known `_id`: a result
            # frame without `result`, no error (rest/chat.py KNOWN_ID_ERROR says what REST answers).
            return _NO_RESULT
        try:
            saved = ws.send_message(user, room, fields)
        except ApiError as exc:
            if exc.body.get("errorType") in ("error-not-allowed", "restricted-workspace"):
                raise
            # Rocket.Chat swallows these: the result has no `result`, the user gets an ephemeral notice.
            self.ephemeral(user["_id"], room["_id"], _reason(exc.body.get("error", "")))
            return _NO_RESULT
        return views.message_ddp(saved)

    def m_updateMessage(self, conn: Connection, params: list[Any]) -> object:
        user = self._user(conn)
        message = params[0] if params and isinstance(params[0], dict) else {}
        msg = self.sim.state.message_index.get(message.get("_id", ""))
        if msg is None or not isinstance(message.get("msg"), str):
            raise MethodError("error-invalid-message", "Invalid message")
        self.sim.workspace.update_message(user, msg, message["msg"])
        return _NO_RESULT

    def m_deleteMessage(self, conn: Connection, params: list[Any]) -> object:
        user = self._user(conn)
        ref = params[0] if params and isinstance(params[0], dict) else {}
        msg = self.sim.state.message_index.get(ref.get("_id", ""))
        if msg is None:
            raise MethodError("error-invalid-message", "Invalid message")
        self.sim.workspace.delete_message(user, msg)
        return _NO_RESULT

    def _since(self, params: list[Any]) -> int | None:
        if params and isinstance(params[0], dict) and "$date" in params[0]:
            return int(params[0]["$date"])
        return None

    def m_rooms_get(self, conn: Connection, params: list[Any]) -> Any:
        user = self._user(conn)
        rooms = [self.sim.state.rooms[r] for r in sorted(self.sim.state.user_rooms.get(user["_id"], ()))]
        since = self._since(params)
        if since is None:
            return [views.room_ddp(r) for r in rooms]
        return {"update": [views.room_ddp(r) for r in rooms if r["_updatedAt"] > since], "remove": []}

    def m_subscriptions_get(self, conn: Connection, params: list[Any]) -> Any:
        user = self._user(conn)
        subs = [
            self.sim.state.subscriptions[(r, user["_id"])]
            for r in sorted(self.sim.state.user_rooms.get(user["_id"], ()))
        ]
        since = self._since(params)
        if since is None:
            return [views.ddp(s) for s in subs]
        return {"update": [views.ddp(s) for s in subs if s["_updatedAt"] > since], "remove": []}

    def m_createDirectMessage(self, conn: Connection, params: list[Any]) -> Any:
        user = self._user(conn)
        others = []
        for name in params:
            other = self.sim.workspace.user_by_username(str(name))
            if other is None:
                raise MethodError("error-invalid-user", "Invalid user", {"method": "createDirectMessage"})
            others.append(other)
        room = self.sim.workspace.direct_room([user, *others], user)
        return {"t": "d", "rid": room["_id"], "_id": room["_id"], "usernames": room["usernames"]}

    def m_getRoomIdByNameOrId(self, conn: Connection, params: list[Any]) -> Any:
        user = self._user(conn)
        room = self.sim.workspace.room_by_name_or_id(str(params[0])) if params else None
        if room is None or not self.sim.workspace.can_access_room(user["_id"], room):
            raise MethodError("error-not-allowed", "Not allowed", {"method": "getRoomIdByNameOrId"})
        return room["_id"]

    def m_joinRoom(self, conn: Connection, params: list[Any]) -> Any:
        user = self._user(conn)
        room = self.sim.state.rooms.get(str(params[0])) if params else None
        if room is None or room["t"] != "c":
            raise MethodError("error-invalid-room", "Invalid room", {"method": "joinRoom"})
        if (room["_id"], user["_id"]) not in self.sim.state.subscriptions:
            self.sim.workspace.add_member(room, user)
            self.sim.workspace.send_message(user, room, {"msg": user["username"]}, system_type="uj")
        return True

    def m_setReaction(self, conn: Connection, params: list[Any]) -> object:
        user = self._user(conn)
        if len(params) < 2:
            raise MethodError(400, "Match failed")
        emoji, msg_id = str(params[0]), str(params[1])
        should_react = params[2] if len(params) > 2 else None
        msg = self.sim.state.message_index.get(msg_id)
        if msg is None:
            raise MethodError("error-not-allowed", "Not allowed", {"method": "setReaction"})
        try:
            self.sim.workspace.set_reaction(user, msg, emoji, should_react)
        except ApiError as exc:
            raise MethodError(exc.body.get("errorType") or "error-not-allowed", "Not allowed") from None
        return _NO_RESULT

    def m_stream_notify_room(self, conn: Connection, params: list[Any]) -> object:
        user = self._user(conn)
        if len(params) < 2 or not isinstance(params[0], str):
            raise MethodError(400, "Match failed")
        event = params[0]
        rid, _, kind = event.partition("/")
        room = self.sim.state.rooms.get(rid)
        if (
            room is None
            or kind not in ("user-activity", "typing")
            or not self.sim.workspace.can_access_room(user["_id"], room)
        ):
            raise MethodError("not-allowed", "Not allowed")
        if params[1] != user["username"]:
            raise MethodError("not-allowed", "Not allowed")
        self._broadcast(
            self.listeners.get(f"notify-room:{event}"), self._changed("stream-notify-room", event, params[1:])
        )
        return _NO_RESULT

    # ---- subscriptions
    def _sub(self, conn: Connection, frame: dict[str, Any]) -> None:
        sub_id = frame.get("id")
        name = frame.get("name")
        params = frame.get("params") or []
        if not isinstance(sub_id, str) or not isinstance(name, str) or not isinstance(params, list):
            conn.send_obj({"msg": "error", "reason": "Bad request", "offendingMessage": frame})
            return
        event = params[0] if params and isinstance(params[0], str) else ""
        opt = params[1] if len(params) > 1 else False
        use_collection = (
            opt if isinstance(opt, bool) else bool(isinstance(opt, dict) and opt.get("useCollection"))
        )
        if name not in ("stream-room-messages", "stream-notify-user", "stream-notify-room"):
            conn.send_obj(
                {"msg": "nosub", "id": sub_id, "error": meteor_error(404, f"Subscription '{name}' not found")}
            )
            return
        if not event:
            conn.send_obj(
                {
                    "msg": "nosub",
                    "id": sub_id,
                    "error": meteor_error("invalid-event-name", "Invalid event name"),
                }
            )
            return
        key = self._listener_key(conn, name, event)
        if key is None:
            conn.send_obj({"msg": "nosub", "id": sub_id, "error": meteor_error("not-allowed", "Not allowed")})
            return
        if sub_id in conn.subs:
            self._unlisten(conn, conn.subs[sub_id][0])
        conn.subs[sub_id] = (key, event)
        self._listen(conn, key)
        if use_collection:
            conn.send_obj(
                {
                    "msg": "added",
                    "collection": f"stream-{name.removeprefix('stream-')}",
                    "id": "id",
                    "fields": {"eventName": event},
                }
            )
        conn.send_obj({"msg": "ready", "subs": [sub_id]})

    def _listener_key(self, conn: Connection, name: str, event: str) -> str | None:
        uid = conn.user_id
        ws = self.sim.workspace
        if name == "stream-room-messages":
            if event == "__my_messages__":
                return "__my_messages__"
            room = self.sim.state.rooms.get(event)
            if room is None or not ws.can_access_room(uid, room):
                return None
            return f"room:{event}"
        if name == "stream-notify-user":
            if uid is None or not event.startswith(f"{uid}/"):
                return None
            return f"user:{event}"
        rid = event.split("/", 1)[0]
        room = self.sim.state.rooms.get(rid)
        if room is None or not ws.can_access_room(uid, room):
            return None
        return f"notify-room:{event}"

    def _unsub(self, conn: Connection, frame: dict[str, Any]) -> None:
        sub_id = frame.get("id")
        if isinstance(sub_id, str) and sub_id in conn.subs:
            self._unlisten(conn, conn.subs.pop(sub_id)[0])
        conn.send_obj({"msg": "nosub", "id": sub_id})


_NO_RESULT = object()


def _reason(error: str) -> str:
    """'Reason [code]' → 'Reason' (REST errors re-used as Meteor errors)."""
    if error.endswith("]") and " [" in error:
        return error.rsplit(" [", 1)[0]
    return error
