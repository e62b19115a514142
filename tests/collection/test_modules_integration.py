"""The modules run by ansible-playbook against Rocket.Chat (the simulator, or a real one via ROCKETCHAT_URL).

Each test checks the contract an operator relies on: a first run changes, a second run changes nothing, check
mode reports without writing, failures are clear, and no secret reaches the output even with -vvv.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration

# Most plays use the admin's session token (Rocket.Chat rate-limits `login` per client IP), with the password
# for the 2FA fallback; LOGIN_PLAY_HEADER logs in with user name and password.
PLAY_HEADER = """
- name: Test play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/photomatrix.rocketchat.rocketchat:
      server_url: "{{ rc_url }}"
      auth_user_id: "{{ rc_user_id }}"
      auth_token: "{{ rc_token }}"
      auth_password: "{{ rc_password }}"
  tasks:
"""
LOGIN_PLAY_HEADER = PLAY_HEADER.replace(
    'auth_user_id: "{{ rc_user_id }}"\n      auth_token: "{{ rc_token }}"', 'auth_username: "{{ rc_user }}"'
)


def connection_vars(target) -> dict[str, str]:
    return {
        "rc_url": target.base_url,
        "rc_user": target.admin_username,
        "rc_password": target.admin_password,
        "rc_user_id": target.admin_user_id,
        "rc_token": target.admin_token,
    }


def admin_get(target, endpoint: str, **params) -> dict:
    response = httpx.get(
        f"{target.base_url}/api/v1/{endpoint}",
        params=params,
        headers={"X-User-Id": target.admin_user_id, "X-Auth-Token": target.admin_token},
        timeout=10,
    )
    return response.json()


def task_results(run) -> list[dict]:
    """Results printed by the default callback in JSON format ("ok: [localhost] => {...}")."""
    results = []
    decoder = json.JSONDecoder()
    text = run.stdout
    for marker in ("ok: [localhost] => ", "changed: [localhost] => ", "fatal: [localhost]: FAILED! => "):
        start = 0
        while (index := text.find(marker, start)) >= 0:
            obj, end = decoder.raw_decode(text[index + len(marker) :])
            results.append(obj)
            start = index + len(marker) + end
    return results


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_settings_check_mode_then_change_then_nothing(rc_target, playbook):
    site_name = unique("Photomatrix")
    play = (
        LOGIN_PLAY_HEADER
        + f"""
    - name: Site name and language
      photomatrix.rocketchat.rocketchat_setting:
        settings:
          Site_Name: "{site_name}"
          Language: ru
          SMTP_Port: 2525
"""
    )
    before = admin_get(rc_target, "settings/Site_Name")["value"]
    checked = playbook.run(play, "--check", "--diff", extra_vars=connection_vars(rc_target))
    assert checked.returncode == 0, checked.output
    assert checked.recap()["changed"] == 1
    assert site_name in checked.stdout  # the diff shows what would change
    assert admin_get(rc_target, "settings/Site_Name")["value"] == before

    first = playbook.run(play, extra_vars=connection_vars(rc_target))
    assert first.returncode == 0, first.output
    assert first.recap()["changed"] == 1
    assert admin_get(rc_target, "settings/Site_Name")["value"] == site_name
    assert str(admin_get(rc_target, "settings/SMTP_Port")["value"]) == "2525"

    second = playbook.run(play, "--diff", extra_vars=connection_vars(rc_target))
    assert second.returncode == 0, second.output
    assert second.recap()["changed"] == 0


def test_secrets_never_reach_the_output(rc_target, playbook):
    smtp_password = unique("smtp-Pa55")
    play = (
        PLAY_HEADER
        + """
    - name: SMTP password
      photomatrix.rocketchat.rocketchat_setting:
        settings:
          SMTP_Password: "{{ smtp_password }}"
"""
    )
    extra = {**connection_vars(rc_target), "smtp_password": smtp_password}
    run = playbook.run(play, "-vvv", "--diff", extra_vars=extra)
    assert run.returncode == 0, run.output
    assert run.recap()["changed"] == 1
    for secret in (
        smtp_password,
        rc_target.admin_password,
        hashlib.sha256(rc_target.admin_password.encode()).hexdigest(),
    ):
        assert secret not in run.output
    again = playbook.run(play, "-vvv", "--diff", extra_vars=extra)
    assert again.recap()["changed"] == 0
    assert smtp_password not in again.output


def test_wrong_password_fails_clearly(rc_target, playbook):
    play = (
        LOGIN_PLAY_HEADER
        + """
    - name: Site name
      photomatrix.rocketchat.rocketchat_setting:
        name: Site_Name
        value: never-written
