"""lab/drill_erp_alerts.py's judgement, without a lab: alerts counted per ERP host from each of its
instances' counters, and the burst the bot's container runs."""

from __future__ import annotations

import pytest

import lab.drill_erp_alerts as drill
from lab.drill_erp_alerts import PATH, DrillError, burst_code, by_instance, raised_on, wait_targets_up

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


def test_the_burst_is_valid_python_with_a_wrong_key_from_several_sources_over_verified_tls() -> None:
    code = burst_code(3, 10)
    compile(code, "<burst>", "exec")
    assert f"GET {PATH} HTTP/1.0" in code
    assert 'cafile="/run/secrets/erp/tls-ca.crt"' in code
    assert 'server_hostname="erp-api"' in code
    assert "range(3)" in code
    assert "range(10)" in code
    assert "pmlab-drill-wrong-key" in code


class _Prometheus:
    """up{job="erp-api"} as Prometheus answers it, one answer per query in turn (the last one repeated)."""

    def __init__(self, *answers: dict[str, str]) -> None:
        self.answers = list(answers)

    def query(self, promql: str) -> list[dict]:
        assert promql == 'up{job="erp-api"}'
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [{"metric": {"instance": i}, "value": [0, v]} for i, v in answer.items()]


def test_the_drill_waits_for_a_replica_scraped_down_after_a_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drill.time, "sleep", lambda seconds: None)
    stack = _Prometheus(
        {"10.77.0.31:8000": "0", "10.77.0.32:8000": "1"}, {"10.77.0.31:8000": "1", "10.77.0.32:8000": "1"}
    )
    assert wait_targets_up(stack) == {"10.77.0.31:8000": 1.0, "10.77.0.32:8000": 1.0}  # type: ignore[arg-type]


@pytest.mark.parametrize("answer", [{"10.77.0.31:8000": "0", "10.77.0.32:8000": "1"}, {}])
def test_a_target_still_down_or_none_at_all_fails_the_drill(answer: dict[str, str]) -> None:
    with pytest.raises(DrillError, match="not all up within 0 s"):
        wait_targets_up(_Prometheus(answer), timeout=0)  # type: ignore[arg-type]
