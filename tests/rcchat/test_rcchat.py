"""rcchat against a real Rocket.Chat API process (the simulator, or ROCKETCHAT_URL): login, rooms, send,
read as messages arrive, JSON output, user creation, TLS with a CA file, timeouts, clear errors."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

import pytest
from plugins.processes import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin_file(rocketchat, tmp_path_factory):
    path = tmp_path_factory.mktemp("admin") / "admin_password"
    path.write_text(rocketchat.admin_password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def as_admin(rocketchat, admin_file):
    return [
        "--url",
        rocketchat.base_url,
        "--user",
        rocketchat.admin_username,
        "--password-file",
        str(admin_file),
    ]


def test_user_create_writes_a_private_password_file_and_the_user_can_log_in(
    rocketchat, admin_file, run_rcchat, tmp_path
):
    username = f"emp.{secrets.token_hex(3)}"
    password_file = tmp_path / "users" / f"{username}.password"
    created = run_rcchat(
        *as_admin(rocketchat, admin_file),
        "--json",
        "user",
        "create",
        username,
        "--new-password-file",
        str(password_file),
    )
    assert created.returncode == 0, created.stderr
    answer = json.loads(created.stdout)
    assert answer["username"] == username
    assert answer["user_id"]
    assert password_file.stat().st_mode & 0o777 == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 20
    assert password not in created.stdout + created.stderr

    user_info = rocketchat.api("GET", "users.info", params={"username": username})
    assert user_info.json()["user"]["_id"] == answer["user_id"]

    rooms = run_rcchat(
        "--url",
        rocketchat.base_url,
        "--user",
        username,
        "--password-file",
        str(password_file),
        "--json",
        "rooms",
    )
    assert rooms.returncode == 0, rooms.stderr
    assert isinstance(json.loads(rooms.stdout)["rooms"], list)

    again = run_rcchat(
        *as_admin(rocketchat, admin_file),
        "user",
        "create",
        username,
        "--new-password-file",
        str(password_file),
    )
    assert again.returncode == 1
    assert "users.create" in again.stderr
    assert "Traceback" not in again.stderr
    assert password_file.read_text().strip() == password  # a refused create loses nothing


def test_send_to_a_direct_message_then_rooms_lists_it(rocketchat, run_rcchat):
    alice, bob = rocketchat.create_user(), rocketchat.create_user()
    env = {
        "RCCHAT_URL": rocketchat.base_url,
        "RCCHAT_USER": alice.username,
        "RCCHAT_PASSWORD": alice.password,
    }
    sent = run_rcchat("--json", "send", f"@{bob.username}", "hello", "bob", env=env)
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)

    history = rocketchat.api("GET", "dm.history", headers=bob.headers, params={"roomId": answer["room_id"]})
    texts = [m["msg"] for m in history.json()["messages"]]
    assert "hello bob" in texts

    rooms = run_rcchat("--json", "rooms", env=env)
    listed = {room["id"]: room for room in json.loads(rooms.stdout)["rooms"]}
    assert listed[answer["room_id"]]["type"] == "d"
    assert listed[answer["room_id"]]["name"] == bob.username

    text = run_rcchat("rooms", env=env)
    assert f"direct   {bob.username}" in text.stdout


def test_read_prints_messages_as_they_arrive(rocketchat):
    alice, bob = rocketchat.create_user(), rocketchat.create_user()
    room = rocketchat.api("POST", "dm.create", headers=bob.headers, json={"username": alice.username})
    room_id = room.json()["room"]["_id"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RCCHAT_")},
        "RCCHAT_URL": rocketchat.base_url,
        "RCCHAT_USER": alice.username,
        "RCCHAT_PASSWORD": alice.password,
    }
    reader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rcchat",
            "--json",
            "read",
            f"@{bob.username}",
            "--count",
            "2",
            "--duration",
            "30",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stderr is not None
        assert "reading" in reader.stderr.readline()  # subscribed: what comes now is streamed
        for text in ("first", "second"):
            response = rocketchat.api(
                "POST",
                "chat.sendMessage",
                headers=bob.headers,
                json={"message": {"rid": room_id, "msg": text}},
            )
            assert response.status_code == 200, response.text
        out, _ = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [m["text"] for m in lines] == ["first", "second"]
    assert {m["username"] for m in lines} == {bob.username}
    assert all(m["room_id"] == room_id and m["ts"] for m in lines)


def test_send_waits_for_a_reply_from_the_stream(rocketchat, run_rcchat):
    alice, bob = rocketchat.create_user(), rocketchat.create_user()
    room_id = rocketchat.api(
        "POST", "dm.create", headers=bob.headers, json={"username": alice.username}
    ).json()["room"]["_id"]
    stop = threading.Event()

    def answer_when_asked() -> None:  # bob answers the first message alice sends
        while not stop.wait(0.1):
            history = rocketchat.api(
                "GET", "dm.history", headers=bob.headers, params={"roomId": room_id}
            ).json()
            if any(m["msg"] == "ping?" for m in history.get("messages", [])):
                rocketchat.api(
                    "POST",
                    "chat.sendMessage",
                    headers=bob.headers,
                    json={"message": {"rid": room_id, "msg": "pong!"}},
                )
                return

    thread = threading.Thread(target=answer_when_asked, daemon=True)
    thread.start()
    env = {
        "RCCHAT_URL": rocketchat.base_url,
        "RCCHAT_USER": alice.username,
        "RCCHAT_PASSWORD": alice.password,
    }
    try:
        result = run_rcchat("--json", "send", f"@{bob.username}", "ping?", "--replies", "1", env=env)
    finally:
        stop.set()
        thread.join(10)
    assert result.returncode == 0, result.stderr
    replies = json.loads(result.stdout)["replies"]
    assert [r["text"] for r in replies] == ["pong!"]

    silent = run_rcchat(
        "send", f"@{bob.username}", "anyone?", "--replies", "1", "--reply-timeout", "1", env=env
    )
    assert silent.returncode == 3
    assert "0 of 1 replies within 1 s" in silent.stderr


def test_wrong_password_is_a_clear_refusal_without_the_secret(rocketchat, run_rcchat, secret_file):
    wrong = "not-the-password-" + secrets.token_hex(4)
    result = run_rcchat(
        "--url",
        rocketchat.base_url,
        "--user",
        rocketchat.admin_username,
        "--password-file",
        str(secret_file("wrong", wrong)),
        "rooms",
    )
    assert result.returncode == 1
    assert "refused: wrong username or password" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_passwords_never_come_from_the_command_line(rocketchat, run_rcchat, secret_file):
    argv = run_rcchat("--url", rocketchat.base_url, "--user", "x", "--password", "secret", "rooms")
    assert argv.returncode == 2
    assert "invalid choice" in argv.stderr  # no --password option (nor an abbreviation of one)
    missing = run_rcchat("--url", rocketchat.base_url, "--user", "x", "rooms")  # no terminal, no file
    assert missing.returncode == 1
    assert "no password" in missing.stderr
    empty = run_rcchat(
        "--url", rocketchat.base_url, "--user", "x", "--password-file", str(secret_file("e", "")), "rooms"
    )
    assert empty.returncode == 1
    assert "is empty" in empty.stderr


def test_unknown_room_and_empty_message_are_refused_clearly(rocketchat, run_rcchat):
    alice = rocketchat.create_user()
    env = {
        "RCCHAT_URL": rocketchat.base_url,
        "RCCHAT_USER": alice.username,
        "RCCHAT_PASSWORD": alice.password,
    }
    unknown = run_rcchat("send", "#no-such-room-here", "hi", env=env)
    assert unknown.returncode == 1
    assert "you are not a member" in unknown.stderr
    nobody = run_rcchat("send", "@no.such.user.anywhere", "hi", env=env)
    assert nobody.returncode == 1
    assert "dm.create" in nobody.stderr
    assert "Traceback" not in nobody.stderr
    bob = rocketchat.create_user()
    blank = run_rcchat("send", f"@{bob.username}", " ", env=env)
    assert blank.returncode == 1
    assert "empty" in blank.stderr


def test_tls_with_the_ca_file_and_refusal_without_it(rocketchat_tls, rocketchat, run_rcchat):
    alice, bob = rocketchat.create_user(), rocketchat.create_user()
    env = {"RCCHAT_URL": rocketchat_tls.url, "RCCHAT_USER": alice.username, "RCCHAT_PASSWORD": alice.password}
    untrusted = run_rcchat("rooms", env=env)
    assert untrusted.returncode == 1
    assert "not trusted (give the CA file with --ca-file)" in untrusted.stderr

    env["RCCHAT_CA_FILE"] = str(rocketchat_tls.ca_file)
    room_id = rocketchat.api(
        "POST", "dm.create", headers=bob.headers, json={"username": alice.username}
    ).json()["room"]["_id"]
    reader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rcchat",
            "--json",
            "read",
            f"@{bob.username}",
            "--count",
            "1",
            "--duration",
            "30",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stderr is not None
        assert "reading" in reader.stderr.readline()  # REST and wss:// both verified against the CA
        rocketchat.api(
            "POST",
            "chat.sendMessage",
            headers=bob.headers,
            json={"message": {"rid": room_id, "msg": "over tls"}},
        )
        out, _ = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0
    assert json.loads(out)["text"] == "over tls"


def test_every_call_has_a_timeout(run_rcchat, secret_file):
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = run_rcchat(
            "--url",
            f"http://127.0.0.1:{port}",
            "--user",
            "x",
            "--password-file",
            str(secret_file("p", "pw")),
            "--timeout",
            "1",
            "rooms",
            timeout=30,
        )
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert result.returncode == 3
    assert "did not answer login within 1 s" in result.stderr
    assert elapsed < 15


def test_the_rest_rate_limiter_is_waited_out_once(rocketchat_sim, run_rcchat, secret_file):
    limited = rocketchat_sim(
        {
            "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Calls_Default": "1",
            "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Time_Default": "3000",
        }
    )
    password_file = str(secret_file("admin", limited.admin_password))
    args = ["--url", limited.base_url, "--user", limited.admin_username, "--password-file", password_file]
    args.append("rooms")
    first = run_rcchat(*args)  # the fixture's own login may already have used the window
    second = run_rcchat(*args)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "login rate limited, retrying in" in first.stderr + second.stderr


def test_read_shows_an_edit_once_as_edited(rocketchat):
    alice, bob = rocketchat.create_user(), rocketchat.create_user()
    room = rocketchat.api("POST", "dm.create", headers=bob.headers, json={"username": alice.username})
    room_id = room.json()["room"]["_id"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RCCHAT_")},
        "RCCHAT_URL": rocketchat.base_url,
        "RCCHAT_USER": alice.username,
        "RCCHAT_PASSWORD": alice.password,
    }
    argv = [sys.executable, "-m", "rcchat", "read", f"@{bob.username}", "--count", "2", "--duration", "30"]
    reader = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert reader.stderr is not None
        assert "reading" in reader.stderr.readline()
        sent = rocketchat.api(
            "POST", "chat.sendMessage", headers=bob.headers, json={"message": {"rid": room_id, "msg": "v1"}}
        ).json()["message"]["_id"]
        edited = rocketchat.api(
            "POST", "chat.update", headers=bob.headers, json={"roomId": room_id, "msgId": sent, "text": "v2"}
        )
        assert edited.status_code == 200, edited.text
        out, _ = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"] {bob.username}: v1")
    assert lines[1].endswith(f"] {bob.username}: v2 (edited)")
