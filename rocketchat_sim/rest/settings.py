"""settings endpoints: one setting (GET/POST, the POST two-factor protected), the private and public lists."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, failure, invalid_params
from ..settings_registry import HIDDEN, check_type
from .base import Call, endpoint, listing


def _listing(call: Call, docs: list[dict[str, Any]], key: str = "settings") -> dict[str, Any]:
    docs = sorted(docs, key=lambda d: d["_id"])
    return listing(call, key, docs, lambda d: {"_id": d["_id"], "value": d["value"]})


@endpoint("GET", "settings.public", auth_required=False)
def settings_public(call: Call) -> dict[str, Any]:
    return _listing(
        call, [d for d in call.sim.state.settings.values() if d.get("public") and d["_id"] not in HIDDEN]
    )


@endpoint("GET", "settings", permissions=("view-privileged-setting",))
def settings_list(call: Call) -> dict[str, Any]:
    return _listing(call, [d for d in call.sim.state.settings.values() if d["_id"] not in HIDDEN])


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
    return {"_id": doc["_id"], "value": doc["value"]}


def _validate(call: Call, sid: str, value: Any) -> None:
    if sid not in call.sim.state.settings:
        raise ApiError(400, {"success": False})
    if not check_type(sid, value):
        raise failure("Match error: Failed Match.OneOf, Match.Maybe or Match.Optional validation")


@endpoint("POST", "settings/{_id}", permissions=("edit-privileged-setting",), two_factor=True)
def setting_update(call: Call) -> dict[str, Any]:
    sid = call.path_params["_id"]
    body = call.body
    if body.get("execute") is True:
        if sid not in call.sim.state.settings:
            raise ApiError(400, {"success": False})
        return {}  # action buttons (e.g. SMTP test) have nothing to run here
    if "value" not in body:
        raise invalid_params("must have required property 'value'")
    _validate(call, sid, body["value"])
    call.ws.set_setting(sid, body["value"])
    return {}
