"""`python -m rcchat chat ROOM`: type a line and Enter to send it; others' messages appear as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from rcchat.api import ChatError, Session
from rcchat.cli import show

HELP = "Type a message and press Enter to send it. /rooms lists your rooms, /quit (or Ctrl-D) leaves."


async def _lines() -> asyncio.StreamReader:
    """stdin as an asyncio stream (a terminal or a pipe)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def chat(session: Session, room: str) -> int:
    room_id = await session.resolve_room(room)
    async with session.stream(room_id) as stream:
        print(f"Connected to {session.url} as {session.username}, room {room}. {HELP}", flush=True)

        async def incoming() -> None:
            async for message in stream.messages():
                if message.user_id != session.user_id:
                    show(message, as_json=False)

        printer = asyncio.create_task(incoming())
        stdin = await _lines()
        try:
            while True:
                reader = asyncio.create_task(stdin.readline())
                done, _ = await asyncio.wait({reader, printer}, return_when=asyncio.FIRST_COMPLETED)
                if printer in done:
                    reader.cancel()
                    printer.result()  # raises the stream's error (connection closed)
                    return 0
                raw = reader.result()
                if not raw:
                    return 0  # end of input
                line = raw.decode("utf-8", errors="replace").strip()
                if not line:
                    continue
                if line in ("/quit", "/exit"):
                    return 0
                if line == "/help":
                    print(HELP, flush=True)
                elif line == "/rooms":
                    for entry in await session.rooms():
                        print(f"  {entry['type']} {entry['name']} {entry['id']}", flush=True)
                else:
                    try:
                        await session.send(room_id, line)
                    except ChatError as exc:  # one failed send does not end the session
                        print(f"rcchat: not sent: {exc}", file=sys.stderr, flush=True)
        finally:
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ChatError):
                await printer
