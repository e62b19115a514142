"""What the workspace does: users, roles, rooms, subscriptions and messages, shared by REST and DDP.

Every change goes through here so the realtime streams and the outgoing webhooks see the same
events whichever API caused them.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from . import auth
from .config import SimSettings, setting_overrides
from .errors import ApiError, meteor_error
from .migrations import migrate_database
from .permissions import DEFAULT_PERMISSIONS, DEFAULT_ROLES, ROOM_ROLES
from .settings_registry import FACTS, SettingValueError, convert
from .state import State
from .util import new_id, now_ms

if TYPE_CHECKING:
    from .ddp import Realtime
    from .webhooks import OutgoingWebhooks

log = logging.getLogger("rocketchat_sim.workspace")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def markdown_ast(text: str) -> list[dict[str, Any]]:
    """The `md` field for plain text: one paragraph per line (Rocket.Chat parses full markdown)."""
    if not text:
        return []
    return [
        {"type": "PARAGRAPH", "value": [{"type": "PLAIN_TEXT", "value": line}]} for line in text.split("\n")
    ]


def effective_value(doc: dict[str, Any]) -> Any:
    """The value the server acts on: an enterprise setting holds its invalidValue without a license
    (ee/server/settings/settings.ts changeSettingValue), and this workspace is Community."""
    return doc.get("invalidValue") if doc.get("enterprise") else doc["value"]


class Workspace:
    def __init__(self, state: State, config: SimSettings) -> None:
        self.state = state
        self.config = config
        self.realtime: Realtime | None = None
        self.webhooks: OutgoingWebhooks | None = None
        self.settings: dict[str, Any] = {}  # id → value (a cache of state.settings)

    # ------------------------------------------------------------------ startup
    def bootstrap(self) -> None:
        """First start: defaults, roles, permissions, first admin; every start: OVERWRITE_SETTING_*."""
        loaded = self.state.load()
        # Rocket.Chat migrates its database before it serves; MigrationError stops the start with the
        # state as it was loaded (nothing saved: a newer build's data stays as that build left it).
        self.state.migrations = migrate_database(
            self.state.migrations, self.config.SIM_MIGRATION_VERSION, self.config.SIM_VERSION
        )
        initial, overwrite = setting_overrides()
        now = now_ms()
        for sid, fact in FACTS.items():
            if sid in self.state.settings:
                continue
            default = new_id() if fact.random_default else fact.default
            if sid == "Site_Url":
                default = self.config.root_url
            value = default
            if not loaded and sid in initial:
                value = self._converted(sid, initial[sid], value)
            doc = {
                "_id": sid,
                "value": value,
                "packageValue": default,
                "type": fact.type,
                "public": fact.public,
                "_updatedAt": now,
            }
            if fact.enterprise:
                doc.update(enterprise=True, invalidValue=fact.invalid_value)
                if fact.modules:
                    doc["modules"] = list(fact.modules)
            self.state.settings[sid] = doc
        for sid, raw in overwrite.items():
            doc = self.state.settings.setdefault(
                sid, {"_id": sid, "value": raw, "packageValue": raw, "type": "string", "public": False}
            )
            doc["value"] = self._converted(sid, raw, doc["value"])
            doc["valueSource"] = "processEnvValue"
            doc["_updatedAt"] = now
        self.settings = {sid: effective_value(doc) for sid, doc in self.state.settings.items()}
        for rid, scope, description in DEFAULT_ROLES:
            self.state.roles.setdefault(
                rid,
                {
                    "_id": rid,
                    "name": rid,
                    "scope": scope,
                    "description": description,
                    "protected": True,
                    "mandatory2fa": False,
                    "_updatedAt": now,
                },
            )
        for pid, roles in DEFAULT_PERMISSIONS.items():
            self.state.permissions.setdefault(pid, {"_id": pid, "roles": list(roles), "_updatedAt": now})
        if not loaded:
            self._first_start_documents(now)
        self._first_admin()
        wizard = self.state.settings["Show_Setup_Wizard"]
        if wizard["value"] == "pending" and any(
            "admin" in u.get("roles", []) for u in self.state.users.values()
        ):
            wizard["value"] = self.settings["Show_Setup_Wizard"] = "in_progress"  # as initialData.ts does
        self.state.mark_dirty()

    def _first_start_documents(self, now: int) -> None:
        """What a fresh Rocket.Chat database holds: the rocket.cat bot and the default #general."""
        if "rocket.cat" not in self.state.users:
            cat = {
                "_id": "rocket.cat",
                "createdAt": now,
                "username": "rocket.cat",
                "name": "Rocket.Cat",
                "emails": [],
                "type": "bot",
                "status": "online",
                "statusConnection": "online",
                "active": True,
                "roles": ["bot"],
                "utcOffset": 0,
                "settings": {"preferences": {}},
                "_updatedAt": now,
                "services": {"resume": {"loginTokens": []}},
            }
            self.state.users["rocket.cat"] = cat
            self.state.index_user(cat)
        if "GENERAL" not in self.state.rooms:
            general = {
                "_id": "GENERAL",
                "name": "general",
                "fname": "general",
                "t": "c",
                "msgs": 0,
                "usersCount": 0,
                "customFields": {},
                "broadcast": False,
                "encrypted": False,
                "ts": now,
                "ro": False,
                "default": True,
                "sysMes": True,
                "_updatedAt": now,
            }
            self.state.rooms["GENERAL"] = general
            self.state.index_room(general)

    def _converted(self, sid: str, raw: str, fallback: Any) -> Any:
        try:
            return convert(sid, raw)
        except SettingValueError as exc:
            log.error("%s", exc)
            return fallback

    def _first_admin(self) -> None:
        if any("admin" in u.get("roles", []) for u in self.state.users.values()):
            if self.config.ADMIN_PASS is not None:
                log.warning("Users with admin role already exist; Ignoring environment variables ADMIN_PASS")
            return
        if self.config.ADMIN_PASS is None:
            humans = [u for u in self.state.users.values() if u["_id"] != "rocket.cat"]
            if humans:  # Rocket.Chat promotes the oldest user when no admin exists
                oldest = min(humans, key=lambda u: u["createdAt"])
                oldest["roles"].append("admin")
            return
        email = self.config.ADMIN_EMAIL if _EMAIL.match(self.config.ADMIN_EMAIL or "") else ""
        if email and email.lower() in self.state.users_by_email:
            email = ""
        self.create_user(
            username=self.config.ADMIN_USERNAME,
            name=self.config.ADMIN_NAME,
            email=email or None,
            password=self.config.ADMIN_PASS.get_secret_value(),
            roles=["admin"],
            verified=self.config.ADMIN_EMAIL_VERIFIED,
        )

    # ------------------------------------------------------------------ settings & permissions
    def set_setting(self, sid: str, value: Any) -> None:
        doc = self.state.settings[sid]
        doc["value"] = value
        doc["_updatedAt"] = now_ms()
        self.settings[sid] = effective_value(doc)
        self.state.mark_dirty()

    def user_roles(self, uid: str, rid: str | None = None) -> set[str]:
        user = self.state.users.get(uid)
        roles = set(user.get("roles", [])) if user else set()
        if rid is not None:
            sub = self.state.subscriptions.get((rid, uid))
            if sub:
                roles.update(sub.get("roles", []))
        return roles

    def has_permission(self, uid: str, permission: str, rid: str | None = None) -> bool:
        doc = self.state.permissions.get(permission)
        if doc is None:
            return False
        return not self.user_roles(uid, rid).isdisjoint(doc["roles"])

    def has_any_permission(self, uid: str, permissions: list[str], rid: str | None = None) -> bool:
        return any(self.has_permission(uid, p, rid) for p in permissions)

    # ------------------------------------------------------------------ users
    def user_by_username(self, username: str) -> dict[str, Any] | None:
        uid = self.state.users_by_username.get(username.lower().lstrip("@"))
        return self.state.users.get(uid) if uid else None

    def user_by_login(self, login: str) -> dict[str, Any] | None:
        if "@" in login and not login.startswith("@"):
            uid = self.state.users_by_email.get(login.lower())
            if uid:
                return self.state.users.get(uid)
        return self.user_by_username(login)

    def validate_username(self, username: str) -> bool:
        pattern = self.settings.get("UTF8_User_Names_Validation") or "[0-9a-zA-Z-_.]+"
        try:
            return re.fullmatch(pattern, username) is not None
        except re.error:
            return True

    def create_user(
        self,
        *,
        username: str,
        name: str,
        email: str | None,
        password: str | None,
        roles: list[str] | None = None,
        active: bool = True,
        verified: bool = False,
        require_password_change: bool = False,
        nickname: str | None = None,
        bio: str | None = None,
        status_text: str | None = None,
        custom_fields: dict[str, Any] | None = None,
        join_default_channels: bool = True,
    ) -> dict[str, Any]:
        self.check_unique(username=username, email=email)
        now = now_ms()
        roles = list(dict.fromkeys(roles or ["user"]))
        if "admin" not in roles and not any(
            "admin" in u.get("roles", []) and u.get("type") != "bot" for u in self.state.users.values()
        ):
            # insertUserDoc: a workspace without an admin makes its first user one (a fresh install's
            # first registration), and the setup wizard moves on from "pending".
            roles.append("admin")
            if self.settings.get("Show_Setup_Wizard") == "pending":
                self.set_setting("Show_Setup_Wizard", "in_progress")
        user: dict[str, Any] = {
            "_id": new_id(),
            "createdAt": now,
            "username": username,
            "emails": [{"address": email, "verified": verified}] if email else [],
            "type": "bot" if "bot" in roles else "user",
            "status": "offline",
            "statusConnection": "offline",
            "active": active,
            "roles": roles,
            "name": name,
            "requirePasswordChange": require_password_change,
            "utcOffset": 0,
            "settings": {"preferences": {}},
            "_updatedAt": now,
            "services": {"resume": {"loginTokens": []}},
        }
        if password:
            user["services"]["password"] = auth.hash_password(password)
        for key, value in (("nickname", nickname), ("bio", bio), ("statusText", status_text)):
            if value is not None:
                user[key] = value
        if custom_fields:
            user["customFields"] = custom_fields
        self.state.users[user["_id"]] = user
        self.state.index_user(user)
        if join_default_channels:
            # addUserToDefaultChannels: join, then a `uj` system message in each default channel
            for room in list(self.state.rooms.values()):
                if room.get("default") and room["t"] in ("c", "p"):
                    self.add_member(room, user)
                    self.system_message("uj", room, user, user["username"])
        self.state.mark_dirty()
        if self.webhooks is not None:
            self.webhooks.user_created(user)
        return user

    def check_unique(self, *, username: str | None, email: str | None, exclude: str | None = None) -> None:
        if username is not None:
            other = self.state.users_by_username.get(username.lower())
            if other and other != exclude:
                raise meteor_error(
                    "error-field-unavailable",
                    f"{username} is already in use :(",
                    {"method": "insertOrUpdateUser", "field": username},
                )
        if email is not None:
            other = self.state.users_by_email.get(email.lower())
            if other and other != exclude:
                raise meteor_error(
                    "error-field-unavailable",
                    f"{email} is already in use :(",
                    {"method": "insertOrUpdateUser", "field": email},
                )

    def update_user(self, user: dict[str, Any], data: dict[str, Any]) -> None:
        self.check_unique(username=data.get("username"), email=data.get("email"), exclude=user["_id"])
        self.state.unindex_user(user)
        if "username" in data:
            user["username"] = data["username"]
        if "email" in data:
            user["emails"] = [{"address": data["email"], "verified": bool(data.get("verified", False))}]
        elif "verified" in data and user["emails"]:
            user["emails"][0]["verified"] = bool(data["verified"])
        for key in ("name", "nickname", "bio", "statusText", "requirePasswordChange", "customFields"):
            if key in data:
                user[key] = data[key]
        if "roles" in data:
            user["roles"] = list(dict.fromkeys(data["roles"]))
            user["type"] = "bot" if "bot" in user["roles"] else "user"
        if data.get("password"):
            user["services"]["password"] = auth.hash_password(data["password"])
        self.state.index_user(user)
        if "active" in data and data["active"] != user["active"]:
            self.set_active(user, bool(data["active"]))
        user["_updatedAt"] = now_ms()
        self.state.mark_dirty()

    def set_active(self, user: dict[str, Any], active: bool) -> None:
        user["active"] = active
        user["_updatedAt"] = now_ms()
        if not active:
            auth.revoke_all_tokens(self.state, user)
            if self.realtime is not None:
                self.realtime.user_logged_out(user["_id"])
        self.state.mark_dirty()

    def delete_user(self, user: dict[str, Any]) -> None:
        for rid in list(self.state.user_rooms.get(user["_id"], ())):
            room = self.state.rooms.get(rid)
            if room is not None:
                self.remove_member(room, user)
        self.state.unindex_user(user)
        del self.state.users[user["_id"]]
        if self.realtime is not None:
            self.realtime.user_logged_out(user["_id"])
        self.state.mark_dirty()

    # ------------------------------------------------------------------ rooms
    def room_by_name_or_id(self, ref: str) -> dict[str, Any] | None:
        room = self.state.rooms.get(ref)
        if room is not None:
            return room
        rid = self.state.rooms_by_name.get(ref.lstrip("#"))
        return self.state.rooms.get(rid) if rid else None

    def can_access_room(self, uid: str | None, room: dict[str, Any]) -> bool:
        if uid is None:
            return False
        if (room["_id"], uid) in self.state.subscriptions:
            return True
        return room["t"] == "c" and self.has_permission(uid, "view-c-room")

    def validate_room_name(self, name: str) -> bool:
        pattern = self.settings.get("UTF8_Channel_Names_Validation") or "[0-9a-zA-Z-_.]+"
        try:
            return re.fullmatch(pattern, name) is not None
        except re.error:
            return True

    def create_room(
        self,
        kind: str,
        name: str,
        owner: dict[str, Any],
        members: list[str],
        *,
        read_only: bool = False,
        exclude_self: bool = False,
        custom_fields: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not self.validate_room_name(name):
            raise meteor_error(
                "error-invalid-name", f"Invalid name: {name}", {"function": "RocketChat.createRoom"}
            )
        if name in self.state.rooms_by_name:
            raise meteor_error(
                "error-duplicate-channel-name",
                f"A channel with name '{name}' exists",
                {"function": "RocketChat.createRoom", "channel_name": name},
            )
        users = []
        for username in members:
            member = self.user_by_username(username)
            if member is not None and member["_id"] != owner["_id"]:
                users.append(member)
        now = now_ms()
        extra = extra or {}
        room: dict[str, Any] = {
            "_id": new_id(),
            "fname": name,
            "name": name,
            "t": kind,
            "msgs": 0,
            "usersCount": 0,
            "u": {"_id": owner["_id"], "username": owner["username"]},
            "customFields": custom_fields or {},
            "broadcast": bool(extra.get("broadcast", False)),
            "encrypted": bool(extra.get("encrypted", False)),
            "ts": now,
            "ro": read_only,
            "default": False,
            "sysMes": True,
            "_updatedAt": now,
        }
        self.state.rooms[room["_id"]] = room
        self.state.index_room(room)
        if not exclude_self:
            self.add_member(room, owner, roles=["owner"])
        for member in users:
            self.add_member(room, member)
        self.state.mark_dirty()
        if self.webhooks is not None:
            self.webhooks.room_event("roomCreated", room, owner)
        return room

    def direct_room(self, users: list[dict[str, Any]], creator: dict[str, Any]) -> dict[str, Any]:
        """Rocket.Chat's createDirectMessage: the room id is the members' ids concatenated in order."""
        uids = sorted({u["_id"] for u in users})
        rid = "".join(uids)
        room = self.state.rooms.get(rid)
        if room is not None:
            for member in users:
                if (rid, member["_id"]) not in self.state.subscriptions:
                    self.add_member(room, member)
            return room
        by_id = {u["_id"]: u for u in users}
        now = now_ms()
        room = {
            "_id": rid,
            "t": "d",
            "usernames": [by_id[uid]["username"] for uid in uids],
            "uids": uids,
            "usersCount": len(uids),
            "msgs": 0,
            "ts": now,
            "_updatedAt": now,
        }
        self.state.rooms[rid] = room
        for uid in uids:
            self.add_member(room, by_id[uid], dm_with=[by_id[o] for o in uids if o != uid] or [by_id[uid]])
        self.state.mark_dirty()
        return room

    def add_member(
        self,
        room: dict[str, Any],
        user: dict[str, Any],
        *,
        roles: list[str] | None = None,
        dm_with: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        key = (room["_id"], user["_id"])
        existing = self.state.subscriptions.get(key)
        if existing is not None:
            return existing
        now = now_ms()
        if room["t"] == "d":
            other = (dm_with or [user])[0]
            name, fname = other["username"], other.get("name", other["username"])
        else:
            name, fname = room["name"], room.get("fname", room["name"])
        sub = {
            "_id": new_id(),
            "rid": room["_id"],
            "u": {"_id": user["_id"], "username": user["username"], "name": user.get("name")},
            "name": name,
            "fname": fname,
            "t": room["t"],
            "ts": now,
            "ls": now,
            "open": True,
            "alert": False,
            "unread": 0,
            "userMentions": 0,
            "groupMentions": 0,
            "_updatedAt": now,
        }
        if roles:
            sub["roles"] = roles
        self.state.add_subscription(sub)
        if room["t"] != "d":
            room["usersCount"] = room.get("usersCount", 0) + 1
            room["_updatedAt"] = now
        self.state.mark_dirty()
        if self.realtime is not None:
            self.realtime.user_event(user["_id"], "rooms-changed", ["inserted", room], kind="room")
            self.realtime.user_event(user["_id"], "subscriptions-changed", ["inserted", sub], kind="sub")
        return sub

    def remove_member(self, room: dict[str, Any], user: dict[str, Any]) -> bool:
        sub = self.state.remove_subscription(room["_id"], user["_id"])
        if sub is None:
            return False
        if room["t"] != "d":
            room["usersCount"] = max(0, room.get("usersCount", 1) - 1)
            room["_updatedAt"] = now_ms()
        self.state.mark_dirty()
        if self.realtime is not None:
            self.realtime.user_event(
                user["_id"], "rooms-changed", ["removed", {"_id": room["_id"]}], kind="raw"
            )
            self.realtime.user_event(
                user["_id"], "subscriptions-changed", ["removed", {"_id": sub["_id"]}], kind="raw"
            )
            self.realtime.user_removed_from_room(user["_id"], room["_id"])
        return True

    # ------------------------------------------------------------------ messages
    def check_can_send(self, user: dict[str, Any], room: dict[str, Any]) -> None:
        if not self.can_access_room(user["_id"], room):
            raise meteor_error("error-not-allowed", "Not allowed", {"method": "sendMessage"})
        if room.get("ro") and not self.user_roles(user["_id"], room["_id"]) & {"owner", "moderator", "admin"}:
            raise meteor_error("error-not-allowed", "Not allowed", {"method": "sendMessage"})

    def send_message(
        self,
        user: dict[str, Any],
        room: dict[str, Any],
        fields: dict[str, Any],
        *,
        system_type: str | None = None,
    ) -> dict[str, Any]:
        """Validate and store a message, then fan it out (streams, subscriptions, webhooks)."""
        text = fields.get("msg") or ""
        if not isinstance(text, str):
            raise meteor_error("error-invalid-params", "Invalid message")
        if len(text) > int(self.settings.get("Message_MaxAllowedSize", 5000)):
            raise meteor_error("error-message-size-exceeded", "Message size exceeds the allowed limit")
        if system_type is None and user["_id"] not in ("rocket.cat",):
            self.check_can_send(user, room)
            if (room["_id"], user["_id"]) not in self.state.subscriptions and room["t"] == "c":
                self.add_member(room, user)  # posting to a public channel joins it
        now = now_ms()
        msg: dict[str, Any] = {
            "_id": fields.get("_id") or new_id(),
            "rid": room["_id"],
            "msg": text,
            "ts": now,
            "u": {"_id": user["_id"], "username": user["username"], "name": user.get("name")},
            "_updatedAt": now,
            "urls": [],
            "mentions": [],
            "channels": [],
            "md": markdown_ast(text),
        }
        if system_type:
            msg["t"] = system_type
            msg["groupable"] = False
            del msg["md"]  # Rocket.Chat parses no markdown for system messages
        for key in (
            "alias",
            "emoji",
            "avatar",
            "attachments",
            "role",
            "tmid",
            "tshow",
            "customFields",
            "bot",
            "groupable",
        ):
            if fields.get(key) is not None:
                msg[key] = fields[key]
        if "parseUrls" in fields:
            msg["parseUrls"] = fields["parseUrls"]
        if msg["_id"] in self.state.message_index:
            raise meteor_error("error-duplicate-id", "Duplicated message id")  # pragma: no cover - defensive
        if msg.get("tmid"):
            parent = self.state.message_index.get(msg["tmid"])
            if parent is None or parent["rid"] != room["_id"]:
                raise meteor_error("error-invalid-message", "Invalid thread message id")
        self.state.add_message(msg)
        room["msgs"] = room.get("msgs", 0) + 1
        room["lm"] = now
        room["lastMessage"] = msg
        room["_updatedAt"] = now
        self.state.mark_dirty()
        self._after_save(room, msg, edited=False)
        if msg.get("tmid"):
            self._thread_reply(msg)
        return msg

    def _thread_reply(self, reply: dict[str, Any]) -> None:
        parent = self.state.message_index[reply["tmid"]]
        parent["tcount"] = parent.get("tcount", 0) + 1
        parent["tlm"] = reply["ts"]
        replies = parent.setdefault("replies", [])
        if reply["u"]["_id"] not in replies:
            replies.append(reply["u"]["_id"])
        parent["_updatedAt"] = reply["ts"]
        if self.realtime is not None:
            self.realtime.publish_message(self.state.rooms[parent["rid"]], parent)

    def system_message(
        self, kind: str, room: dict[str, Any], user: dict[str, Any], text: str = "", **extra: Any
    ) -> dict[str, Any]:
        """Message.saveSystemMessage: `t` = kind, `msg` usually the username the event is about."""
        return self.send_message(user, room, {"msg": text, **extra}, system_type=kind)

    def republish(self, msg: dict[str, Any]) -> None:
        """A changed message goes out again, whole, on the room streams (reactions, pins, stars, threads)."""
        msg["_updatedAt"] = now_ms()
        self.state.mark_dirty()
        if self.realtime is not None:
            self.realtime.publish_message(self.state.rooms[msg["rid"]], msg)

    def set_reaction(self, user: dict[str, Any], msg: dict[str, Any], emoji: str, should_react: Any) -> None:
        room = self.state.rooms[msg["rid"]]
        if not self.can_access_room(user["_id"], room):
            raise meteor_error("error-not-allowed", "Not allowed", {"method": "setReaction"})
        if not emoji.startswith(":"):
            emoji = f":{emoji}:"
        reactions = msg.setdefault("reactions", {})
        names = reactions.setdefault(emoji, {"usernames": []})["usernames"]
        if user["username"] in names and should_react is not True:
            names.remove(user["username"])
        elif user["username"] not in names and should_react is not False:
            names.append(user["username"])
        if not names:
            del reactions[emoji]
        if not reactions:
            del msg["reactions"]
        self.republish(msg)

    def update_message(self, user: dict[str, Any], msg: dict[str, Any], text: str) -> dict[str, Any]:
        room = self.state.rooms[msg["rid"]]
        own = msg["u"]["_id"] == user["_id"]
        allowed = self.has_permission(user["_id"], "edit-message", room["_id"]) or (
            own and bool(self.settings.get("Message_AllowEditing", True))
        )
        if not allowed:
            raise meteor_error(
                "error-action-not-allowed", "Message editing not allowed", {"method": "updateMessage"}
            )
        now = now_ms()
        msg["msg"] = text
        msg["md"] = markdown_ast(text)
        msg["editedAt"] = now
        msg["editedBy"] = {"_id": user["_id"], "username": user["username"]}
        msg["_updatedAt"] = now
        self.state.mark_dirty()
        self._after_save(room, msg, edited=True)
        return msg

    def delete_message(self, user: dict[str, Any], msg: dict[str, Any]) -> None:
        room = self.state.rooms[msg["rid"]]
        own = msg["u"]["_id"] == user["_id"]
        allowed = self.has_permission(user["_id"], "delete-message", room["_id"]) or (
            own
            and self.has_permission(user["_id"], "delete-own-message", room["_id"])
            and bool(self.settings.get("Message_AllowDeleting", True))
        )
        if not allowed:
            raise meteor_error("error-action-not-allowed", "Not allowed", {"method": "deleteMessage"})
        if self.settings.get("Message_ShowDeletedStatus"):
            # deleteMessage with "show deleted status": the message stays, emptied, as a `rm` system message
            for key in ("attachments", "reactions", "md", "urls", "mentions", "channels"):
                msg.pop(key, None)
            msg.update({"msg": "", "t": "rm", "editedAt": now_ms(), "editedBy": dict(msg["u"])})
            self.republish(msg)
            return
        self.state.messages[room["_id"]].remove(msg)
        del self.state.message_index[msg["_id"]]
        self.state.note_deleted(room["_id"], msg["_id"], now_ms())
        room["msgs"] = max(0, room.get("msgs", 1) - 1)
        self.state.mark_dirty()
        if self.realtime is not None:
            self.realtime.message_deleted(room, msg)

    def _after_save(self, room: dict[str, Any], msg: dict[str, Any], *, edited: bool) -> None:
        if self.realtime is not None:
            self.realtime.publish_message(room, msg)
            if not edited:
                self.realtime.room_updated(room)
        if self.webhooks is not None:
            self.webhooks.message_saved(room, msg, edited=edited)

    # ------------------------------------------------------------------ helpers for handlers
    def require_user(self, *, user_id: str | None = None, username: str | None = None) -> dict[str, Any]:
        user = None
        if user_id:
            user = self.state.users.get(user_id)
        elif username:
            user = self.user_by_username(username)
        if user is None:
            raise meteor_error("error-invalid-user", "Invalid user")
        return user


def room_type_error(kind: str) -> ApiError:
    return meteor_error(
        "error-room-not-found",
        f'The required "roomId" or "roomName" param provided does not match any {kind}',
    )


__all__ = ["ROOM_ROLES", "Workspace", "markdown_ast", "room_type_error"]
