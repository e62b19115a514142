"""settings endpoints: one setting (GET/POST, the POST two-factor protected), the private and public lists.

As apps/meteor/app/api/server/v1/settings.ts: lists project `_id, value` plus `enterprise, invalidValue,
modules` where a setting has them (`packageValue` too with includeDefaults=true), and report an enterprise
setting's invalidValue as its value on this Community workspace (the fetch-settings hook); `GET settings`
lists only public settings to a caller without view-privileged-setting; hidden settings never show.
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, failure, invalid_params
from ..settings_registry import HIDDEN, check_type
from ..workspace import effective_value
from .base import Call, endpoint, listing

_ENTERPRISE_FIELDS = ("enterprise", "invalidValue", "modules")


def _listing(call: Call, docs: list[dict[str, Any]], defaults: bool = False) -> dict[str, Any]:
    docs = sorted(docs, key=lambda d: d["_id"])

    def view(doc: dict[str, Any]) -> dict[str, Any]:
        item = {"_id": doc["_id"], "value": effective_value(doc)}
        item.update((k, doc[k]) for k in _ENTERPRISE_FIELDS if k in doc)
        if defaults:
            item["packageValue"] = doc.get("packageValue")
        return item

    return listing(call, "settings", docs, view)


def _ids_filter(call: Call) -> set[str] | None:
    raw = call.query.get("_id")
    if not raw:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


@endpoint("GET", "settings.public", auth_required=False)
def settings_public(call: Call) -> dict[str, Any]:
    wanted = _ids_filter(call)
    return _listing(
        call,
        [
            d
            for d in call.sim.state.settings.values()
            if d.get("public") and d["_id"] not in HIDDEN and (wanted is None or d["_id"] in wanted)
        ],
    )


@endpoint("GET", "settings")
def settings_list(call: Call) -> dict[str, Any]:
    privileged = call.can("view-privileged-setting")
    docs = [
        d
        for d in call.sim.state.settings.values()
        if d["_id"] not in HIDDEN and (privileged or d.get("public"))
    ]
    return _listing(call, docs, defaults=call.query.get("includeDefaults") == "true")


@endpoint("POST", "settings", permissions=("edit-privileged-setting",), two_factor=True)
def settings_bulk(call: Call) -> dict[str, Any]:
    items = call.body.get("settings")
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("_id"), str) and "value" in i for i in items
    ):
        raise invalid_params("must have required property 'settings'")
    for item in items:
        _validate(call, item["_id"], item["value"])
    for item in items:
        call.ws.set_setting(item["_id"], item["value"])
    return {}


@endpoint("GET", "settings/{_id}", permissions=("view-privileged-setting",))
def setting_get(call: Call) -> dict[str, Any]:
    doc = call.sim.state.settings.get(call.path_params["_id"])
    if doc is None or doc["_id"] in HIDDEN:  # Settings.findOneNotHiddenById, then API.v1.failure()
        raise ApiError(400, {"success": False})
    return {"_id": doc["_id"], "value": doc["value"]}  # the stored value (the hook runs on lists only)


def _validate(call: Call, sid: str, value: Any) -> None:
    if sid not in call.sim.state.settings or sid in HIDDEN:
        raise ApiError(400, {"success": False})
    if not check_type(sid, value):
        raise failure("Match error: Failed Match.OneOf, Match.Maybe or Match.Optional validation")


@endpoint("POST", "settings/{_id}", permissions=("edit-privileged-setting",), two_factor=True)
def setting_update(call: Call) -> dict[str, Any]:
    sid = call.path_params["_id"]
    body = call.body
    if body.get("execute") is True:
        if sid not in call.sim.state.settings or sid in HIDDEN:
            raise ApiError(400, {"success": False})
        return {}  # action buttons (e.g. SMTP test) have nothing to run here
    if "value" not in body:
        raise invalid_params("must have required property 'value'")
    _validate(call, sid, body["value"])
    call.ws.set_setting(sid, body["value"])
    return {}
