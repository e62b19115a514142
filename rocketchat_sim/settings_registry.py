"""The workspace settings the simulator registers: id → (default, type, public), read from data/settings.yaml.

The file holds facts from Rocket.Chat's setting definitions (see its header). Types decide how an env
override is converted, as Rocket.Chat's convertValue does: booleans from true/false, ints parsed,
everything else kept as a string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REGISTRY_FILE = Path(__file__).resolve().parent / "data" / "settings.yaml"


def _load() -> tuple[dict[str, tuple[Any, str, bool]], frozenset[str]]:
    settings: dict[str, tuple[Any, str, bool]] = {}
    hidden = set()
    for group in yaml.safe_load(REGISTRY_FILE.read_text()).values():
        for sid, fact in group.items():
            settings[sid] = (fact["default"], fact["type"], bool(fact["public"]))
            if fact.get("hidden"):
                hidden.add(sid)
    return settings, frozenset(hidden)


SETTINGS, HIDDEN = _load()


class SettingValueError(ValueError):
    pass


def convert(setting_id: str, raw: str) -> Any:
    """Convert an environment string to the setting's type (Rocket.Chat's convertValue)."""
    kind = SETTINGS[setting_id][1] if setting_id in SETTINGS else "string"
    if kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise SettingValueError(f"Error converting value for setting {setting_id}: expected type boolean")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise SettingValueError(
                f"Error converting value for setting {setting_id}: expected type int"
            ) from None
    return raw


def check_type(setting_id: str, value: Any) -> bool:
    """Whether a value posted through the REST API fits the setting's type."""
    kind = SETTINGS[setting_id][1] if setting_id in SETTINGS else "string"
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "multiSelect":
        return isinstance(value, list)
    return isinstance(value, str)
