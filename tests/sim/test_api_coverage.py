"""Every operation of Rocket.Chat's official OpenAPI files: implemented when in scope, disabled otherwise.

Scope is data (`rocketchat_sim/data/api_scope.yaml`: out-of-scope prefixes by feature). The table test
fails when an in-scope operation has no handler, when an out-of-scope one is missing from the
disabled list or a documented one is not served at all. The HTTP test then calls every documented
operation once against a simulator process: nothing answers 404 or 500, errors have Rocket.Chat's
body, and out-of-scope features answer as Rocket.Chat answers a disabled endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT.parent / "shared" / "rocketchat" / "openapi"
DATA = ROOT / "rocketchat_sim" / "data"


def _documented() -> list[tuple[str, str]]:
    if not SPEC_DIR.is_dir():
        pytest.skip(f"Rocket.Chat OpenAPI definitions not found at {SPEC_DIR}")
    ops = set()
    for spec in sorted(SPEC_DIR.glob("*.yaml")):
        for path, methods in yaml.safe_load(spec.read_text())["paths"].items():
            if " - with " in path:  # documentation variants of POST /api/v1/login
                continue
            ops |= {(m.upper(), path) for m in methods if m in ("get", "post", "put", "delete", "patch")}
    return sorted(ops)


def _out_of_scope_prefixes() -> list[str]:
    scope = yaml.safe_load((DATA / "api_scope.yaml").read_text())["out_of_scope"]
    return [prefix for prefixes in scope.values() for prefix in prefixes]


def split_scope() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    prefixes = _out_of_scope_prefixes()
    in_scope, out_of_scope = [], []
    for method, path in _documented():
        rel = path.removeprefix("/api/v1/")
        target = out_of_scope if any(rel.startswith(p) or path.startswith(p) for p in prefixes) else in_scope
        target.append((method, path))
    return in_scope, out_of_scope


def _served() -> dict[tuple[str, str], Any]:
    import rocketchat_sim.rest  # noqa: F401 - registers the endpoints
    from rocketchat_sim.rest.base import ENDPOINTS

    return {(m, ep.path): ep.handler for ep in ENDPOINTS for m in ep.methods}


def _route(path: str) -> str:
    from rocketchat_sim.rest import route_path

    return route_path(path)


def test_every_in_scope_operation_is_implemented():
    from rocketchat_sim.rest.admin import disabled

    in_scope, _ = split_scope()
    served = _served()
    missing = [f"{m} {p}" for m, p in in_scope if served.get((m, _route(p))) in (None, disabled)]
    implemented = len(in_scope) - len(missing)
    print(f"in-scope operations implemented: {implemented} of {len(in_scope)}")
    assert missing == [], f"{len(missing)} in-scope operations have no handler"


def test_out_of_scope_operations_are_the_disabled_list():
    from rocketchat_sim.rest.admin import disabled

    _, out_of_scope = split_scope()
    listed = sorted(yaml.safe_load((DATA / "disabled_operations.yaml").read_text()))
    assert listed == sorted(f"{m} {p}" for m, p in out_of_scope), "regenerate disabled_operations.yaml"
    served = _served()
    assert [f"{m} {p}" for m, p in out_of_scope if served.get((m, _route(p))) is not disabled] == []


# Calls that would end the admin session the rest of the loop uses (they have tests of their own).
SESSION_ENDING = ("/api/v1/logout", "/api/v1/users.logout", "/api/v1/users.resetTOTP")


def _concrete(path: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}|:[A-Za-z_]+", "x", _route(path))


@pytest.mark.integration
def test_every_documented_operation_answers_like_rocketchat(rocketchat_sim):
    """One call of each documented operation as the admin, without parameters."""
    rc = rocketchat_sim()
    in_scope, out_of_scope = split_scope()
    problems = []
    with httpx.Client(base_url=rc.base_url, headers=rc.admin_headers, timeout=10.0) as client:
        for method, path in in_scope + out_of_scope:
            if path in SESSION_ENDING:
                continue
            kwargs: dict[str, Any] = {"json": {}} if method in ("POST", "PUT", "DELETE", "PATCH") else {}
            response = client.request(method, _concrete(path), **kwargs)
            where = f"{method} {path} → {response.status_code} {response.text[:200]}"
            if response.status_code in (404, 405) or response.status_code >= 500:
                problems.append(where)
                continue
            if (method, path) in out_of_scope:
                body = response.json()
                if response.status_code != 400 or body.get("errorType") != "error-endpoint-disabled":
                    problems.append(where)
                continue
            ctype = response.headers.get("content-type", "")
            if response.status_code in (200, 307) and not ctype.startswith("application/json"):
                continue  # avatars (SVG, redirect)
            body = response.json()
            if isinstance(body, list):
                continue  # listInvites answers a bare array
            if response.status_code == 200:
                if body.get("success") is not True and "status" not in body:
                    problems.append(where)
            elif (body.get("success") is not False or not isinstance(body.get("error"), str)) and body != {
                "success": False  # API.v1.failure() without a message (unknown setting id)
            }:
                problems.append(where)
    assert problems == [], "\n".join(problems)
