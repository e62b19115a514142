"""The wait of make verify's probe check (tests/infra/test_hosts.py, probes_pass): it ends as soon as every
probe's last probe_success is 1, and not while any is 0 or none is there yet. Its first version compared
the probes' names with {"1"}: it never ended early, and every verify waited two minutes for nothing."""

from __future__ import annotations

import pytest
from infra.test_hosts import probes_pass

pytestmark = pytest.mark.unit


def answer(**probes: str) -> dict:
    """A Prometheus query answer's data for probe_success, one series per probe."""
    return {"result": [{"metric": {"probe": name}, "value": [0, value]} for name, value in probes.items()]}


def test_every_probe_at_one_ends_the_wait() -> None:
    assert probes_pass(answer(public="1", erp="1"))


def test_a_failing_probe_or_no_probe_yet_keeps_waiting() -> None:
    assert not probes_pass(answer(public="1", erp="0"))
    assert not probes_pass(answer())
