"""alert_rules_for: a rule file of monitoring/rules with some alerts' `for:` set by the inventory.

monitoring_alert_for ({alert name: duration}, empty by default) lets an environment wait a different time
before an alert fires than the repository's rule says, without a copy of the rule (inventory/lab: TargetDown
after 1m, so the host-loss drill of every `make test` waits one minute, not five). Without an override of
one of its alerts, a file is returned as it is, byte for byte (the file promtool's unit tests read).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# Prometheus' duration syntax: one or more number-unit pairs, largest unit first (1h30m, 90s, 5m).
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


class AlertRulesError(ValueError):
    """An override names no alert of the rule files, or its duration is not a Prometheus duration."""


def _rules(document: Any) -> list[dict]:
    groups = document.get("groups", []) if isinstance(document, dict) else []
    return [rule for group in groups for rule in group.get("rules", []) if "alert" in rule]


def alert_rules_for(text: str, overrides: dict[str, str] | None, name: str = "rule file") -> str:
    """TEXT (one rule file) with the `for:` of each alert named in OVERRIDES replaced."""
    if not overrides:
        return text
    for alert, duration in overrides.items():
        if not isinstance(duration, str) or not DURATION.match(duration):
            raise AlertRulesError(
                f"monitoring_alert_for: {alert}: {duration!r} is not a Prometheus duration such as 1m or 90s"
            )
    document = yaml.safe_load(str(text))
    rules = [rule for rule in _rules(document) if rule["alert"] in overrides]
    if not rules:
        return text
    for rule in rules:
        rule["for"] = str(overrides[rule["alert"]])  # a plain str: Ansible hands in its own str type
    changed = ", ".join(sorted({f"{rule['alert']} for {rule['for']}" for rule in rules}))
    header = (
        f"# {name} with monitoring_alert_for applied ({changed}); the repository's file says otherwise.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


def alert_names(texts: list[str]) -> list[str]:
    """Every alert defined in TEXTS (the rule files), to check that each override names one."""
    return sorted({rule["alert"] for text in texts for rule in _rules(yaml.safe_load(str(text)))})


class FilterModule:
    def filters(self) -> dict:
        return {"alert_rules_for": alert_rules_for, "alert_rules_names": alert_names}
