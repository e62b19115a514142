"""What the command logic needs from the chat side; each transport provides it (REST in practice)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


@dataclass
class Identity:
    user_id: str = ""
    username: str = ""


class ChatPort(Protocol):
    async def send(self, room_id: str, text: str) -> None: ...
    async def direct_room(self, username: str) -> str: ...
    async def send_to_channel(self, channel: str, text: str) -> None: ...
    async def user_roles(self, user_id: str) -> set[str]: ...
