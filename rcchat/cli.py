"""`python -m rcchat`: the command line. Secrets come from files, the environment or a prompt, never argv."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import secrets
import sys
from pathlib import Path

from rcchat.api import ChatError, ChatTimeout, Message, Session

EXIT_ERROR, EXIT_USAGE, EXIT_TIMEOUT = 1, 2, 3

EPILOG = """\
Settings may come from the environment: RCCHAT_URL, RCCHAT_USER, RCCHAT_PASSWORD_FILE (or RCCHAT_PASSWORD),
RCCHAT_CA_FILE. Without a password file or RCCHAT_PASSWORD the password is asked for at the terminal.

examples:
  python -m rcchat --url https://localhost --ca-file /srv/photomatrix/pki/ca.crt --user ivan rooms
  python -m rcchat send @erp-bot help --replies 1 --json
  python -m rcchat read '#support' --duration 60
  python -m rcchat chat @erp-bot
  python -m rcchat --user admin --password-file /srv/photomatrix/secrets/rocketchat/admin_password \\
      user create ivan.petrov --new-password-file ~/.config/rcchat/ivan.petrov.password
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rcchat",
        description="A terminal client for Rocket.Chat (REST + realtime API).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `--password x` must not pass for `--password-file x`
    )
    env = os.environ.get
    parser.add_argument("--url", default=env("RCCHAT_URL"), help="server, e.g. https://chat.example.com")
    parser.add_argument("--user", default=env("RCCHAT_USER"), help="username to log in as")
    parser.add_argument(
        "--password-file", default=env("RCCHAT_PASSWORD_FILE"), help="file holding the password"
    )
    parser.add_argument("--ca-file", default=env("RCCHAT_CA_FILE"), help="CA certificate(s) to trust (PEM)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for every call (default 10)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("rooms", help="list the rooms you are in")

    send = commands.add_parser("send", help="send a message, optionally wait for replies")
    send.add_argument("room", help="@username (direct message), #channel or a room id")
    send.add_argument("text", nargs="+", help="the message ('-' reads it from stdin)")
    send.add_argument("--replies", type=int, default=0, help="wait for this many replies from others")
    send.add_argument("--reply-timeout", type=float, default=30.0, help="seconds to wait for them")

    read = commands.add_parser("read", help="print a room's messages as they arrive")
    read.add_argument("room", help="@username, #channel or a room id")
    read.add_argument("--count", type=int, default=0, help="stop after this many messages")
    read.add_argument("--duration", type=float, default=None, help="stop after this many seconds")

    chat = commands.add_parser("chat", help="interactive chat in one room (type, Enter; /quit leaves)")
    chat.add_argument("room", nargs="?", default="@erp-bot", help="@username, #channel or a room id")

    user = commands.add_parser("user", help="manage users (needs an admin login)")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = user_commands.add_parser("create", help="create a user (a test employee)")
    create.add_argument("username")
    create.add_argument("--name", help="display name (default: from the username)")
    create.add_argument("--email", help="e-mail (default: <username>@example.com)")
    create.add_argument("--role", action="append", help="role (repeatable; default: user)")
    create.add_argument(
        "--new-password-file",
        help="the new user's password: read from this file if it exists, else generated and written "
        "there (mode 0600). Default: ~/.config/rcchat/<username>.password",
    )
    return parser


def read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            password = Path(args.password_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ChatError(f"cannot read the password file {args.password_file}: {exc.strerror}") from None
        if not password:
            raise ChatError(f"the password file {args.password_file} is empty")
        return password
    if os.environ.get("RCCHAT_PASSWORD"):
        return os.environ["RCCHAT_PASSWORD"]
    if sys.stdin.isatty():
        return getpass.getpass(f"Password for {args.user}: ")
    raise ChatError("no password: give --password-file, set RCCHAT_PASSWORD, or run at a terminal")


def new_user_password(username: str, path_arg: str | None) -> tuple[str, Path]:
    """The new user's password from its file, or a generated one written there with mode 0600."""
    path = Path(path_arg or Path.home() / ".config" / "rcchat" / f"{username}.password").expanduser()
    if path.exists():
        password = path.read_text(encoding="utf-8").strip()
        if not password:
            raise ChatError(f"the password file {path} is empty")
        return password, path
    password = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    return password, path


def show(message: Message, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(message.as_dict(), ensure_ascii=False), flush=True)
        return
    when = message.ts.astimezone().strftime("%H:%M:%S") if message.ts else "--:--:--"
    edited = " (edited)" if message.edited else ""
    print(f"[{when}] {message.alias or message.username}: {message.text}{edited}", flush=True)


async def run(args: argparse.Namespace) -> int:
    if not args.url:
        raise ChatError("no server: give --url or set RCCHAT_URL")
    if not args.user:
        raise ChatError("no user: give --user or set RCCHAT_USER")
    password = read_password(args)
    async with Session(args.url, ca_file=args.ca_file, timeout=args.timeout) as session:
        await session.login(args.user, password)
        del password
        if args.command == "rooms":
            return await cmd_rooms(session, args)
        if args.command == "send":
            return await cmd_send(session, args)
        if args.command == "read":
            return await cmd_read(session, args)
        if args.command == "chat":
            from rcchat.interactive import chat

            return await chat(session, args.room)
        return await cmd_user_create(session, args)


async def cmd_rooms(session: Session, args: argparse.Namespace) -> int:
    rooms = await session.rooms()
    if args.json:
        print(json.dumps({"rooms": rooms}, ensure_ascii=False))
        return 0
    kinds = {"c": "channel", "p": "group", "d": "direct"}
    for room in rooms:
        unread = f"  ({room['unread']} unread)" if room["unread"] else ""
        print(f"{kinds.get(room['type'], room['type']):8} {room['name']:30} {room['id']}{unread}")
    return 0


async def cmd_send(session: Session, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == ["-"] else " ".join(args.text)
    room_id = await session.resolve_room(args.room)
    if args.replies <= 0:
        message_id = await session.send(room_id, text)
        if args.json:
            print(json.dumps({"room_id": room_id, "message_id": message_id, "replies": []}))
        else:
            print(f"sent {message_id}")
        return 0
    replies: list[Message] = []
    async with session.stream(room_id) as stream:  # subscribed before sending: no reply can slip by
        message_id = await session.send(room_id, text)
        async for message in stream.messages(duration=args.reply_timeout):
            if message.user_id == session.user_id or message.system:
                continue
            replies.append(message)
            if not args.json:
                show(message, as_json=False)
            if len(replies) >= args.replies:
                break
    if args.json:
        print(
            json.dumps(
                {"room_id": room_id, "message_id": message_id, "replies": [m.as_dict() for m in replies]},
                ensure_ascii=False,
            )
        )
    if len(replies) < args.replies:
        print(
            f"rcchat: {len(replies)} of {args.replies} replies within {args.reply_timeout:g} s",
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    return 0


async def cmd_read(session: Session, args: argparse.Namespace) -> int:
    room_id = await session.resolve_room(args.room)
    seen = 0
    async with session.stream(room_id) as stream:
        # On stderr in both modes: scripts wait for it to know the stream is subscribed.
        print(f"reading {args.room} (Ctrl-C stops)", file=sys.stderr, flush=True)
        async for message in stream.messages(duration=args.duration):
            show(message, as_json=args.json)
            seen += 1
            if args.count and seen >= args.count:
                break
    return 0


async def cmd_user_create(session: Session, args: argparse.Namespace) -> int:
    password, path = new_user_password(args.username, args.new_password_file)
    user_id = await session.create_user(
        args.username,
        name=args.name or args.username.replace(".", " ").replace("_", " ").title(),
        email=args.email or f"{args.username}@example.com",
        password=password,
        roles=args.role or ["user"],
    )
    if args.json:
        print(json.dumps({"user_id": user_id, "username": args.username, "password_file": str(path)}))
    else:
        print(f"created {args.username} ({user_id}); password in {path}")
        print(
            f"log in: python -m rcchat --url {session.url} --user {args.username} --password-file {path} chat"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except ChatTimeout as exc:
        print(f"rcchat: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    except ChatError as exc:
        print(f"rcchat: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            print(file=sys.stderr)
        return 130
