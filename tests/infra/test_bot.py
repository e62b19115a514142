"""The deployed bot is healthy and connected to Rocket.Chat and to the ERP."""

from __future__ import annotations

import json

import pytest
from plugins.infra import Stack, container_python

pytestmark = pytest.mark.infra


def test_bot_ready_and_connected(stack: Stack) -> None:
    out = container_python(
        stack.bot,
        "import urllib.request; "
        "print(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=5).read().decode())",
    )
    readiness = json.loads(out)
    assert readiness["ready"] is True, readiness
    assert all(readiness["checks"].values()), readiness
