"""End to end with the real bot (simulator + ERP + bot, each a process): create an employee with rcchat,
DM the bot `help` / `помощь`, read its reply from the realtime stream; the interactive client on a
pseudo-terminal (what a person sees); `make user` and `make chat` as documented."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest
from plugins.processes import ROOT

pytestmark = pytest.mark.e2e

# The help lists the commands in the language it was asked in (the wording is the bot's to change).
HELP_EN = "`help"
HELP_RU = "`помощь"


@pytest.fixture(scope="module")
def admin_file(bot_stack, tmp_path_factory):
    path = tmp_path_factory.mktemp("admin") / "admin_password"
    path.write_text(bot_stack.rc.admin_password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def create_employee(bot_stack, admin_file, run_rcchat, directory) -> tuple[str, str]:
    username = f"emp.{secrets.token_hex(3)}"
    password_file = directory / f"{username}.password"
    created = run_rcchat(
        "--url",
        bot_stack.rc.base_url,
        "--user",
        bot_stack.rc.admin_username,
        "--password-file",
        str(admin_file),
        "user",
        "create",
        username,
        "--new-password-file",
        str(password_file),
    )
    assert created.returncode == 0, created.stderr
    assert f"created {username}" in created.stdout
    return username, str(password_file)


@pytest.mark.parametrize(("command", "expected"), [("help", HELP_EN), ("помощь", HELP_RU)])
def test_new_employee_asks_the_bot_for_help_and_reads_the_reply(
    bot_stack, admin_file, run_rcchat, tmp_path, command, expected
):
    username, password_file = create_employee(bot_stack, admin_file, run_rcchat, tmp_path)
    result = run_rcchat(
        "--url",
        bot_stack.rc.base_url,
        "--user",
        username,
        "--password-file",
        password_file,
        "--json",
        "send",
        f"@{bot_stack.bot_user.username}",
        command,
        "--replies",
        "1",
        "--reply-timeout",
        "30",
    )
    assert result.returncode == 0, result.stderr
    (reply,) = json.loads(result.stdout)["replies"]
    assert reply["user_id"] == bot_stack.bot_user.user_id
    assert expected in reply["text"]
    assert "Photomatrix" in reply["text"]


def test_interactive_chat_on_a_terminal(bot_stack, admin_file, run_rcchat, tmp_path, pty_session):
    username, password_file = create_employee(bot_stack, admin_file, run_rcchat, tmp_path)
    bot = bot_stack.bot_user.username
    client = [sys.executable, "-m", "rcchat", "--url", bot_stack.rc.base_url, "--user", username]
    terminal = pty_session(
        [*client, "chat", f"@{bot}"],
        env={"RCCHAT_PASSWORD_FILE": password_file},
    )
    terminal.expect(f"as {username}, room @{bot}")
    terminal.type("помощь")
    screen = terminal.expect(HELP_RU)
    assert f"] {bot}: " in screen  # shown as "[time] sender: text"
    terminal.type("/quit")
    assert terminal.wait() == 0


def test_password_prompt_on_a_terminal_does_not_echo(
    bot_stack, admin_file, run_rcchat, tmp_path, pty_session
):
    username, password_file = create_employee(bot_stack, admin_file, run_rcchat, tmp_path)
    password = Path(password_file).read_text(encoding="utf-8").strip()
    terminal = pty_session(
        [sys.executable, "-m", "rcchat", "--url", bot_stack.rc.base_url, "--user", username, "rooms"]
    )
    terminal.expect(f"Password for {username}:")
    terminal.type(password)
    assert terminal.wait() == 0
    assert password not in terminal.screen


def test_make_user_and_make_chat_over_tls(bot_stack, bot_stack_tls, admin_file, tmp_path, pty_session):
    name = f"make.{secrets.token_hex(3)}"
    variables = [
        f"RC_URL={bot_stack_tls.url}",
        f"RC_CA_FILE={bot_stack_tls.ca_file}",
        f"RC_ADMIN={bot_stack.rc.admin_username}",
        f"RC_ADMIN_PASSWORD_FILE={admin_file}",
        f"RC_USERS_DIR={tmp_path}",
    ]
    # -o: the shared .venv counts as set up (CI's `make test` ran `make setup` before).
    make = ["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed"]
    user = pty_session([*make, "user", f"NAME={name}", *variables])
    user.expect(f"created {name}")
    assert user.wait(60) == 0
    assert (tmp_path / f"{name}.password").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / f"{name}.password").read_text().strip() not in user.screen

    chat = pty_session([*make, "chat", f"NAME={name}", f"ROOM=@{bot_stack.bot_user.username}", *variables])
    chat.expect(f"as {name}, room @{bot_stack.bot_user.username}", timeout=60)
    chat.type("help")
    chat.expect(HELP_EN)
    chat.type("/quit")
    assert chat.wait() == 0

    usage = pty_session([*make, "user"])
    usage.expect("usage: make user NAME=<username>")
    assert usage.wait() != 0