"""
    )
    wrong = unique("wrong-password")
    run = playbook.run(play, extra_vars={**connection_vars(rc_target), "rc_password": wrong})
    assert run.returncode != 0
    assert "wrong user name or password" in run.stdout
    assert wrong not in run.output


def test_token_session_without_second_factor_fails_clearly(rc_target, playbook):
    play = """
- name: Token session
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Site name with a token and no password
      photomatrix.rocketchat.rocketchat_setting:
        server_url: "{{ rc_url }}"
        auth_user_id: "{{ rc_user_id }}"
        auth_token: "{{ rc_token }}"
        name: Site_Name
        value: "{{ site_name }}"
"""
    extra = {
        "rc_url": rc_target.base_url,
        "rc_user_id": rc_target.admin_user_id,
        "rc_token": rc_target.admin_token,
        "site_name": unique("needs-2fa"),
    }
    run = playbook.run(play, extra_vars=extra)
    if run.returncode == 0:
        pytest.skip("this server does not ask this token for a second factor (recent 2FA or TEST_MODE)")
    assert "two-factor" in run.stdout
    assert "totp-required" in run.stdout
    assert rc_target.admin_token not in run.output

    # The same token session succeeds once the password fallback is given.
    with_password = play.replace(
        'auth_token: "{{ rc_token }}"',
        'auth_token: "{{ rc_token }}"\n        auth_password: "{{ rc_password }}"',
    )
    ok = playbook.run(with_password, extra_vars={**extra, "rc_password": rc_target.admin_password})
    assert ok.returncode == 0, ok.output
    assert ok.recap()["changed"] == 1


def test_user_room_permission_integration_idempotent(rc_target, playbook, tmp_path):
    bot = unique("bot")
    channel, group = unique("support"), unique("admins")
    hook, outgoing = unique("alerts"), unique("bot-hook")
    url_file, token_file = tmp_path / "secrets" / "hook-url", tmp_path / "secrets" / "out-token"
    play = (
        PLAY_HEADER
        + f"""
    - name: Bot may hold a personal access token
      photomatrix.rocketchat.rocketchat_permission:
        permissions:
          create-personal-access-tokens: [bot]
    - name: Bot
      photomatrix.rocketchat.rocketchat_user:
        username: {bot}
        name: Test bot
        email: {bot}@example.com
        verified: false
        password: "{{{{ bot_password }}}}"
        update_password: always
        roles: [bot]
        join_default_channels: false
    - name: Channel
      photomatrix.rocketchat.rocketchat_room:
        name: {channel}
        topic: Support questions
        members: [{bot}]
    - name: Group
      photomatrix.rocketchat.rocketchat_room:
        name: {group}
        type: group
        members: [{bot}]
    - name: Incoming webhook
      photomatrix.rocketchat.rocketchat_integration:
        name: {hook}
        type: incoming
        channel: ["#{channel}"]
        username: {bot}
        url_file: {url_file}
    - name: Outgoing webhook
      photomatrix.rocketchat.rocketchat_integration:
        name: {outgoing}
        type: outgoing
        channel: ["#{channel}"]
        username: {bot}
        urls: ["http://127.0.0.1:9/webhook"]
        trigger_words: ["!erp"]
        token_file: {token_file}
