"""The host-loss drill's judging (lab/drill_host_loss.py) without a lab: the request loop's samples against
the kill, the bot's alert lines in the admins group, Prometheus answers, and lab.multi's log read by
`python -m ops.figures record-lab` with the drill's steps in it."""

from __future__ import annotations

import json

import pytest

from lab.drill_host_loss import (
    Sample,
    alert_events,
    episode,
    first_event,
    judge,
    parse_ts,
    peak_load,
    span,
    vector_value,
)
from ops.figures import lab_records

pytestmark = pytest.mark.unit

KILL = 1000.0


def ok(start: float, seconds: float = 0.05) -> Sample:
    return Sample(start, start + seconds, 200)


def test_a_clean_run_detects_the_loss_at_the_first_request_that_waited_for_the_dead_host() -> None:
    samples = [
        ok(KILL - 2),
        ok(KILL - 1),
        ok(KILL + 0.2),
        ok(KILL + 0.5, 2.1),
        ok(KILL + 0.8),
        ok(KILL + 6, 2.0),
    ]
    verdict = judge(samples, KILL)
    assert verdict.passed
    assert verdict.baseline == 2
    assert verdict.detected_at == pytest.approx(KILL + 2.6)
    assert verdict.failed_before == []
    assert verdict.failed_after == []
    # The proxy tries the lost host again after fail_timeout: answered, but slow.
    assert verdict.slow_after == [samples[5]]
    assert verdict.longest == pytest.approx(2.1)


def test_failures_up_to_the_detection_are_reported_and_pass() -> None:
    failed = Sample(KILL + 0.1, KILL + 0.3, 502)
    samples = [ok(KILL - 1), failed, ok(KILL + 0.5)]
    verdict = judge(samples, KILL)
    assert verdict.passed
    assert verdict.detected_by == failed
    assert verdict.failed_before == [failed]
    assert span(verdict.failed_before, KILL) == "1 (502), +0.1 s to +0.3 s after the kill"


def test_a_request_in_flight_at_the_kill_counts_before_the_detection() -> None:
    reset = Sample(KILL - 0.1, KILL + 0.1, None, "ConnectionResetError: reset by peer")
    verdict = judge([ok(KILL - 1), reset, ok(KILL + 1)], KILL)
    assert verdict.passed
    assert verdict.failed_before == [reset]
    assert "ConnectionResetError" in span([reset], KILL)


def test_a_failure_after_the_detection_fails_the_drill() -> None:
    late = Sample(KILL + 30, KILL + 32, 504)
    verdict = judge([ok(KILL - 1), ok(KILL + 0.2, 2.2), ok(KILL + 10), late], KILL)
    assert not verdict.passed
    assert verdict.failed_after == [late]


def test_a_failure_at_the_rejoin_fails_the_drill() -> None:
    rejoin = Sample(KILL + 400, KILL + 400.1, 502)
    verdict = judge([ok(KILL + 0.1, 2.0), ok(KILL + 399), rejoin], KILL)
    assert verdict.failed_after == [rejoin]
    assert not verdict.passed


def test_without_a_request_that_found_the_dead_host_the_kill_is_the_detection() -> None:
    failed = Sample(KILL + 5, KILL + 5.1, None, "TimeoutError: timed out")
    verdict = judge([ok(KILL - 1), ok(KILL + 1)], KILL)
    assert verdict.detected_by is None
    assert verdict.detected_at == KILL
    assert judge([ok(KILL + 1), failed], KILL).detected_by == failed


def test_a_baseline_failure_fails_the_drill() -> None:
    verdict = judge([Sample(KILL - 2, KILL - 1.9, 500), ok(KILL + 1)], KILL)
    assert not verdict.passed
    assert len(verdict.baseline_failed) == 1


def test_no_failure_is_none() -> None:
    assert span([], KILL) == "none"


INSTANCE = "10.77.0.31:8000"
FIRING_RU = (
    "🔥 *Оповещение мониторинга* — активно: 2, снято: 0\n"
    f"• АКТИВНО [critical] *TargetDown*: erp-api ({INSTANCE}) is down: Prometheus' scrapes get no answer — "
    "Prometheus cannot scrape … (environment=lab, instance=10.77.0.31:8000, job=erp-api)\n"
    "• АКТИВНО [critical] *TargetDown*: node (10.77.0.31:9100) is down: Prometheus' scrapes get no answer"
)
RESOLVED_EN = (
    "✅ *Monitoring: resolved* — 1 alert(s)\n"
    f"• resolved [critical] *TargetDown*: erp-api ({INSTANCE}) is down: Prometheus' scrapes get no answer"
)


