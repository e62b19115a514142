"""First access to the deployed stack exactly as the end of `make up` describes it: the admin password file,
the CA, the admins' room, `make user` and `make chat` with their defaults, the bot answering in a DM,
all through the nginx proxy (TLS, rate limits) with the terminal client rcchat."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from plugins.infra import ROOT, Stack

pytestmark = [pytest.mark.infra, pytest.mark.e2e]

HELP_RU = "`помощь"  # the help lists its commands in the language it was asked in


def admin_password_file(stack: Stack) -> Path:
    return stack.root / "secrets" / "rocketchat" / "admin_password"


def rcchat(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = ["--url", stack.base_url, "--ca-file", str(stack.ca_file), "--timeout", "20"]
    return subprocess.run(
        [sys.executable, "-m", "rcchat", *base, *args],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("RCCHAT_")},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_admin_password_file_the_summary_names_is_private(stack: Stack) -> None:
    path = admin_password_file(stack)
    assert path.is_file(), path
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip()


def test_the_admin_logs_in_with_it_and_sees_the_admins_room(stack: Stack) -> None:
    result = rcchat(
        stack, "--user", "admin", "--password-file", str(admin_password_file(stack)), "--json", "rooms"
    )
    assert result.returncode == 0, result.stderr
    rooms = {room["name"]: room for room in json.loads(result.stdout)["rooms"]}
    assert rooms["admins"]["type"] == "p"


def test_make_user_then_the_employee_asks_the_bot_for_help(stack: Stack, tmp_path: Path) -> None:
    name = f"first.{secrets.token_hex(3)}"
    made = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            "user",
            f"NAME={name}",
            f"RC_USERS_DIR={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    password_file = tmp_path / f"{name}.password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert password_file.read_text().strip() not in made.stdout + made.stderr
    assert admin_password_file(stack).read_text().strip() not in made.stdout + made.stderr

    reply = rcchat(
        stack,
        "--user",
        name,
        "--password-file",
        str(password_file),
        "--json",
        "send",
        "@erp-bot",
        "помощь",
        "--replies",
        "1",
        "--reply-timeout",
        "60",
    )
    assert reply.returncode == 0, reply.stderr
    (answer,) = json.loads(reply.stdout)["replies"]
    assert answer["username"] == "erp-bot"
    assert HELP_RU in answer["text"]


def test_make_chat_opens_a_dm_with_the_bot(stack: Stack, tmp_path: Path) -> None:
    name = f"chat.{secrets.token_hex(3)}"
    make = ["make", "--no-print-directory", "-o", ".venv/.installed"]
    created = subprocess.run(
        [*make, "user", f"NAME={name}", f"RC_USERS_DIR={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    chat = subprocess.run(
        [*make, "chat", f"NAME={name}", f"RC_USERS_DIR={tmp_path}"],
        cwd=ROOT,
        input="help\n",
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # stdin ends after one line: the client sends it and leaves; the room it opened is the bot's DM.
    assert chat.returncode == 0, chat.stdout + chat.stderr
    assert f"as {name}, room @erp-bot" in chat.stdout
