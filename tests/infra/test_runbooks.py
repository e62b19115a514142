"""The devops quick reference's read-only commands, run exactly as written (read from the document) against
the deployed stack. The only substitution: the example employee `ivan.petrov` becomes a fresh test user."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
from plugins.docs import shell_commands
from plugins.infra import ROOT, Stack

pytestmark = [pytest.mark.infra, pytest.mark.e2e]

QUICKREF = ROOT / "docs" / "quickref-devops.md"
USERS_DIR = Path("/root/.config/rcchat")


def documented(prefix: str) -> list[str]:
    found = [c.text for c in shell_commands(QUICKREF) if c.text.startswith(prefix) and not c.illustrative]
    assert found, f"the quick reference has no command starting with {prefix!r}"
    return found


def bash(command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_verify_commands_run_as_written(stack: Stack) -> None:
    (ps,) = documented("docker ps --filter name=photomatrix-")
    listed = bash(ps)
    assert listed.returncode == 0, listed.stderr
    assert all(f"{name} Up" in listed.stdout for name in stack.containers), listed.stdout
    assert "(healthy)" in listed.stdout

    (curl,) = documented("curl ")
    info = bash(curl)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["success"] is True

    (ready,) = documented("docker exec photomatrix-chatbot python -m bot.ready")
    answer = bash(ready)
    assert answer.returncode == 0, answer.stderr
    status, _, body = answer.stdout.strip().partition(" ")
    assert status == "200", answer.stdout
    assert "Traceback" not in answer.stdout + answer.stderr
    assert json.loads(body)


def test_terminal_client_commands_run_as_written(stack: Stack) -> None:
    name = f"qr.{secrets.token_hex(3)}"
    make = ["make", "--no-print-directory", "-o", ".venv/.installed"]
    made = subprocess.run(
        [*make, "user", f"NAME={name}", f"RC_USERS_DIR={USERS_DIR}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    try:
        rooms, send = documented(".venv/bin/python -m rcchat")
        listed = bash(rooms)
        assert listed.returncode == 0, listed.stderr
        assert "admins" in {room["name"] for room in json.loads(listed.stdout)["rooms"]}

        assert "ivan.petrov" in send
        asked = bash(send.replace("ivan.petrov", name))
        assert asked.returncode == 0, asked.stderr
        (reply,) = json.loads(asked.stdout)["replies"]
        assert reply["username"] == "erp-bot"
        assert "`помощь" in reply["text"]
    finally:
        (USERS_DIR / f"{name}.password").unlink(missing_ok=True)
