"""What the command logic needs from the outside: the chat (each transport provides it, REST in practice)
and the ERP (bot/erp_client.py). The store's port is `bot.store.Store`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class IncomingMessage:
    """A chat message as every transport delivers it to the router."""

    message_id: str
    room_id: str
    room_type: str  # "d" direct, "c" public, "p" private, "" unknown
    text: str
    user_id: str
    username: str
    ts: float = 0.0
    edited: bool = False
    from_bot: bool = False
    system: bool = False
    mentions_bot: bool = False
    room_name: str = ""  # channels and groups: the room's name ("" for DMs or when unknown)


@dataclass
class Identity:
    user_id: str = ""
    username: str = ""


class ChatPort(Protocol):
    async def send(self, room_id: str, text: str) -> None: ...
    async def direct_room(self, username: str) -> str: ...
    async def send_to_channel(self, channel: str, text: str) -> dict[str, str] | None:
        """Post to a channel by name; returns {"room_id", "message_id"} of the post when known."""
        ...

    async def edit(self, room_id: str, message_id: str, text: str) -> None: ...
    async def user_roles(self, user_id: str) -> set[str]: ...


class OnceChatPort(ChatPort, Protocol):
    """A chat that posts under a client-chosen message id, once: the router's replies to a message get ids
    derived from the message's, so handling it again never posts a reply twice. A port without these
    (test fakes) gets plain `send` calls."""

    async def send_once(self, room_id: str, text: str, message_id: str) -> bool:
        """Post; False when a message with this id was posted before (nothing is posted again)."""
        ...

    async def send_to_channel_once(
        self, channel: str, text: str, message_id: str
    ) -> dict[str, str] | None: ...


class ErpPort(Protocol):
    """The ERP's bot-integration API (docs/api/erp-bot-api.md) as the bot uses it."""

    async def positions(self) -> list[dict[str, Any]]: ...
    async def create_staff(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]: ...
    async def get_staff(self, staff_id: int) -> dict[str, Any]: ...
    async def find_staff(self, **query: str) -> dict[str, Any] | None: ...
    async def approve(self, staff_id: int) -> dict[str, Any]: ...
    async def reject(self, staff_id: int, reason: str | None) -> dict[str, Any]: ...
    async def block(self, staff_id: int) -> dict[str, Any]: ...
    async def unblock(self, staff_id: int) -> dict[str, Any]: ...
    async def reissue_code(self, staff_id: int) -> dict[str, Any]: ...
    async def update_position(self, code: str, changes: dict[str, Any]) -> dict[str, Any]: ...
    async def registration_report(self, since: datetime, until: datetime | None = None) -> dict[str, Any]: ...
