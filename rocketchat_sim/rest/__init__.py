"""REST API modules, one per endpoint group; importing them registers their endpoints.

Then every documented operation of the features left out (data/disabled_operations.yaml) is mounted on
the one disabled-endpoint answer, unless a module implements it.
"""

import re
from pathlib import Path

import yaml

from . import (
    admin,
    authn,
    chat,
    integrations,
    messages,
    misc,
    roles,
    room_family,
    room_ops,
    rooms,
    settings,
    users,
    users_more,
)
from .base import ENDPOINTS

MODULES = (
    admin,
    authn,
    chat,
    integrations,
    messages,
    misc,
    roles,
    room_family,
    room_ops,
    rooms,
    settings,
    users,
    users_more,
)
DISABLED_FILE = Path(__file__).resolve().parent.parent / "data" / "disabled_operations.yaml"


def route_path(documented: str) -> str:
    """An OpenAPI path as a route: `:name` and `{a-b}` parameters become `{name}` / `{a_b}`."""
    path = re.sub(r":([A-Za-z_]+)", r"{\1}", documented)
    path = re.sub(r"\{([^}]+)\}", lambda m: "{" + m.group(1).replace("-", "_") + "}", path)
    return path if path.startswith("/api/") else f"/api/v1{path}"


def disabled_operations() -> list[tuple[str, str]]:
    ops = []
    for entry in yaml.safe_load(DISABLED_FILE.read_text()):
        method, path = entry.split(" ", 1)
        ops.append((method, route_path(path)))
    return ops


_implemented = {(m, ep.path) for ep in ENDPOINTS for m in ep.methods}
admin.register_disabled([op for op in disabled_operations() if op not in _implemented])
