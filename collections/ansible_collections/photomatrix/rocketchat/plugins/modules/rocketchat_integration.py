#!/usr/bin/python
"""Ansible module: Rocket.Chat incoming and outgoing webhooks, matched by name."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rocketchat_integration
short_description: Manage Rocket.Chat incoming and outgoing webhooks idempotently
version_added: "1.0.0"
description:
  - Finds the integration by exact O(name) and O(type) with C(GET /api/v1/integrations.list), creates it
    with C(POST integrations.create), updates it with C(PUT integrations.update) when a field differs, or
    removes it.
  - An incoming webhook's URL (C(<webhook_base_url>/hooks/<id>/<token>)) is a secret; the module writes it to
    O(url_file) (mode 0600) and never returns it.
  - An outgoing webhook's token (sent by Rocket.Chat to the receiver as C(token)) is taken from O(token), else
    from O(token_file), else kept from the server, else generated; it is written to O(token_file) (mode 0600)
    and never returned.
  - Files are written on the host the module runs on; run it on the control node (C(delegate_to=localhost))
    to keep them there.
  - The authenticated user needs C(manage-incoming-integrations) / C(manage-outgoing-integrations).
author: Photomatrix
extends_documentation_fragment:
  - photomatrix.rocketchat.connection
options:
  name:
    description: The integration's name; the key it is found by.
    type: str
    required: true
  type:
    description: V(incoming) (C(webhook-incoming)) or V(outgoing) (C(webhook-outgoing)).
    type: str
    choices: [incoming, outgoing]
    required: true
  state:
    description: V(present) creates or updates the integration, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  enabled:
    description: Whether the integration runs.
    type: bool
    default: true
  channel:
    description:
      - Where messages go (incoming) or which rooms trigger it (outgoing) - C(#room), C(@user),
        C(all_public_channels), C(all_private_groups) or C(all_direct_messages). A bare name means C(#name).
      - Required to create.
    type: list
    elements: str
  username:
    description: User the integration posts as. Required to create.
    type: str
  alias:
    description: Display name of the integration's messages. Left alone when not given.
    type: str
  avatar:
    description: Avatar URL of the integration's messages. Left alone when not given.
    type: str
  emoji:
    description: Emoji used as avatar, for example C(:robot:). Left alone when not given.
    type: str
  script_enabled:
    description: Whether O(script) runs.
    type: bool
    default: false
  script:
    description: The integration script. Left alone when not given.
    type: str
  event:
    description: Outgoing only - the event that triggers it.
    type: str
    choices: [sendMessage, fileUploaded, roomArchived, roomCreated, roomJoined, roomLeft, userCreated]
    default: sendMessage
  urls:
    description: Outgoing only - URLs Rocket.Chat posts to. Required to create an outgoing webhook.
    type: list
    elements: str
  trigger_words:
    description: Outgoing only - words at the start of a message that trigger it; empty means every message.
    type: list
    elements: str
  retry_failed_calls:
    description:
      - Outgoing only - whether Rocket.Chat posts again to a URL that answered an error status (not 200,
        201 or 202; a 410 disables the integration instead). A refused or broken connection is not retried.
      - With bot replicas behind one outgoing webhook, a replica answers 503 for a message another replica
        is handling; the retry lets it answer if that replica died first.
      - Left alone when not given; Rocket.Chat's default (an integration created without it, or one that
        lacks the field) is V(false).
    type: bool
  retry_count:
    description:
      - Outgoing only - how many times a failed call is retried, with O(retry_failed_calls).
      - Between 0 and 20 (past that the waits run for days). Left alone when not given; Rocket.Chat's
        default is C(6).
    type: int
  retry_delay:
    description:
      - Outgoing only - the wait before each retry, with O(retry_failed_calls). V(powers-of-ten) waits 0.1 s,
        1 s, 10 s, 100 s...; V(powers-of-two) 2 s, 4 s, 8 s...; V(increments-of-two) 2 s, 4 s, 6 s...
      - Left alone when not given; Rocket.Chat's default is V(powers-of-ten).
    type: str
    choices: [powers-of-ten, powers-of-two, increments-of-two]
  token:
    description: Outgoing only - the token Rocket.Chat sends to the receiver (the default is described above).
    type: str
  token_file:
    description: Outgoing only - file (mode 0600) the token is read from and written to.
    type: path
  url_file:
    description: Incoming only - file (mode 0600) the webhook URL is written to.
    type: path
  webhook_base_url:
    description: Public base URL for the incoming webhook URL. Defaults to O(server_url).
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: ERP alerts into the support channel
  photomatrix.rocketchat.rocketchat_integration:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    name: erp-alerts
    type: incoming
    channel: ["#support"]
    username: erp-bot
    url_file: /etc/photomatrix/secrets/erp-alerts-webhook-url
  delegate_to: localhost

- name: Bot webhook mode
  photomatrix.rocketchat.rocketchat_integration:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    name: erp-bot-outgoing
    type: outgoing
    channel: [all_direct_messages, "#support"]
    username: erp-bot
    urls: ["http://bot:8080/webhook"]
    trigger_words: ["!erp"]
    token_file: /etc/photomatrix/secrets/erp-bot-outgoing-token
  delegate_to: localhost

- name: Bot webhook mode with two replicas - a message one replica answered 503 is posted again later
  photomatrix.rocketchat.rocketchat_integration:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    name: erp-bot-outgoing
    type: outgoing
    channel: ["@erp-bot"]
    username: erp-bot
    urls: ["http://10.250.0.20:8080/webhook", "http://10.250.0.21:8080/webhook"]
    token_file: /etc/photomatrix/secrets/erp-bot-outgoing-token
    retry_failed_calls: true
    retry_count: 6
    retry_delay: powers-of-two
  delegate_to: localhost
"""

