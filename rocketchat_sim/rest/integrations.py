"""integrations.create / list / get / update / remove (incoming and outgoing webhooks)."""

from __future__ import annotations

from typing import Any

from .. import views
from ..errors import failure, invalid_params, meteor_error, unauthorized
from ..util import new_id, new_token, now_ms
from .base import Call, endpoint, paginate

_TYPES = ("webhook-incoming", "webhook-outgoing")
_EVENTS = (
    "sendMessage",
    "fileUploaded",
    "roomArchived",
    "roomCreated",
    "roomJoined",
    "roomLeft",
    "userCreated",
)
_SPECIAL_CHANNELS = ("all_public_channels", "all_private_groups", "all_direct_messages")
_PERMS = {
    "webhook-incoming": ("manage-incoming-integrations", "manage-own-incoming-integrations"),
    "webhook-outgoing": ("manage-outgoing-integrations", "manage-own-outgoing-integrations"),
}


def _can_manage(call: Call, kind: str, integration: dict[str, Any] | None = None) -> bool:
    full, own = _PERMS[kind]
    if call.can(full):
        return True
    return call.can(own) and (integration is None or integration["_createdBy"]["_id"] == call.uid)


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    out = views.rest(doc)
    return out


def _parse_channels(call: Call, raw: Any, kind: str) -> list[str]:
    if not isinstance(raw, str):
        raise invalid_params("must have required property 'channel'")
    channels = [c.strip() for c in raw.split(",") if c.strip()]
    method = "addIncomingIntegration" if kind == "webhook-incoming" else "addOutgoingIntegration"
    if kind == "webhook-incoming" and not channels:
        raise meteor_error("error-invalid-channel", "Invalid channel", {"method": method})
    for channel in channels:
        if channel in _SPECIAL_CHANNELS and kind == "webhook-outgoing":
            continue
        if channel[:1] not in ("#", "@"):
            raise meteor_error(
                "error-invalid-channel-start-with-chars",
                "Invalid channel. Start with @ or #",
                {"method": method},
            )
        if channel.startswith("#"):
            room = call.ws.room_by_name_or_id(channel[1:])
            if room is None:
                raise meteor_error("error-invalid-room", "Invalid room", {"method": method})
        elif call.ws.user_by_username(channel[1:]) is None:
            raise meteor_error("error-invalid-user", "Invalid user", {"method": method})
    return channels


