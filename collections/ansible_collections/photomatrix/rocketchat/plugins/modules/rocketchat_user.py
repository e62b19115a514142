#!/usr/bin/python
"""Ansible module: create, update, deactivate or delete a Rocket.Chat user."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rocketchat_user
short_description: Manage Rocket.Chat users (bots included) idempotently
version_added: "1.0.0"
description:
  - Looks the user up with C(GET /api/v1/users.info?username=...), creates it with C(users.create), changes
    name, e-mail, e-mail verification and roles with C(users.update) (two-factor confirmed) and the active
    flag with C(users.setActiveStatus). Only what differs is written.
  - For a bot, give O(roles=[bot]) and O(verified=false); an unverified e-mail keeps Rocket.Chat's e-mail 2FA
    (auto opt-in on new installs) away from the bot's password login.
  - Deactivating a user revokes all of its login and personal access tokens.
author: Photomatrix
extends_documentation_fragment:
  - photomatrix.rocketchat.connection
options:
  username:
    description: The user name; the key the user is found by.
    type: str
    required: true
  state:
    description: V(present) creates or updates the user, V(absent) deletes it (C(users.delete)).
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Display name. Defaults to O(username) when the user is created.
    type: str
  email:
    description: E-mail address. Required to create a user.
    type: str
  verified:
    description: Whether the e-mail address is verified. Left alone when not given; new users get V(false).
    type: bool
  password:
    description: Password. Required to create a user. See O(update_password).
    type: str
  update_password:
    description:
      - V(on_create) sets the password only when the user is created.
      - V(always) also changes an existing user's password when it differs; the module finds that out by
        logging in as the user with O(password) (and logging out again), so no needless change is reported.
    type: str
    choices: [always, on_create]
    default: on_create
  roles:
    description:
      - The user's exact list of global roles, for example V([bot]) or V([user, admin]).
      - Left alone when not given.
    type: list
    elements: str
  active:
    description: Whether the user may log in. V(false) deactivates the user and revokes its tokens.
    type: bool
    default: true
  join_default_channels:
    description: Whether a new user joins the default channels (only on creation).
    type: bool
    default: true
  require_password_change:
    description: Whether a new user must change the password at first login (only on creation).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: The ERP bot
  photomatrix.rocketchat.rocketchat_user:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    username: erp-bot
    name: ERP bot
    email: erp-bot@example.com
    verified: false
    password: "{{ vault_erp_bot_password }}"
    roles: [bot, user]
    join_default_channels: false

- name: Deactivate a former employee
  photomatrix.rocketchat.rocketchat_user:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    username: ivanov
    active: false
"""

RETURN = r"""
user_id:
  description: The user's id (empty when the user is absent, or would be created in check mode).
  returned: always
  type: str
  sample: 5HmCfpoB7jp2uibTC
user:
  description: The user as Rocket.Chat holds it after the run (no secrets).
  returned: when O(state=present)
  type: dict
  sample:
    {username: erp-bot, name: ERP bot, email: erp-bot@example.com, verified: false, roles: [bot],
     active: true}
changed_fields:
  description: Names of the fields that were (or would be) changed.
  returned: always
  type: list
  elements: str
"""

from typing import Any

from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import (
    RocketChatClient,
    RocketChatError,
)
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.common import new_module, session

# A diff marker, not a password.
PASSWORD_CHANGED = "(changed)"  # noqa: S105  # nosec B105


def user_view(user: dict[str, Any] | None) -> dict[str, Any]:
    """The comparable fields of a ``users.info`` user document."""
    if not user:
        return {}
    emails = user.get("emails") or [{}]
    return {
        "username": user.get("username"),
        "name": user.get("name"),
        "email": emails[0].get("address"),
        "verified": bool(emails[0].get("verified", False)),
        "roles": sorted(user.get("roles") or []),
        "active": bool(user.get("active", True)),
    }


