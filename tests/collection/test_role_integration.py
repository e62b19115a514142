"""The rocketchat_bootstrap role end to end: check mode, first run, idempotent rerun, no secrets, rotation."""

from __future__ import annotations

import hashlib
import stat
import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration

ROLE_PLAY = """
- name: Bootstrap Rocket.Chat
  hosts: localhost
  gather_facts: false
  roles:
    - role: rocketchat_bootstrap
  post_tasks:
    - name: Facts handed to the roles that follow
      ansible.builtin.debug:
        msg: "bot_user_id={{ rocketchat_bootstrap_bot_user_id }}"
"""


def role_vars(target, secrets_dir, **overrides):
    # Unique names, so the test also reruns against one real server (ROCKETCHAT_URL).
    suffix = uuid.uuid4().hex[:6]
    bot = f"erp-bot-{suffix}"
    values = {
        "rocketchat_bootstrap_bot_username": bot,
        "rocketchat_bootstrap_bot_email": f"{bot}@example.test",
        "rocketchat_bootstrap_bot_token_name": bot,
        "rocketchat_bootstrap_rooms": [
            {"name": "general", "type": "channel", "members": [bot]},
            {"name": f"support-{suffix}", "type": "channel", "topic": "ERP questions", "members": [bot]},
            {"name": f"admins-{suffix}", "type": "group", "members": [bot]},
        ],
        "rocketchat_bootstrap_incoming_webhook": {
            "name": f"erp-alerts-{suffix}",
            "channel": f"#admins-{suffix}",
            "username": bot,
            "alias": "ERP",
            "emoji": ":bell:",
        },
        "rocketchat_bootstrap_outgoing_webhook": {
            "name": f"erp-bot-webhook-{suffix}",
            "channels": [f"@{bot}", f"#support-{suffix}"],
            "username": bot,
            "urls": ["http://127.0.0.1:9/webhook"],
            "trigger_words": [],
        },
        "rocketchat_bootstrap_url": target.base_url,
        "rocketchat_bootstrap_admin_username": target.admin_username,
        "rocketchat_bootstrap_admin_password": target.admin_password,
        "rocketchat_bootstrap_bot_password": f"Bot-pass-{uuid.uuid4().hex}",
        "rocketchat_bootstrap_secrets_dir": str(secrets_dir),
        "rocketchat_bootstrap_site_name": f"Photomatrix {suffix}",
        "rocketchat_bootstrap_smtp": {
            "host": "smtp.example.test",
            "port": 587,
            "protocol": "smtp",
            "username": "mailer",
            "password": f"smtp-pass-{uuid.uuid4().hex}",
            "from_email": "no-reply@example.test",
        },
        # Many runs in a minute from one address: keep Rocket.Chat's per-IP limiter out of the way of `login`.
        "rocketchat_bootstrap_rate_limiter": {"enabled": True, "calls": 1000, "interval_ms": 60000},
    }
    values.update(overrides)
    return values


def api(target, endpoint, user_id=None, token=None, **params):
    headers = {"X-User-Id": user_id or target.admin_user_id, "X-Auth-Token": token or target.admin_token}
    return httpx.get(f"{target.base_url}/api/v1/{endpoint}", params=params, headers=headers, timeout=10)


def secrets_in(values, files):
    found = [values["rocketchat_bootstrap_admin_password"], values["rocketchat_bootstrap_bot_password"]]
    found.append(values["rocketchat_bootstrap_smtp"]["password"])
    found.append(hashlib.sha256(values["rocketchat_bootstrap_admin_password"].encode()).hexdigest())
    for path in files:
        if path.exists():
            content = path.read_text().strip()
            found.append(content.rsplit("/", 1)[-1])  # the webhook token part of the URL
    return found