def test_the_bots_alert_lines_are_read_in_either_language() -> None:
    messages = [
        {"msg": RESOLVED_EN, "ts": "2026-12-02T19:10:30.000Z"},
        {"msg": FIRING_RU, "ts": "2026-12-02T19:05:30.500Z"},
        {"msg": "• АКТИВНО [critical] *ProbeFailed*: 10.77.0.31:8000", "ts": "2026-12-02T19:05:00Z"},
        {"msg": "hello, TargetDown 10.77.0.31:8000", "ts": "2026-12-02T19:00:00Z"},
    ]
    events = alert_events(messages, "TargetDown", INSTANCE)
    fired, resolved = parse_ts("2026-12-02T19:05:30.500Z"), parse_ts("2026-12-02T19:10:30Z")
    assert events == [(fired, "firing"), (resolved, "resolved")]
    assert first_event(events, "firing", fired - 1) == fired
    assert first_event(events, "firing", fired + 1) is None
    assert first_event(events, "resolved", fired) == resolved


def test_a_resolution_held_back_from_an_earlier_episode_is_not_this_ones() -> None:
    # CI, 2026-12-07: a resolved line for the victim's instance posted 16 s after the kill, before the
    # alert fired (an earlier episode's notification, held back while Rocket.Chat was down).
    messages = [
        {"msg": RESOLVED_EN, "ts": "2026-12-02T19:00:16Z"},
        {"msg": FIRING_RU, "ts": "2026-12-02T19:02:16Z"},
        {"msg": RESOLVED_EN, "ts": "2026-12-02T19:04:00Z"},
    ]
    events = alert_events(messages, "TargetDown", INSTANCE)
    killed = parse_ts("2026-12-02T19:00:00Z")
    assert episode(events, killed) == (parse_ts("2026-12-02T19:02:16Z"), parse_ts("2026-12-02T19:04:00Z"))
    assert episode(events[:2], killed) == (parse_ts("2026-12-02T19:02:16Z"), None)
    assert episode(events[:1], killed) == (None, None)


def test_an_older_alert_of_the_same_target_does_not_count() -> None:
    old = {"msg": FIRING_RU, "ts": "2026-12-02T10:00:00Z"}
    assert (
        first_event(alert_events([old], "TargetDown", INSTANCE), "firing", parse_ts("2026-12-02T19:00:00Z"))
        is None
    )


def test_message_times_with_an_offset_and_the_realtime_form() -> None:
    assert parse_ts("2026-12-02T19:00:00+00:00") == parse_ts("2026-12-02T19:00:00Z")
    events = alert_events(
        [{"msg": RESOLVED_EN, "ts": {"$date": "2026-12-02T19:00:00Z"}}], "TargetDown", INSTANCE
    )
    assert events == [(parse_ts("2026-12-02T19:00:00Z"), "resolved")]


def test_a_prometheus_instant_vector() -> None:
    assert vector_value([]) is None
    assert vector_value([{"metric": {"instance": INSTANCE}, "value": [1764702000.1, "0"]}]) == 0.0


LOG = """\
2026-12-02T19:20:00Z drill host-loss: did
  19:01:00  request loop: GET https://chat.pmlab.test/activate/style.css, 4/s
drill host-loss: passed
2026-12-02T19:21:00Z lab cycle multi: passed in 2400 s
  lab up                                                                        40 s  (load 5.0)
  site.yml again (changed=0)                                                   520 s  (load 12.0)
  drill host loss: erp1 killed → TargetDown in the admins group                 335 s  (load 18.5)
  drill host loss: erp1 started → serving through the proxy again                55 s  (load 14.0)
  lab down                                                                      30 s  (load 9.0)
"""


def test_record_lab_reads_a_cycle_with_the_drill_and_keeps_the_steps_after_it() -> None:
    records, last = lab_records(LOG)
    figures = [json.loads(r) for r in records]
    assert last == "2026-12-02T19:21:00Z"
    assert {"figure": "lab.multi.down_s", "value": 30.0} in figures
    assert {"figure": "lab.multi.again_s", "value": 520.0} in figures
    assert {"figure": "lab.multi.load_average", "value": 18.5} in figures


def test_each_timing_gets_the_highest_load_sampled_during_it() -> None:
    loads = [(KILL - 5, 30.0), (KILL + 10, 14.0), (KILL + 300, 9.5), (KILL + 400, 3.0)]
    assert peak_load(loads, KILL, KILL + 335) == 14.0
    assert peak_load(loads, KILL + 350, KILL + 500) == 3.0
    assert peak_load(loads, KILL + 600, KILL + 700) == 0.0


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m"), (60, "1m"), (90, "90s"), (3600, "1h"), (0, "0s")])
def test_the_rule_s_wait_is_named_as_prometheus_writes_it(seconds: float, text: str) -> None:
    from lab.drill_host_loss import duration_text

    assert duration_text(seconds) == text


def test_the_drill_s_steps_name_the_wait_and_the_figures_know_them() -> None:
    from ops.figures import LAB_DRILL_STEPS, LAB_STEPS

    alert = "drill host loss: erp1 killed → TargetDown (for 1m) in the admins group"
    assert [figure for pattern, figure in LAB_DRILL_STEPS if pattern.match(alert)] == [
        "lab.multi.drill_alert_for1m_s"
    ]
    whole = "drill host loss, whole drill (request loop start to stop; TargetDown for 1m)"
    assert LAB_STEPS[("multi", whole)] == "lab.multi.drill_whole_for1m_s"