RETURN = r"""
integration_id:
  description: The integration's id (empty when absent, or when it would be created in check mode).
  returned: always
  type: str
changed_fields:
  description: Fields that were (or would be) changed; C(state) for a creation or removal.
  returned: always
  type: list
  elements: str
secret_files_changed:
  description: Whether O(url_file) or O(token_file) was (or would be) written.
  returned: always
  type: bool
"""

import secrets
from typing import Any

from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import RocketChatClient
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.common import (
    MASK,
    new_module,
    read_secret_file,
    session,
    write_secret_file,
)

WIRE_TYPE = {"incoming": "webhook-incoming", "outgoing": "webhook-outgoing"}
CHANNEL_KEYWORDS = ("all_public_channels", "all_private_groups", "all_direct_messages")
RETRY_DELAYS = ("powers-of-ten", "powers-of-two", "increments-of-two")
# Rocket.Chat's values for an outgoing integration stored without the retry fields (its admin UI's defaults;
# its trigger handler retries only when retryFailedCalls is set).
RETRY_DEFAULTS = {"retry_failed_calls": False, "retry_count": 6, "retry_delay": "powers-of-ten"}
RETRY_OPTIONS = tuple(RETRY_DEFAULTS)
# Rocket.Chat sets no bound; past ~20 the waits (powers of two or ten) run for days.
MAX_RETRY_COUNT = 20
PAGE = 100


def normalize_channel(channel: str) -> str:
    channel = channel.strip()
    if channel.startswith(("#", "@")) or channel in CHANNEL_KEYWORDS:
        return channel
    return f"#{channel}"