def _apply(call: Call, doc: dict[str, Any], body: dict[str, Any], kind: str) -> None:
    for name in ("name", "username", "channel"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise invalid_params(f"must have required property '{name}'")
    for name in ("enabled", "scriptEnabled"):
        if not isinstance(body.get(name), bool):
            raise invalid_params(f"must have required property '{name}'")
    channels = _parse_channels(call, body["channel"], kind)
    user = call.ws.user_by_username(body["username"])
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user", {"method": "addIntegration"})
    doc.update(
        {
            "type": kind,
            "name": body["name"],
            "enabled": body["enabled"],
            "username": user["username"],
            "userId": user["_id"],
            "channel": channels,
            "scriptEnabled": body["scriptEnabled"],
            "scriptEngine": "isolated-vm",
        }
    )
    for name in ("alias", "avatar", "emoji", "script"):
        if isinstance(body.get(name), str):
            doc[name] = body[name]
    if kind == "webhook-incoming":
        doc.setdefault(
            "overrideDestinationChannelEnabled", bool(body.get("overrideDestinationChannelEnabled", False))
        )
        if "overrideDestinationChannelEnabled" in body:
            doc["overrideDestinationChannelEnabled"] = bool(body["overrideDestinationChannelEnabled"])
        doc.setdefault("token", new_token())
        return
    event = body.get("event")
    if event not in _EVENTS:
        raise meteor_error(
            "error-invalid-event-type", "Invalid event type", {"method": "addOutgoingIntegration"}
        )
    urls = body.get("urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u.strip() for u in urls):
        raise meteor_error("error-invalid-urls", "Invalid URLs", {"method": "addOutgoingIntegration"})
    words = body.get("triggerWords")
    if isinstance(words, str):
        words = [w.strip() for w in words.split(",") if w.strip()]
    elif not isinstance(words, list):
        words = doc.get("triggerWords", [])
    doc.update({"event": event, "urls": [u.strip() for u in urls], "triggerWords": words})
    if isinstance(body.get("token"), str) and body["token"]:
        doc["token"] = body["token"]
    doc.setdefault("token", new_token())
    for name, default in (
        ("retryFailedCalls", False),
        ("retryCount", 6),
        ("retryDelay", "powers-of-ten"),
        ("triggerWordAnywhere", False),
        ("runOnEdits", False),
        ("impersonateUser", False),
    ):
        doc[name] = body.get(name, doc.get(name, default))
    if isinstance(body.get("targetRoom"), str):
        doc["targetRoom"] = body["targetRoom"]


@endpoint("POST", "integrations.create")
def integrations_create(call: Call) -> dict[str, Any]:
    kind = call.body.get("type")
    if kind not in _TYPES:
        raise failure("Invalid integration type.")
    if not _can_manage(call, kind):
        raise meteor_error("not_authorized", "Unauthorized", {"method": "addIntegration"})
    now = now_ms()
    doc: dict[str, Any] = {"_id": new_id()}
    _apply(call, doc, call.body, kind)
    doc.update(
        {
            "_createdAt": now,
            "_createdBy": {"_id": call.uid, "username": call.user["username"]},
            "_updatedAt": now,
        }
    )
    call.sim.state.integrations[doc["_id"]] = doc
    call.sim.state.mark_dirty()
    return {"integration": _view(doc)}


@endpoint("GET", "integrations.list")
def integrations_list(call: Call) -> dict[str, Any]:
    if not any(call.can(p) for perms in _PERMS.values() for p in perms):
        raise unauthorized()
    name = call.query.get("name")
    kind = call.query.get("type")
    docs = [
        d
        for d in call.sim.state.integrations.values()
        if _can_manage(call, d["type"], d)
        and (not name or name.lower() in d["name"].lower())
        and (not kind or d["type"] == kind)
    ]
    docs.sort(key=lambda d: d["_createdAt"])
    page, offset, count = paginate(call, docs)
    return {
        "integrations": [_view(d) for d in page],
        "offset": offset,
        "items": count,
        "count": count,
        "total": len(docs),
    }


def _find(call: Call, integration_id: Any) -> dict[str, Any]:
    doc = call.sim.state.integrations.get(integration_id) if isinstance(integration_id, str) else None
    if doc is None or not _can_manage(call, doc["type"], doc):
        raise failure("The integration does not exist.")
    return doc


@endpoint("GET", "integrations.get")
def integrations_get(call: Call) -> dict[str, Any]:
    if not call.query.get("integrationId"):
        raise failure('The query parameter "integrationId" is required.')
    return {"integration": _view(_find(call, call.query["integrationId"]))}


@endpoint("PUT", "integrations.update")
def integrations_update(call: Call) -> dict[str, Any]:
    kind = call.body.get("type")
    if kind not in _TYPES:
        raise failure("Invalid integration type.")
    doc = call.sim.state.integrations.get(call.body.get("integrationId") or "")
    if doc is None or doc["type"] != kind or not _can_manage(call, kind, doc):
        raise failure("No integration found.")
    updated = dict(doc)
    _apply(call, updated, call.body, kind)
    updated["_updatedAt"] = now_ms()
    updated["_updatedBy"] = {"_id": call.uid, "username": call.user["username"]}
    call.sim.state.integrations[doc["_id"]] = updated
    call.sim.state.mark_dirty()
    return {"integration": _view(updated)}


@endpoint("POST", "integrations.remove")
def integrations_remove(call: Call) -> dict[str, Any]:
    kind = call.body.get("type")
    if kind not in _TYPES:
        raise failure("Invalid integration type.")
    integration_id = call.body.get("integrationId")
    doc = call.sim.state.integrations.get(integration_id) if isinstance(integration_id, str) else None
    if doc is None and kind == "webhook-outgoing" and call.body.get("target_url"):
        doc = next(
            (d for d in call.sim.state.integrations.values() if call.body["target_url"] in d.get("urls", [])),
            None,
        )
    if doc is None or doc["type"] != kind:
        raise failure("No integration found.")
    if not _can_manage(call, kind, doc):
        raise unauthorized()
    del call.sim.state.integrations[doc["_id"]]
    call.sim.state.mark_dirty()
    return {"integration": _view(doc)}


def _outgoing_for_history(call: Call, integration_id: Any) -> dict[str, Any]:
    if not isinstance(integration_id, str) or not integration_id:
        raise failure('The query parameter "id" is required.')
    doc = call.sim.state.integrations.get(integration_id)
    if doc is None or doc["type"] != "webhook-outgoing" or not _can_manage(call, doc["type"], doc):
        raise failure("The integration does not exist.")
    return doc


@endpoint("GET", "integrations.history")
def integrations_history(call: Call) -> dict[str, Any]:
    doc = _outgoing_for_history(call, call.query.get("id"))
    records = [
        views.rest(r)
        for r in reversed(call.sim.state.integration_history)
        if r["integration"]["_id"] == doc["_id"]
    ]
    page, offset, count = paginate(call, records)
    return {"history": page, "offset": offset, "items": count, "count": count, "total": len(records)}


@endpoint("POST", "integrations.clearHistory")
def integrations_clear_history(call: Call) -> dict[str, Any]:
    doc = _outgoing_for_history(call, call.body.get("integrationId"))
    history = call.sim.state.integration_history
    history[:] = [r for r in history if r["integration"]["_id"] != doc["_id"]]
    return {}


@endpoint("POST", "integrations.replayOutgoing")
def integrations_replay(call: Call) -> dict[str, Any]:
    doc = _outgoing_for_history(call, call.body.get("integrationId"))
    record = next(
        (r for r in call.sim.state.integration_history if r["_id"] == call.body.get("historyId")), None
    )
    if record is None or record["integration"]["_id"] != doc["_id"]:
        raise meteor_error("error-invalid-integration-history", "Invalid Integration History")
    call.sim.webhooks.replay(doc, record)
    return {}