"""
    )
    bot_password = unique("bot-Pa55")
    extra = {**connection_vars(rc_target), "bot_password": bot_password}

    checked = playbook.run(play, "--check", "--diff", extra_vars=extra)
    assert checked.returncode == 0, checked.output
    assert checked.recap()["changed"] >= 5
    assert "User not found" in json.dumps(admin_get(rc_target, "users.info", username=bot))
    assert not url_file.exists()

    first = playbook.run(play, extra_vars=extra)
    assert first.returncode == 0, first.output
    assert first.recap()["changed"] >= 5
    user = admin_get(rc_target, "users.info", username=bot)["user"]
    assert user["roles"] == ["bot"]
    assert user["emails"][0]["verified"] is False
    info = admin_get(rc_target, "channels.info", roomName=channel)["channel"]
    assert info["topic"] == "Support questions"
    bot_rooms = admin_get(rc_target, "users.info", username=bot, includeUserRooms="true")["user"]["rooms"]
    assert info["_id"] in {room["rid"] for room in bot_rooms}
    assert admin_get(rc_target, "groups.info", roomName=group)["group"]["t"] == "p"
    assert oct(url_file.stat().st_mode & 0o777) == "0o600"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    hook_url = url_file.read_text().strip()
    assert hook_url.startswith(f"{rc_target.base_url}/hooks/")
    posted = httpx.post(hook_url, json={"text": "ERP alert: test"}, timeout=10)
    assert posted.status_code == 200, posted.text
    outgoing_token = token_file.read_text().strip()
    for secret in (bot_password, hook_url.rsplit("/", 1)[1], outgoing_token):
        assert secret not in first.output

    second = playbook.run(play, "--diff", "-vvv", extra_vars=extra)
    assert second.returncode == 0, second.output
    assert second.recap()["changed"] == 0, second.stdout[-4000:]
    for secret in (bot_password, hook_url.rsplit("/", 1)[1], outgoing_token, rc_target.admin_password):
        assert secret not in second.output
    assert url_file.read_text().strip() == hook_url
    assert token_file.read_text().strip() == outgoing_token


def test_token_created_once_and_rotated_on_request(rc_target, playbook, tmp_path):
    bot = unique("tokbot")
    token_file = tmp_path / "bot-token"
    setup = (
        PLAY_HEADER
        + f"""
    - name: Bot may hold a personal access token
      photomatrix.rocketchat.rocketchat_permission:
        permissions:
          create-personal-access-tokens: [bot]
    - name: Bot
      photomatrix.rocketchat.rocketchat_user:
        username: {bot}
        email: {bot}@example.com
        verified: false
        password: "{{{{ bot_password }}}}"
        roles: [bot]
"""
    )
    token_play = f"""
- name: Token
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The bot's token
      photomatrix.rocketchat.rocketchat_token:
        server_url: "{{{{ rc_url }}}}"
        auth_username: {bot}
        auth_password: "{{{{ bot_password }}}}"
        token_name: erp-bot
        token_file: {token_file}
        rotate: "{{{{ rotate_bot_token | default(false) | bool }}}}"
      register: token
    - name: Show the result
      ansible.builtin.debug:
        var: token
"""
    bot_password = unique("bot-Pa55")
    extra = {**connection_vars(rc_target), "bot_password": bot_password}
    assert playbook.run(setup, extra_vars=extra).returncode == 0

    checked = playbook.run(token_play, "--check", extra_vars=extra)
    assert checked.returncode == 0, checked.output
    assert not token_file.exists()

    first = playbook.run(token_play, "-vvv", extra_vars=extra)
    assert first.returncode == 0, first.output
    assert first.recap()["changed"] == 1
    token = token_file.read_text().strip()
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert token not in first.output
    assert bot_password not in first.output
    user_id = next(r["token"]["user_id"] for r in task_results(first) if "token" in r)
    me = httpx.get(
        f"{rc_target.base_url}/api/v1/me", headers={"X-User-Id": user_id, "X-Auth-Token": token}, timeout=10
    )
    assert me.status_code == 200
    assert me.json()["username"] == bot

    second = playbook.run(token_play, extra_vars=extra)
    assert second.returncode == 0, second.output
    assert second.recap()["changed"] == 0
    assert token_file.read_text().strip() == token

    rotated = playbook.run(token_play, "-vvv", extra_vars={**extra, "rotate_bot_token": True})
    assert rotated.returncode == 0, rotated.output
    assert rotated.recap()["changed"] == 1
    new_token = token_file.read_text().strip()
    assert new_token != token
    assert new_token not in rotated.output
    old = httpx.get(
        f"{rc_target.base_url}/api/v1/me", headers={"X-User-Id": user_id, "X-Auth-Token": token}, timeout=10
    )
    assert old.status_code == 401
    new = httpx.get(
        f"{rc_target.base_url}/api/v1/me",
        headers={"X-User-Id": user_id, "X-Auth-Token": new_token},
        timeout=10,
    )
    assert new.status_code == 200

    # A lost file is replaced by a regenerated token.
    token_file.unlink()
    lost = playbook.run(token_play, extra_vars=extra)
    assert lost.returncode == 0, lost.output
    assert lost.recap()["changed"] == 1
    assert token_file.read_text().strip() not in (token, new_token)


def test_outgoing_retry_fields_set_read_back_and_idempotent(rc_target, playbook):
    name = unique("bot-retry")
    extra = connection_vars(rc_target)

    def play(**retry) -> str:
        lines = "".join(f"\n        {key}: {value}" for key, value in retry.items())
        return (
            PLAY_HEADER
            + f"""
    - name: Outgoing webhook naming two replicas
      photomatrix.rocketchat.rocketchat_integration:
        name: {name}
        type: outgoing
        channel: [all_direct_messages]
        username: {rc_target.admin_username}
        urls: ["http://127.0.0.1:9/webhook", "http://127.0.0.2:9/webhook"]
        token: "{{{{ hook_token }}}}"{lines}
      register: hook
    - name: Show the result
      ansible.builtin.debug:
        var: hook
