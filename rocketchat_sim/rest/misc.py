"""Unauthenticated server endpoints: /api/info and the health probes."""

from __future__ import annotations

from typing import Any

from .base import Call, endpoint


@endpoint("GET", "/api/info", auth_required=False, rate_limited=False)
def info(call: Call) -> dict[str, Any]:
    version = call.sim.config.SIM_VERSION
    result: dict[str, Any] = {
        "version": ".".join(version.split(".")[:2]),
        "minimumClientVersions": {"desktop": "4.0.0", "mobile": "4.53.0"},
    }
    # Like getServerInfo: the full version only for callers with view-statistics.
    if call.can("view-statistics"):
        result["version"] = version
        result["info"] = {"version": version, "build": {}, "commit": {}, "marketplaceApiVersion": "1.56.0"}
    return result
