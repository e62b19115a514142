#!/usr/bin/python
"""Ansible module: grant or revoke Rocket.Chat permissions for roles."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rocketchat_permission
short_description: Grant Rocket.Chat permissions to roles idempotently
version_added: "1.0.0"
description:
  - Reads every permission with C(GET /api/v1/permissions.listAll) and writes the changed ones in one
    C(POST /api/v1/permissions.update). Needs the C(access-permissions) permission.
  - Typical use is the bot role, for example granting C(create-personal-access-tokens) to C(bot) so the bot
    can hold a personal access token.
author: Photomatrix
extends_documentation_fragment:
  - photomatrix.rocketchat.connection
options:
  permissions:
    description:
      - Permission ids and the roles to grant (or revoke) each of them.
      - For example C(create-personal-access-tokens) mapped to V([bot]).
    type: dict
    required: true
  state:
    description:
      - V(present) adds the roles to each permission, keeping the roles it already has.
      - V(exact) makes each permission's role list exactly the given one.
      - V(absent) removes the roles from each permission.
    type: str
    choices: [present, exact, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Let the bot role create personal access tokens
  photomatrix.rocketchat.rocketchat_permission:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    permissions:
      create-personal-access-tokens: [bot]
"""

RETURN = r"""
changed_permissions:
  description: Ids of the permissions whose roles were (or would be) changed.
  returned: always
  type: list
  elements: str
"""

from typing import Any

from ansible_collections.photomatrix.rocketchat.plugins.module_utils.common import new_module, session


def plan_permissions(
    current: dict[str, list[str]], wanted: dict[str, list[str]], state: str
) -> dict[str, list[str]]:
    """Permission id -> its new full role list, for each permission whose roles change."""
    changes = {}
    for permission, roles in wanted.items():
        have = sorted(set(current.get(permission) or []))
        if state == "present":
            target = sorted(set(have) | set(roles))
        elif state == "absent":
            target = sorted(set(have) - set(roles))
        else:
            target = sorted(set(roles))
        if target != have:
            changes[permission] = target
    return changes


def main() -> None:
    module = new_module(
        {
            "permissions": {"type": "dict", "required": True},
            "state": {"type": "str", "choices": ["present", "exact", "absent"], "default": "present"},
        }
    )
    wanted = {}
    for permission, roles in module.params["permissions"].items():
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            module.fail_json(msg=f"permissions.{permission} must be a list of role names")
        wanted[permission] = roles
    result: dict[str, Any] = {}
    with session(module) as client:
        listing = client.get("permissions.listAll")
        current = {item["_id"]: item.get("roles") or [] for item in listing.get("update") or []}
        unknown = sorted(set(wanted) - set(current))
        if unknown:
            module.fail_json(msg=f"unknown permission id(s): {', '.join(unknown)}")
        changes = plan_permissions(current, wanted, module.params["state"])
        if changes and not module.check_mode:
            client.post(
                "permissions.update", {"permissions": [{"_id": k, "roles": v} for k, v in changes.items()]}
            )
        result = {"changed": bool(changes), "changed_permissions": sorted(changes)}
        if module._diff:
            result["diff"] = {
                "before": {k: sorted(current[k]) for k in sorted(changes)},
                "after": dict(sorted(changes.items())),
            }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