"""
        )

    def stored() -> dict:
        found = admin_get(rc_target, "integrations.list", name=name, type="webhook-outgoing")["integrations"]
        (item,) = [i for i in found if i["name"] == name]
        return {k: item.get(k) for k in ("retryFailedCalls", "retryCount", "retryDelay")}

    extra["hook_token"] = unique("tok")
    # Created without the options: Rocket.Chat's defaults; asking for them later changes nothing.
    plain = playbook.run(play(), extra_vars=extra)
    assert plain.returncode == 0, plain.output
    assert stored() == {"retryFailedCalls": False, "retryCount": 6, "retryDelay": "powers-of-ten"}
    defaults = play(retry_failed_calls="false", retry_count=6, retry_delay="powers-of-ten")
    same = playbook.run(defaults, extra_vars=extra)
    assert same.returncode == 0, same.output
    assert same.recap()["changed"] == 0

    wanted = play(retry_failed_calls="true", retry_count=6, retry_delay="powers-of-two")
    checked = playbook.run(wanted, "--check", extra_vars=extra)
    assert checked.returncode == 0, checked.output
    assert stored()["retryFailedCalls"] is False
    first = playbook.run(wanted, extra_vars=extra)
    assert first.returncode == 0, first.output
    assert first.recap()["changed"] == 1
    result = next(r["hook"] for r in task_results(first) if "hook" in r)
    assert result["changed_fields"] == ["retry_delay", "retry_failed_calls"]
    assert stored() == {"retryFailedCalls": True, "retryCount": 6, "retryDelay": "powers-of-two"}
    second = playbook.run(wanted, extra_vars=extra)
    assert second.returncode == 0, second.output
    assert second.recap()["changed"] == 0
    # Options not given are left alone.
    untouched = playbook.run(play(), extra_vars=extra)
    assert untouched.returncode == 0, untouched.output
    assert untouched.recap()["changed"] == 0
    assert stored() == {"retryFailedCalls": True, "retryCount": 6, "retryDelay": "powers-of-two"}


def test_retry_options_refused_clearly(rc_target, playbook):
    extra = connection_vars(rc_target)
    incoming = playbook.run(
        PLAY_HEADER
        + f"""
    - name: Incoming webhook cannot retry
      photomatrix.rocketchat.rocketchat_integration:
        name: {unique("alerts")}
        type: incoming
        channel: ["@{rc_target.admin_username}"]
        username: {rc_target.admin_username}
        retry_failed_calls: true
""",
        extra_vars=extra,
    )
    assert incoming.returncode != 0
    assert "apply to outgoing webhooks only" in incoming.output
    negative = playbook.run(
        PLAY_HEADER
        + f"""
    - name: A negative retry count
      photomatrix.rocketchat.rocketchat_integration:
        name: {unique("bot-hook")}
        type: outgoing
        channel: [all_direct_messages]
        username: {rc_target.admin_username}
        urls: ["http://127.0.0.1:9/webhook"]
        retry_failed_calls: true
        retry_count: -1
""",
        extra_vars=extra,
    )
    assert negative.returncode != 0
    assert "retry_count must be between 0 and 20, got -1" in negative.output
    delay = playbook.run(
        PLAY_HEADER
        + f"""
    - name: An unknown retry delay
      photomatrix.rocketchat.rocketchat_integration:
        name: {unique("bot-hook")}
        type: outgoing
        channel: [all_direct_messages]
        username: {rc_target.admin_username}
        urls: ["http://127.0.0.1:9/webhook"]
        retry_delay: exponential
""",
        extra_vars=extra,
    )
    assert delay.returncode != 0
    assert "retry_delay" in delay.output
    assert "powers-of-two" in delay.output
