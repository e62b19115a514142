"""docs/support.md's log searches find what the components really log: the bot and the ERP run as real
processes (their log files hold exactly what `docker logs` shows of their containers), a registration
that needs approval and a refused API key happen, and the documented grep patterns match those lines."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def documented_pattern(container: str, field: str) -> str:
    """The grep pattern support.md gives for `docker logs <container>` lines with this field."""
    text = (ROOT / "docs/support.md").read_text(encoding="utf-8")
    found = re.findall(rf"docker logs {container} 2>&1 \| grep '(\"{field}\": [^']*)'", text)
    assert found, f"support.md has no log search of {container} for {field}"
    return found[0]


def lines_matching(log: Path, pattern: str, deadline: float = 15.0) -> list[dict]:
    end = time.monotonic() + deadline
    while True:
        hits = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if pattern in line]
        if hits or time.monotonic() > end:
            return hits
        time.sleep(0.2)


def test_the_pending_approval_search_finds_the_request(bot_stack) -> None:
    pattern = documented_pattern("photomatrix-chatbot", "outcome")
    user, room = bot_stack.new_user("support")
    bot_id = bot_stack.bot_user.user_id
    email = f"{user.username.replace('.', '-')}@example.com"
    for answer in ["регистрация", "Петрова Анна", "ACC", email, "-"]:
        user.converse(room, bot_id, answer)
    user.converse(room, bot_id, "да")
    hits = [
        h for h in lines_matching(bot_stack.bot.process.log_path, pattern) if h.get("user") == user.username
    ]
    assert hits, f"no {pattern} line for {user.username}"
    assert hits[0]["message"] == "command"
    assert email not in json.dumps(hits)  # masked, as the doc says

    by_user = documented_pattern("photomatrix-chatbot", "user")
    assert by_user == '"user": "ivan.petrov"'
    own = lines_matching(bot_stack.bot.process.log_path, f'"user": "{user.username}"')
    assert {"pending_approval"} <= {h.get("outcome") for h in own}


def test_the_auth_search_finds_a_refused_key(bot_stack) -> None:
    pattern = documented_pattern("photomatrix-erp-api", "action")
    wrong = "wrong-" + secrets.token_hex(8)
    response = httpx.get(
        f"{bot_stack.erp.base_url}/api/bot/v1/positions", headers={"X-API-Key": wrong}, timeout=15
    )
    assert response.status_code == 401
    hits = lines_matching(bot_stack.erp.process.log_path, pattern)
    assert hits
    assert {"unauthorized"} <= {h["outcome"] for h in hits}
    assert all(h.get("ip") and h.get("request_id") for h in hits)
    assert wrong not in bot_stack.erp.process.log_path.read_text(errors="replace")


def test_the_readyz_one_liner_prints_the_failing_check_not_a_traceback(fresh_bot_stack) -> None:
    """The quick reference's `python -m bot.ready` (without `docker exec photomatrix-chatbot`), against a
    bot process: 200 and exit 0 while ready, 503 naming the failing check and exit 1 once the ERP is gone."""
    import shlex
    import subprocess
    import sys

    from plugins.docs import shell_commands

    (line,) = [
        c.text
        for c in shell_commands(ROOT / "docs/quickref-devops.md")
        if c.text.startswith("docker exec photomatrix-chatbot python -m bot.ready")
    ]
    module = shlex.split(line, comments=True)[5]
    port = fresh_bot_stack.bot.http_url.rsplit(":", 1)[1]
    env = {**os.environ, "BOT_HTTP_PORT": port}
    env.pop("BOT_HTTP_TLS_CERTFILE", None)

    def run() -> tuple[str, dict]:
        done = subprocess.run(
            [sys.executable, "-m", module], capture_output=True, text=True, timeout=30, check=False, env=env
        )
        assert "Traceback" not in done.stdout + done.stderr
        status, _, body = done.stdout.strip().partition(" ")
        assert done.returncode == (0 if status == "200" else 1), (done.returncode, done.stdout, done.stderr)
        return status, json.loads(body)

    assert run()[0] == "200"
    fresh_bot_stack.erp.stop()
    deadline = time.monotonic() + 30
    while (answer := run())[0] == "200" and time.monotonic() < deadline:
        time.sleep(0.5)
    status, body = answer
    assert status == "503"
    assert "erp" in json.dumps(body)