def as_list(value: Any) -> list[str]:
    """Rocket.Chat stores channel/urls/triggerWords as lists but older data may hold a comma string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def as_count(value: Any) -> Any:
    """retryCount as stored: a number, possibly a numeric string (the admin UI's form); absent = default."""
    if value is None or value == "":
        return RETRY_DEFAULTS["retry_count"]
    try:
        return int(value)
    except (TypeError, ValueError):
        return value  # unreadable: differs from any wanted count, so it is rewritten


def integration_view(item: dict[str, Any] | None) -> dict[str, Any]:
    if not item:
        return {}
    view = {
        "name": item.get("name"),
        "enabled": bool(item.get("enabled")),
        "channel": sorted(as_list(item.get("channel"))),
        "username": item.get("username"),
        "alias": item.get("alias") or "",
        "avatar": item.get("avatar") or "",
        "emoji": item.get("emoji") or "",
        "script_enabled": bool(item.get("scriptEnabled")),
        "script": item.get("script") or "",
    }
    if item.get("type") == WIRE_TYPE["outgoing"]:
        view.update(
            event=item.get("event"),
            urls=as_list(item.get("urls")),
            trigger_words=sorted(as_list(item.get("triggerWords"))),
            token=item.get("token") or "",
            retry_failed_calls=bool(item.get("retryFailedCalls", RETRY_DEFAULTS["retry_failed_calls"])),
            retry_count=as_count(item.get("retryCount")),
            retry_delay=item.get("retryDelay") or RETRY_DEFAULTS["retry_delay"],
        )
    return view


def wanted_view(params: dict[str, Any], token: str | None) -> dict[str, Any]:
    """The fields the task sets; None means leave alone."""
    view = {
        "enabled": params["enabled"],
        "channel": sorted(normalize_channel(c) for c in params["channel"]) if params.get("channel") else None,
        "username": params.get("username"),
        "alias": params.get("alias"),
        "avatar": params.get("avatar"),
        "emoji": params.get("emoji"),
        "script_enabled": params["script_enabled"],
        "script": params.get("script"),
    }
    if params["type"] == "outgoing":
        view.update(
            event=params["event"],
            urls=list(params["urls"]) if params.get("urls") is not None else None,
            trigger_words=sorted(params["trigger_words"])
            if params.get("trigger_words") is not None
            else None,
            token=token,
            **{name: params.get(name) for name in RETRY_OPTIONS},
        )
    return view


def plan_integration(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if v is not None and current.get(k) != v}


def wire_body(merged: dict[str, Any], integration_type: str, name: str) -> dict[str, Any]:
    """integrations.create/update body from a full view (lists joined the way the API wants them)."""
    body = {
        "type": WIRE_TYPE[integration_type],
        "name": name,
        "enabled": merged["enabled"],
        "username": merged["username"],
        "channel": ",".join(merged["channel"]),
        "scriptEnabled": merged["script_enabled"],
    }
    for field in ("alias", "avatar", "emoji", "script"):
        if merged.get(field):
            body[field] = merged[field]
    if integration_type == "outgoing":
        body.update(
            event=merged["event"],
            urls=merged["urls"],
            token=merged["token"],
            retryFailedCalls=merged["retry_failed_calls"],
            retryCount=merged["retry_count"],
            retryDelay=merged["retry_delay"],
        )
        if merged.get("trigger_words"):
            body["triggerWords"] = ",".join(merged["trigger_words"])
    return body


def find_integration(client: RocketChatClient, name: str, integration_type: str) -> dict[str, Any] | None:
    """Exact name and type match (the API's ``name`` filter is a case-insensitive substring match)."""
    offset = 0
    while True:
        page = client.get(
            "integrations.list",
            {"name": name, "type": WIRE_TYPE[integration_type], "offset": offset, "count": PAGE},
        )
        items = page.get("integrations") or []
        for item in items:
            if item.get("name") == name and item.get("type") == WIRE_TYPE[integration_type]:
                return item
        offset += len(items)
        if not items or offset >= int(page.get("total", offset)):
            return None


def masked_view(view: dict[str, Any]) -> dict[str, Any]:
    return {k: (MASK if k == "token" and v else v) for k, v in view.items()}


def main() -> None:
    module = new_module(
        {
            "name": {"type": "str", "required": True},
            "type": {"type": "str", "choices": ["incoming", "outgoing"], "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "enabled": {"type": "bool", "default": True},
            "channel": {"type": "list", "elements": "str"},
            "username": {"type": "str"},
            "alias": {"type": "str"},
            "avatar": {"type": "str"},
            "emoji": {"type": "str"},
            "script_enabled": {"type": "bool", "default": False},
            "script": {"type": "str"},
            "event": {
                "type": "str",
                "default": "sendMessage",
                "choices": [
                    "sendMessage",
                    "fileUploaded",
                    "roomArchived",
                    "roomCreated",
                    "roomJoined",
                    "roomLeft",
                    "userCreated",
                ],
            },
            "urls": {"type": "list", "elements": "str"},
            "trigger_words": {"type": "list", "elements": "str"},
            "retry_failed_calls": {"type": "bool"},
            "retry_count": {"type": "int"},
            "retry_delay": {"type": "str", "choices": list(RETRY_DELAYS)},
            "token": {"type": "str", "no_log": True},
            "token_file": {"type": "path"},
            "url_file": {"type": "path"},
            "webhook_base_url": {"type": "str"},
        }
    )
    params = module.params
    kind = params["type"]
    if kind == "incoming" and (
        params["token"]
        or params["token_file"]
        or params["urls"]
        or params["trigger_words"]
        or any(params[name] is not None for name in RETRY_OPTIONS)
    ):
        module.fail_json(
            msg="token, token_file, urls, trigger_words, retry_failed_calls, retry_count and retry_delay "
            "apply to outgoing webhooks only"
        )
    if params["retry_count"] is not None and not 0 <= params["retry_count"] <= MAX_RETRY_COUNT:
        module.fail_json(
            msg=f"retry_count must be between 0 and {MAX_RETRY_COUNT}, got {params['retry_count']}"
        )
    if kind == "outgoing" and params["url_file"]:
        module.fail_json(msg="url_file applies to incoming webhooks only")
    result: dict[str, Any] = {"changed": False, "integration_id": "", "changed_fields": []}
    result["secret_files_changed"] = False

    with session(module) as client:
        existing = find_integration(client, params["name"], kind)
        before = integration_view(existing)
        for value in (before.get("token"), existing and existing.get("token")):
            if value:
                module.no_log_values.add(value)

        if params["state"] == "absent":
            if existing:
                result.update(changed=True, changed_fields=["state"], integration_id=existing["_id"])
                if not module.check_mode:
                    client.post(
                        "integrations.remove", {"type": WIRE_TYPE[kind], "integrationId": existing["_id"]}
                    )
            if module._diff:
                result["diff"] = {"before": masked_view(before), "after": {}}
            module.exit_json(**result)

        token = None
        if kind == "outgoing":
            token = params["token"] or read_secret_file(params["token_file"]) or before.get("token") or None
            if token is None:
                token = secrets.token_urlsafe(32)
            module.no_log_values.add(token)
        wanted = wanted_view(params, token)

        if existing is None:
            missing = [k for k in ("channel", "username") if not params.get(k)]
            if kind == "outgoing" and not params.get("urls"):
                missing.append("urls")
            if missing:
                module.fail_json(
                    msg=f"integration {params['name']!r} does not exist; "
                    f"creating it needs {', '.join(missing)}"
                )
            merged = {k: (v if v is not None else "") for k, v in wanted.items()}
            if kind == "outgoing":
                merged["trigger_words"] = wanted.get("trigger_words") or []
                for name, default in RETRY_DEFAULTS.items():
                    merged[name] = default if wanted[name] is None else wanted[name]
            result.update(changed=True, changed_fields=["state"])
            after = merged
            integration = {}
            if not module.check_mode:
                integration = client.post("integrations.create", wire_body(merged, kind, params["name"]))[
                    "integration"
                ]
                result["integration_id"] = integration["_id"]
        else:
            changes = plan_integration(before, wanted)
            merged = {**before, **changes}
            after = merged
            integration = existing
            result.update(
                integration_id=existing["_id"], changed_fields=sorted(changes), changed=bool(changes)
            )
            if changes and not module.check_mode:
                body = wire_body(merged, kind, params["name"])
                body["integrationId"] = existing["_id"]
                integration = client.call("PUT", "integrations.update", body).get("integration") or existing

        files_changed = False
        if kind == "outgoing" and params["token_file"]:
            files_changed = write_secret_file(module, params["token_file"], token)
        if kind == "incoming" and params["url_file"]:
            hook_token = integration.get("token")
            if hook_token is None and integration.get("_id"):
                hook_token = client.get("integrations.get", {"integrationId": integration["_id"]})[
                    "integration"
                ]["token"]
            if hook_token:
                module.no_log_values.add(hook_token)
                base = (params["webhook_base_url"] or client.server_url).rstrip("/")
                files_changed = write_secret_file(
                    module, params["url_file"], f"{base}/hooks/{integration['_id']}/{hook_token}"
                )
            else:
                files_changed = True  # check mode, integration not created yet
        result["secret_files_changed"] = files_changed
        result["changed"] = result["changed"] or files_changed
        if module._diff:
            result["diff"] = {"before": masked_view(before), "after": masked_view(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
