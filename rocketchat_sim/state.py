"""The workspace's data in memory, with optional JSON persistence (atomic replace of one file).

Documents are plain dicts shaped like Rocket.Chat's MongoDB documents; dates are kept as epoch
milliseconds and rendered per transport (ISO strings for REST, EJSON for DDP) by `views.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

log = logging.getLogger("rocketchat_sim.state")

FORMAT_VERSION = 1
# Messages kept per room in the state file; older ones live only in memory (a test double, not an archive).
PERSISTED_MESSAGES_PER_ROOM = 500


class StateFileError(RuntimeError):
    pass


class State:
    def __init__(self, path: Path | None = None, max_messages_per_room: int = 10_000) -> None:
        self.path = path
        self.max_messages_per_room = max_messages_per_room
        self.users: dict[str, dict[str, Any]] = {}
        self.rooms: dict[str, dict[str, Any]] = {}
        # (rid, uid) → subscription document
        self.subscriptions: dict[tuple[str, str], dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.settings: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, dict[str, Any]] = {}
        self.permissions: dict[str, dict[str, Any]] = {}
        self.integrations: dict[str, dict[str, Any]] = {}
        self.integration_history: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []  # chat.reportMessage / moderation.reportUser
        self.invites: dict[str, dict[str, Any]] = {}
        self.custom_user_status: dict[str, dict[str, Any]] = {}
        # Rocket.Chat's migrations control document {_id: 'control', version, locked}; None: none stored
        # (version 0, a fresh database). Set at startup by migrations.migrate_database.
        self.migrations: dict[str, Any] | None = None
        # rid → [{_id, _deletedAt}] for chat.getDeletedMessages (memory only)
        self.deleted_messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # indexes, rebuilt on load
        self.users_by_username: dict[str, str] = {}
        self.users_by_email: dict[str, str] = {}
        self.tokens: dict[str, str] = {}  # hashedToken → user id
        self.rooms_by_name: dict[str, str] = {}
        self.room_members: dict[str, set[str]] = defaultdict(set)
        self.user_rooms: dict[str, set[str]] = defaultdict(set)
        self.message_index: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._saver: asyncio.Task[None] | None = None

    # ---- indexes
    def index_user(self, user: dict[str, Any]) -> None:
        self.users_by_username[user["username"].lower()] = user["_id"]
        for email in user.get("emails", []):
            self.users_by_email[email["address"].lower()] = user["_id"]
        for tok in user.get("services", {}).get("resume", {}).get("loginTokens", []):
            self.tokens[tok["hashedToken"]] = user["_id"]

    def unindex_user(self, user: dict[str, Any]) -> None:
        self.users_by_username.pop(user["username"].lower(), None)
        for email in user.get("emails", []):
            self.users_by_email.pop(email["address"].lower(), None)
        for tok in user.get("services", {}).get("resume", {}).get("loginTokens", []):
            self.tokens.pop(tok["hashedToken"], None)

    def index_room(self, room: dict[str, Any]) -> None:
        if room.get("name") and room["t"] != "d":
            self.rooms_by_name[room["name"]] = room["_id"]

    def add_subscription(self, sub: dict[str, Any]) -> None:
        rid, uid = sub["rid"], sub["u"]["_id"]
        self.subscriptions[(rid, uid)] = sub
        self.room_members[rid].add(uid)
        self.user_rooms[uid].add(rid)

    def remove_subscription(self, rid: str, uid: str) -> dict[str, Any] | None:
        sub = self.subscriptions.pop((rid, uid), None)
        self.room_members[rid].discard(uid)
        self.user_rooms[uid].discard(rid)
        return sub

    def add_message(self, msg: dict[str, Any]) -> None:
        msgs = self.messages[msg["rid"]]
        msgs.append(msg)
        self.message_index[msg["_id"]] = msg
        # Bounded memory under long load tests: drop the oldest tenth once a room is over the cap.
        if len(msgs) > self.max_messages_per_room + self.max_messages_per_room // 10:
            excess = len(msgs) - self.max_messages_per_room
            for old in msgs[:excess]:
                self.message_index.pop(old["_id"], None)
            del msgs[:excess]

    def note_deleted(self, rid: str, mid: str, when: int) -> None:
        """Remember a deleted message id for chat.getDeletedMessages (the newest 1,000 per room)."""
        deleted = self.deleted_messages[rid]
        deleted.append({"_id": mid, "_deletedAt": when})
        if len(deleted) > 1100:
            del deleted[:100]

    # ---- persistence
    def mark_dirty(self) -> None:
        self._dirty = True

    def snapshot(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "users": list(self.users.values()),
            "rooms": list(self.rooms.values()),
            "subscriptions": list(self.subscriptions.values()),
            "messages": [m for msgs in self.messages.values() for m in msgs[-PERSISTED_MESSAGES_PER_ROOM:]],
            "settings": list(self.settings.values()),
            "roles": list(self.roles.values()),
            "permissions": list(self.permissions.values()),
            "integrations": list(self.integrations.values()),
            "reports": self.reports,
            "invites": list(self.invites.values()),
            "customUserStatus": list(self.custom_user_status.values()),
            **({"migrations": self.migrations} if self.migrations is not None else {}),
        }

    def load(self) -> bool:
        """Load the state file if there is one; False when starting empty."""
        if self.path is None or not self.path.exists():
            return False
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            # Never start over silently on top of a state file we cannot read: that would lose it.
            raise StateFileError(f"cannot read state file {self.path}: {exc}") from exc
        if data.get("format") != FORMAT_VERSION:
            raise StateFileError(f"state file {self.path} has unknown format {data.get('format')!r}")
        # Absent in files written before it existed: no control document, as a database without one.
        migrations = data.get("migrations")
        if migrations is not None and not (
            isinstance(migrations, dict)
            and isinstance(migrations.get("version"), int)
            and not isinstance(migrations.get("version"), bool)
        ):
            raise StateFileError(f"state file {self.path} has a malformed migrations control: {migrations!r}")
        for user in data["users"]:
            self.users[user["_id"]] = user
            self.index_user(user)
        for room in data["rooms"]:
            self.rooms[room["_id"]] = room
            self.index_room(room)
        for sub in data["subscriptions"]:
            self.add_subscription(sub)
        for msg in data["messages"]:
            self.add_message(msg)
        self.settings = {s["_id"]: s for s in data["settings"]}
        self.roles = {r["_id"]: r for r in data["roles"]}
        self.permissions = {p["_id"]: p for p in data["permissions"]}
        self.integrations = {i["_id"]: i for i in data["integrations"]}
        self.reports = list(data.get("reports", []))
        self.invites = {i["_id"]: i for i in data.get("invites", [])}
        self.custom_user_status = {s["_id"]: s for s in data.get("customUserStatus", [])}
        self.migrations = migrations
        return True

    def save(self) -> None:
        """Write the whole state atomically: temp file in the same directory, fsync, rename."""
        if self.path is None:
            return
        text = json.dumps(self.snapshot(), separators=(",", ":"))
        self._dirty = False
        self._write(text)

    def _write(self, text: str) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def autosave(self, interval: float = 0.5) -> None:
        """Save at most every `interval` s when dirty (snapshot on the loop, write in a thread)."""
        if self.path is None:
            return
        while True:
            await asyncio.sleep(interval)
            if not self._dirty:
                continue
            text = json.dumps(self.snapshot(), separators=(",", ":"))
            self._dirty = False
            try:
                await asyncio.to_thread(self._write, text)
            except OSError as exc:
                self._dirty = True
                log.error("saving state to %s failed: %s", self.path, exc)
