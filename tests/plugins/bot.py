"""Fixtures and fakes for the bot tests: unit fakes (chat, ERP) and the bot started as a real process."""

from __future__ import annotations

import itertools
from typing import Any

from bot.erp_client import ErpError, ErpUnavailable


class FakeChat:
    def __init__(self, admins: set[str] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.admins = admins or set()

    async def send(self, room_id: str, text: str) -> None:
        self.sent.append((room_id, text))

    async def direct_room(self, username: str) -> str:
        return f"dm-{username}"

    async def send_to_channel(self, channel: str, text: str) -> None:
        self.sent.append((f"#{channel}", text))

    async def user_roles(self, user_id: str) -> set[str]:
        return {"admin", "user"} if user_id in self.admins else {"user"}

    def texts(self, room_id: str) -> list[str]:
        return [text for room, text in self.sent if room == room_id]


POSITIONS = [
    {
        "code": "ENG",
        "name": "Инженер",
        "department": "Производство",
        "erp_access": True,
        "erp_role": "engineer",
        "requires_approval": False,
        "is_active": True,
    },
    {
        "code": "DIR",
        "name": "Директор",
        "department": "",
        "erp_access": True,
        "erp_role": "director",
        "requires_approval": True,
        "is_active": True,
    },
    {
        "code": "CLN",
        "name": "Уборщик",
        "department": "",
        "erp_access": False,
        "erp_role": "",
        "requires_approval": False,
        "is_active": True,
    },
]


class FakeErp:
    def __init__(self) -> None:
        self.staff: dict[int, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.down = False
        self.creates = 0

    def _check(self) -> None:
        if self.down:
            raise ErpUnavailable("down")

    async def positions(self):
        self._check()
        return POSITIONS

    def _activation(self, staff):
        staff["status"] = "awaiting_activation"
        staff["user"] = {"login": staff["rocketchat_username"] + ".erp", "role": "x", "is_active": False}
        return {"login": staff["user"]["login"], "code": "483920", "expires_at": "2030-01-01T10:00:00Z"}

    async def create_staff(self, body, key):
        self._check()
        if key in self.keys:
            return self.keys[key]
        for staff in self.staff.values():
            if staff["rocketchat_user_id"] == body["rocketchat_user_id"]:
                raise ErpError(409, "staff_exists", body={"code": "staff_exists", "staff_id": staff["id"]})
        self.creates += 1
        position = next(p for p in POSITIONS if p["code"] == body["position_code"])
        staff = {**body, "id": next(self.ids), "position": position, "status_reason": None, "user": None}
        activation = None
        if not position["erp_access"]:
            staff["status"] = "no_erp_access"
        elif position["requires_approval"]:
            staff["status"] = "pending_approval"
        else:
            activation = self._activation(staff)
        self.staff[staff["id"]] = staff
        self.keys[key] = {"staff": staff, "activation": activation}
        return self.keys[key]

    async def get_staff(self, staff_id):
        self._check()
        if staff_id not in self.staff:
            raise ErpError(404, "not_found")
        return self.staff[staff_id]

    async def find_staff(self, **query):
        self._check()
        ((field, value),) = query.items()
        return next((s for s in self.staff.values() if s.get(field) == value), None)

    async def approve(self, staff_id):
        staff = await self.get_staff(staff_id)
        if staff["status"] != "pending_approval":
            raise ErpError(409, "invalid_state")
        return {"staff": staff, "activation": self._activation(staff)}

    async def reject(self, staff_id, reason):
        staff = await self.get_staff(staff_id)
        staff["status"], staff["status_reason"] = "rejected", reason
        return staff

    async def block(self, staff_id):
        staff = await self.get_staff(staff_id)
        staff["status"] = "blocked"
        return staff

    async def unblock(self, staff_id):
        staff = await self.get_staff(staff_id)
        staff["status"] = "active"
        return staff

    async def reissue_code(self, staff_id):
        staff = await self.get_staff(staff_id)
        return {"staff": staff, "activation": self._activation(staff)}

    async def update_position(self, code, changes):
        self._check()
        for position in POSITIONS:
            if position["code"] == code:
                return {**position, **changes}
        raise ErpError(404, "not_found")