def test_role_check_first_rerun_quiet_and_rotation(rc_target, playbook, tmp_path):
    secrets_dir = tmp_path / "secrets"
    values = role_vars(rc_target, secrets_dir)
    token_file = secrets_dir / "erp-bot-token"
    user_id_file = secrets_dir / "erp-bot-user-id"
    url_file = secrets_dir / "erp-alerts-webhook-url"
    outgoing_file = secrets_dir / "erp-bot-webhook-token"

    checked = playbook.run(ROLE_PLAY, "--check", "--diff", extra_vars=values)
    assert checked.returncode == 0, checked.output[-4000:]
    assert checked.recap()["changed"] >= 5
    bot_name = values["rocketchat_bootstrap_bot_username"]
    suffix = bot_name.rsplit("-", 1)[1]
    assert api(rc_target, "users.info", username=bot_name).status_code == 400  # not created
    assert not secrets_dir.exists()

    first = playbook.run(ROLE_PLAY, extra_vars=values)
    assert first.returncode == 0, first.output[-4000:]
    assert first.recap()["changed"] >= 8
    for path in (token_file, user_id_file, url_file, outgoing_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700

    assert api(rc_target, "settings/Site_Name").json()["value"] == values["rocketchat_bootstrap_site_name"]
    assert api(rc_target, "settings/Accounts_RegistrationForm").json()["value"] == "Disabled"
    assert (
        api(rc_target, "settings/Accounts_TwoFactorAuthentication_By_Email_Auto_Opt_In").json()["value"]
        is False
    )
    bot = api(rc_target, "users.info", username=bot_name, includeUserRooms="true").json()["user"]
    assert bot["roles"] == ["bot"]
    assert bot["emails"][0]["verified"] is False
    assert user_id_file.read_text().strip() == bot["_id"]
    assert f"bot_user_id={bot['_id']}" in first.stdout
    bot_rooms = {room["name"]: room["t"] for room in bot["rooms"]}
    assert bot_rooms == {"general": "c", f"support-{suffix}": "c", f"admins-{suffix}": "p"}

    token = token_file.read_text().strip()
    me = api(rc_target, "me", user_id=bot["_id"], token=token)
    assert me.status_code == 200
    assert me.json()["username"] == bot_name
    hook = httpx.post(url_file.read_text().strip(), json={"text": "ERP alert: role test"}, timeout=10)
    assert hook.status_code == 200, hook.text
    outgoing_name = f"erp-bot-webhook-{suffix}"
    hooks = api(rc_target, "integrations.list", name=outgoing_name).json()["integrations"]
    assert [h["token"] for h in hooks if h["name"] == outgoing_name] == [outgoing_file.read_text().strip()]
    # The values' dict names no retry fields: the role's (a 503 from a bot replica is retried, issue 17).
    assert [
        (h["retryFailedCalls"], h["retryCount"], h["retryDelay"]) for h in hooks if h["name"] == outgoing_name
    ] == [(True, 6, "powers-of-two")]

    files = (token_file, url_file, outgoing_file)
    for secret in [*secrets_in(values, files), token]:
        assert secret not in first.output

    again = playbook.run(ROLE_PLAY, "-vvv", "--diff", extra_vars=values)
    assert again.returncode == 0, again.output[-4000:]
    assert again.recap()["changed"] == 0, again.stdout[-6000:]
    for secret in [*secrets_in(values, files), token]:
        assert secret not in again.output

    rotated = playbook.run(ROLE_PLAY, "-vvv", extra_vars={**values, "rotate_bot_token": True})
    assert rotated.returncode == 0, rotated.output[-4000:]
    assert rotated.recap()["changed"] == 1
    new_token = token_file.read_text().strip()
    assert new_token != token
    assert new_token not in rotated.output
    assert api(rc_target, "me", user_id=bot["_id"], token=token).status_code == 401
    assert api(rc_target, "me", user_id=bot["_id"], token=new_token).status_code == 200


def test_role_wrong_admin_password_fails_clearly(rc_target, playbook, tmp_path):
    wrong = f"wrong-{uuid.uuid4().hex}"
    values = role_vars(rc_target, tmp_path / "secrets", rocketchat_bootstrap_admin_password=wrong)
    run = playbook.run(ROLE_PLAY, "-vvv", extra_vars=values)
    assert run.returncode != 0
    assert "failed (HTTP 401" in run.stdout
    assert "wrong user name or password" in run.stdout
    assert wrong not in run.output
    assert values["rocketchat_bootstrap_bot_password"] not in run.output


def test_role_refuses_to_run_without_passwords(rc_target, playbook, tmp_path):
    values = role_vars(rc_target, tmp_path / "secrets", rocketchat_bootstrap_bot_password="")
    run = playbook.run(ROLE_PLAY, extra_vars=values)
    assert run.returncode != 0
    assert "rocketchat_bootstrap_bot_password must be set" in run.output
    assert values["rocketchat_bootstrap_admin_password"] not in run.output
