"""lab/drill_erp_alerts.py's judgement, without a lab: alerts counted per ERP host from each of its
instances' counters, and the burst the bot's container runs."""

from __future__ import annotations

import pytest

from lab.drill_erp_alerts import PATH, burst_code, by_instance, raised_on

pytestmark = pytest.mark.unit

HOSTS = {"erp1": "10.77.0.31", "erp2": "10.77.0.32"}


def test_alerts_are_counted_per_host_over_its_instances() -> None:
    before = {"10.77.0.31:8000": 1.0}
    after = {"10.77.0.31:8000": 2.0, "10.77.0.31:8001": 1.0, "10.77.0.32:8000": 0.0}
    assert raised_on(HOSTS, before, after) == {"erp1": 2.0, "erp2": 0.0}


def test_a_host_whose_counter_never_appeared_raised_nothing() -> None:
    # A labelled counter has no series before its first alert: absent counts as 0 on both sides.
    assert raised_on(HOSTS, {}, {"10.77.0.32:8000": 1.0}) == {"erp1": 0.0, "erp2": 1.0}
    # An address that is a prefix of another is not mistaken for it.
    assert raised_on({"erp3": "10.77.0.3"}, {}, {"10.77.0.31:8000": 1.0}) == {"erp3": 0.0}


def test_an_instant_vector_by_instance() -> None:
    result = [{"metric": {"instance": "10.77.0.31:8000"}, "value": [1.0, "3"]}]
    assert by_instance(result) == {"10.77.0.31:8000": 3.0}


def test_the_burst_is_valid_python_with_a_wrong_key_over_verified_tls() -> None:
    code = burst_code("chat.pmlab.test", 60, 0.08)
    compile(code, "<burst>", "exec")
    assert f'"https://chat.pmlab.test{PATH}"' in code
    assert 'cafile="/etc/bot/ca.crt"' in code
    assert "range(60)" in code
    assert "pmlab-drill-wrong-key" in code
