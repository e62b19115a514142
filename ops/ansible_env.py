"""The environment for an Ansible run whose standard output is parsed as JSON."""

from __future__ import annotations

import os
from collections.abc import Mapping

# An operator's own notification callbacks (profile_tasks, timer, …) print to standard output too, into
# the JSON. Ansible refuses an empty list ("A non-empty plugin name is required"), so they are unset.
_CALLBACK_LISTS = ("ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CALLBACK_WHITELIST")


def json_env(
    stdout_callback: str = "json", base: Mapping[str, str] | None = None, **extra: str
) -> dict[str, str]:
    """BASE (default os.environ) with STDOUT_CALLBACK on standard output and no other callback, plus EXTRA."""
    source = os.environ if base is None else base
    env = {key: value for key, value in source.items() if key not in _CALLBACK_LISTS}
    env.update(ANSIBLE_STDOUT_CALLBACK=stdout_callback, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", **extra)
    return env