def plan_update(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """Fields of ``wanted`` (None = leave alone) that differ from ``current`` (a ``user_view``)."""
    changes = {}
    for field in ("name", "email", "verified", "active"):
        if wanted.get(field) is not None and wanted[field] != current.get(field):
            changes[field] = wanted[field]
    if wanted.get("roles") is not None and sorted(set(wanted["roles"])) != current.get("roles"):
        changes["roles"] = sorted(set(wanted["roles"]))
    return changes


def create_body(params: dict[str, Any]) -> dict[str, Any]:
    body = {
        "username": params["username"],
        "name": params.get("name") or params["username"],
        "email": params["email"],
        "password": params["password"],
        "verified": bool(params.get("verified")),
        "active": params.get("active", True),
        "joinDefaultChannels": params.get("join_default_channels", True),
        "requirePasswordChange": params.get("require_password_change", False),
    }
    if params.get("roles") is not None:
        body["roles"] = list(params["roles"])
    return body


def password_matches(client: RocketChatClient, username: str, password: str) -> bool:
    """Log in as the user (then out again): the only way REST tells whether a password is current."""
    probe = RocketChatClient(
        client.server_url, transport=client.transport, timeout=client.timeout, sleep=client.sleep
    )
    try:
        probe.login(username, password)
    except RocketChatError as exc:
        # A second-factor demand comes after the password check: the password is right.
        return exc.is_two_factor
    probe.logout()
    return True


def main() -> None:
    module = new_module(
        {
            "username": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "name": {"type": "str"},
            "email": {"type": "str"},
            "verified": {"type": "bool"},
            "password": {"type": "str", "no_log": True},
            "update_password": {
                "type": "str",
                "choices": ["always", "on_create"],
                "default": "on_create",
                "no_log": False,
            },
            "roles": {"type": "list", "elements": "str"},
            "active": {"type": "bool", "default": True},
            "join_default_channels": {"type": "bool", "default": True},
            "require_password_change": {"type": "bool", "default": False, "no_log": False},
        }
    )
    params = module.params
    result: dict[str, Any] = {"changed": False, "user_id": "", "changed_fields": []}
    with session(module) as client:
        existing = client.user_by_username(params["username"])
        before = user_view(existing)
        if params["state"] == "absent":
            if existing:
                result.update(changed=True, changed_fields=["state"], user_id=existing["_id"])
                if not module.check_mode:
                    client.post("users.delete", {"userId": existing["_id"], "confirmRelinquish": True})
            if module._diff:
                result["diff"] = {"before": before, "after": {}}
            module.exit_json(**result)

        if existing is None:
            missing = [key for key in ("email", "password") if not params.get(key)]
            if missing:
                module.fail_json(
                    msg=f"user {params['username']!r} does not exist; creating it needs {', '.join(missing)}"
                )
            body = create_body(params)
            after = user_view(
                {
                    "username": body["username"],
                    "name": body["name"],
                    "emails": [{"address": body["email"], "verified": body["verified"]}],
                    "roles": body.get("roles", ["user"]),
                    "active": body["active"],
                }
            )
            result.update(changed=True, changed_fields=["state"])
            if not module.check_mode:
                created = client.post("users.create", body)["user"]
                result["user_id"] = created["_id"]
                after = user_view(created) or after
        else:
            result["user_id"] = existing["_id"]
            changes = plan_update(before, params)
            if (
                params["update_password"] == "always"  # noqa: S105
                and params.get("password")
                and not password_matches(client, params["username"], params["password"])
            ):
                changes["password"] = params["password"]
            result["changed_fields"] = sorted(changes)
            result["changed"] = bool(changes)
            after = {**before, **{k: v for k, v in changes.items() if k != "password"}}
            if "password" in changes:
                before["password"], after["password"] = "", PASSWORD_CHANGED
            if changes and not module.check_mode:
                active = changes.pop("active", None)
                if changes:
                    client.post("users.update", {"userId": existing["_id"], "data": changes}, two_factor=True)
                if active is not None:
                    client.post("users.setActiveStatus", {"userId": existing["_id"], "activeStatus": active})
                after = user_view(client.user_by_username(params["username"])) or after
        result["user"] = {k: v for k, v in after.items() if k != "password"}
        if module._diff:
            result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
