#!/usr/bin/python
"""Ansible module: set Rocket.Chat workspace settings, changing only those that differ."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rocketchat_setting
short_description: Set Rocket.Chat workspace settings idempotently
version_added: "1.0.0"
description:
  - Reads each setting with C(GET /api/v1/settings/<id>), compares it with the wanted value and writes only
    the settings that differ with C(POST /api/v1/settings/<id>).
  - Rocket.Chat requires two-factor confirmation for settings changes; the module sends the password
    fallback (C(x-2fa-method=password), C(x-2fa-code=sha256(password))) when the password is known, see
    O(auth_password).
  - The authenticated user needs the C(view-privileged-setting) and C(edit-privileged-setting) permissions.
author: Photomatrix
extends_documentation_fragment:
  - photomatrix.rocketchat.connection
options:
  settings:
    description:
      - Setting ids and their wanted values, for example C(Site_Name) mapped to V(Photomatrix).
      - A value is converted to the type the server holds (V("587") and V(587) are the same for a string
        setting; V("true") is V(true) for a boolean one).
      - Mutually exclusive with O(name).
    type: dict
  name:
    description: One setting id; use with O(value).
    type: str
  value:
    description: The wanted value of O(name).
    type: raw
  secret_settings:
    description:
      - Ids of settings whose values are secrets; their values never appear in the diff or the result.
      - Ids containing C(Password), C(Secret), C(Token) or C(Key) are treated as secrets anyway.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Site name, language and SMTP
  photomatrix.rocketchat.rocketchat_setting:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    settings:
      Site_Name: Photomatrix
      Language: ru
      SMTP_Host: smtp.example.com
      SMTP_Port: "587"
      SMTP_Password: "{{ vault_smtp_password }}"

- name: One setting
  photomatrix.rocketchat.rocketchat_setting:
    server_url: https://chat.example.com
    auth_user_id: "{{ admin_user_id }}"
    auth_token: "{{ admin_pat }}"
    name: Accounts_RegistrationForm
    value: Disabled
"""

RETURN = r"""
changed_settings:
  description: Ids of the settings that were (or in check mode would be) changed.
  returned: always
  type: list
  elements: str
  sample: [Site_Name, Language]
"""

import re
from typing import Any

from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import (
    RocketChatClient,
    RocketChatError,
    path_segment,
)
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.common import masked, new_module, session

SECRET_ID = re.compile(r"password|secret|token|key", re.IGNORECASE)


def is_secret(setting_id: str, declared: set[str]) -> bool:
    return setting_id in declared or bool(SECRET_ID.search(setting_id))


def coerce_like(current: Any, wanted: Any) -> Any:
    """``wanted`` in the type of ``current`` when that conversion is lossless, else ``wanted`` unchanged."""
    if isinstance(current, bool):
        if isinstance(wanted, str) and wanted.lower() in ("true", "false"):
            return wanted.lower() == "true"
        return wanted
    if isinstance(current, int | float) and isinstance(wanted, str):
        try:
            number = type(current)(wanted)
        except ValueError:
            return wanted
        return number if str(number) == wanted.strip() else wanted
    if isinstance(current, str) and isinstance(wanted, int | float) and not isinstance(wanted, bool):
        return str(wanted)
    return wanted


def plan_settings(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The settings to write: id -> value (already in the server's type) for each that differs."""
    changes = {}
    for setting_id, value in wanted.items():
        target = coerce_like(current.get(setting_id), value)
        if current.get(setting_id) != target:
            changes[setting_id] = target
    return changes


def read_settings(client: RocketChatClient, ids: list[str]) -> dict[str, Any]:
    values = {}
    for setting_id in ids:
        try:
            values[setting_id] = client.get(f"settings/{path_segment(setting_id)}").get("value")
        except RocketChatError as exc:
            raise RocketChatError(
                f"cannot read setting {setting_id!r} (unknown id, or no view-privileged-setting?): {exc}",
                status=exc.status,
                error_type=exc.error_type,
            ) from None
    return values


def main() -> None:
    module = new_module(
        {
            "settings": {"type": "dict"},
            "name": {"type": "str"},
            "value": {"type": "raw"},
            "secret_settings": {"type": "list", "elements": "str", "default": [], "no_log": False},
        },
        mutually_exclusive=[("settings", "name")],
        required_one_of=[("settings", "name")],
        required_together=[("name", "value")],
    )
    wanted = dict(module.params["settings"] or {module.params["name"]: module.params["value"]})
    declared = set(module.params["secret_settings"])
    for setting_id, value in wanted.items():
        if is_secret(setting_id, declared) and value not in (None, ""):
            module.no_log_values.add(str(value))

    with session(module) as client:
        current = read_settings(client, list(wanted))
        changes = plan_settings(current, wanted)
        if changes and not module.check_mode:
            for setting_id, value in changes.items():
                client.post(f"settings/{path_segment(setting_id)}", {"value": value}, two_factor=True)

    result: dict[str, Any] = {"changed": bool(changes), "changed_settings": sorted(changes)}
    if module._diff:
        result["diff"] = {
            "before": {k: masked(current.get(k), is_secret(k, declared)) for k in sorted(changes)},
            "after": {k: masked(v, is_secret(k, declared)) for k, v in sorted(changes.items())},
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
