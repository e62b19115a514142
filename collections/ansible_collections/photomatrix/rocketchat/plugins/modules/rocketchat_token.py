#!/usr/bin/python
"""Ansible module: a Rocket.Chat personal access token, created once and kept in a 0600 file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rocketchat_token
short_description: Keep a Rocket.Chat personal access token in a file of mode 0600
version_added: "1.0.0"
description:
  - Personal access tokens belong to the user that creates them, so this module authenticates B(as that user)
    (typically the bot, with O(auth_username) and O(auth_password)).
  - Lists the user's tokens with C(GET /api/v1/users.getPersonalAccessTokens). If a token named O(token_name)
    exists and O(token_file) holds a token that still authenticates (C(GET /api/v1/me)), nothing changes.
    Otherwise the token is created (C(users.generatePersonalAccessToken)) or, when it exists but the file is
    missing or stale, or O(rotate=true), regenerated (C(users.regeneratePersonalAccessToken)); the old value
    stops working at once. Both calls are two-factor confirmed with the password fallback.
  - The token is written to O(token_file) on the host the module runs on (use C(delegate_to) to keep it on the
    control node) and is never returned or shown.
  - The user needs the C(create-personal-access-tokens) permission, which the C(bot) role lacks by default;
    grant it with M(photomatrix.rocketchat.rocketchat_permission) or give the bot the C(user) role too.
author: Photomatrix
extends_documentation_fragment:
  - photomatrix.rocketchat.connection
options:
  token_name:
    description: Name of the personal access token.
    type: str
    required: true
  token_file:
    description: File (mode 0600) holding the token; created with its directory (mode 0700) when missing.
    type: path
    required: true
  bypass_two_factor:
    description: Create the token with C(bypassTwoFactor), so calls made with it need no second factor.
    type: bool
    default: true
  rotate:
    description: Regenerate the token even though the stored one works.
    type: bool
    default: false
  state:
    description: V(present) keeps a working token in O(token_file); V(absent) removes the token and the file.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: The bot's personal access token
  photomatrix.rocketchat.rocketchat_token:
    server_url: https://chat.example.com
    auth_username: erp-bot
    auth_password: "{{ vault_erp_bot_password }}"
    token_name: erp-bot
    token_file: /etc/photomatrix/secrets/erp-bot-token
    rotate: "{{ rotate_bot_token | default(false) | bool }}"
  delegate_to: localhost
"""

RETURN = r"""
user_id:
  description: Id of the user the token belongs to (use it as C(X-User-Id) with the token).
  returned: always
  type: str
action:
  description:
    - What happened - V(none), V(created), V(regenerated) or V(removed).
    - In check mode, what would happen.
  returned: always
  type: str
reason:
  description: Why the token was created or regenerated.
  returned: always
  type: str
"""

import os

from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import (
    RocketChatClient,
    RocketChatError,
)
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.common import (
    new_module,
    read_secret_file,
    session,
    write_secret_file,
)


def token_works(client: RocketChatClient, user_id: str, token: str) -> bool:
    probe = RocketChatClient(
        client.server_url, transport=client.transport, timeout=client.timeout, sleep=client.sleep
    )
    probe.use_token(user_id, token)
    try:
        return probe.get("me").get("_id") == user_id
    except RocketChatError as exc:
        if exc.status in (401, 403):
            return False
        raise


def plan_token(exists: bool, stored_works: bool, rotate: bool, state: str) -> tuple[str, str]:
    """(action, reason): action is none, created, regenerated or removed."""
    if state == "absent":
        return ("removed", "state is absent") if exists else ("none", "no such token")
    if not exists:
        return "created", "no token with this name"
    if rotate:
        return "regenerated", "rotation requested"
    if not stored_works:
        return "regenerated", "the stored token is missing or no longer works"
    return "none", "the stored token works"


def main() -> None:
    module = new_module(
        {
            "token_name": {"type": "str", "required": True, "no_log": False},
            "token_file": {"type": "path", "required": True, "no_log": False},
            "bypass_two_factor": {"type": "bool", "default": True},
            "rotate": {"type": "bool", "default": False},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        }
    )
    params = module.params
    name, path = params["token_name"], params["token_file"]
    stored = read_secret_file(path)
    if stored:
        module.no_log_values.add(stored)
    with session(module) as client:
        user_id = client.user_id
        listing = client.get("users.getPersonalAccessTokens")
        exists = any(item.get("name") == name for item in listing.get("tokens") or [])
        stored_works = bool(stored) and exists and token_works(client, user_id, stored)
        action, reason = plan_token(exists, stored_works, params["rotate"], params["state"])
        changed = action != "none"
        if action == "none" and params["state"] == "present":
            changed = write_secret_file(module, path, stored)  # fixes the mode only
        elif not module.check_mode:
            try:
                if action == "removed":
                    client.post("users.removePersonalAccessToken", {"tokenName": name}, two_factor=True)
                elif action == "created":
                    token = client.post(
                        "users.generatePersonalAccessToken",
                        {"tokenName": name, "bypassTwoFactor": params["bypass_two_factor"]},
                        two_factor=True,
                    )["token"]
                else:
                    token = client.post(
                        "users.regeneratePersonalAccessToken", {"tokenName": name}, two_factor=True
                    )["token"]
            except RocketChatError as exc:
                if exc.error_type == "not-authorized":
                    raise RocketChatError(
                        f"{exc} - the user lacks the create-personal-access-tokens permission; "
                        "grant it to the "
                        "user's role (photomatrix.rocketchat.rocketchat_permission)",
                        status=exc.status,
                        error_type=exc.error_type,
                    ) from None
                raise
            if action == "removed":
                if os.path.exists(path):
                    os.unlink(path)
            else:
                module.no_log_values.add(token)
                write_secret_file(module, path, token)
    module.exit_json(changed=changed, user_id=user_id or "", action=action, reason=reason)


if __name__ == "__main__":
    main()
