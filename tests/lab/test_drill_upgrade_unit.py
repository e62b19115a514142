"""The judging of lab/drill_upgrade.py: requests counted in the play under way when they started, and
only the ERP and bot phases held to zero failures."""

from __future__ import annotations

import pytest

from lab import drill_upgrade
from lab.drill_host_loss import Sample
from lab.drill_upgrade import (
    RC_JUDGED,
    Phases,
    PlayMarker,
    judge,
    play_phase,
    rc_window,
    report,
    rocketchat_restored,
)

pytestmark = pytest.mark.unit


def test_plays_map_to_the_layer_they_roll() -> None:
    assert play_phase("upgrade", "Preflight and the previous image references", False) == "upgrade prepare"
    assert play_phase("upgrade", "ERP API, one host at a time", False) == "upgrade erp"
    assert (
        play_phase(
            "rollback", "ERP API, one host at a time (database restored when it migrated forward)", False
        )
        == "rollback erp"
    )
    assert play_phase("upgrade", "Onboarding bot, one host at a time", True) == "upgrade bot"
    assert play_phase("upgrade", "Finish the upgrade record", True) == "upgrade finish"


def test_a_playbook_output_enters_a_phase_at_each_play() -> None:
    phases = Phases()
    marker = PlayMarker("upgrade", phases)
    output = [
        "PLAY [Preflight and the previous image references] ****",
        "TASK [Gathering Facts] ****",
        "PLAY [ERP API, one host at a time] ****",
        "ok: [stage]",
        "PLAY [Finish the upgrade record] ****",
        "PLAY RECAP ****",
    ]
    for line in output:
        marker(line + "\n")
    assert [name for _, name in phases.marks] == ["upgrade prepare", "upgrade erp", "upgrade finish"]


def _phases() -> Phases:
    phases = Phases()
    for when, name in [
        (0, "before"),
        (10, "upgrade prepare"),
        (20, "upgrade erp"),
        (30, "upgrade proxy"),
    ]:
        phases.enter(name, float(when))
    return phases


def test_each_request_counts_in_the_phase_it_started_in() -> None:
    samples = [
        Sample(5, 6, 200),
        Sample(21, 23, 200),
        Sample(29.9, 31, 200),
        Sample(31, 33, None, "ConnectionResetError: x"),
    ]
    rows = _phases().table(samples, 40.0)
    assert {name: row["sent"] for name, row in rows.items()} == {
        "before": 1, "upgrade prepare": 0, "upgrade erp": 2, "upgrade proxy": 1,
    }  # fmt: skip
    assert rows["upgrade erp"]["seconds"] == 10.0
    # Every phase is judged; in the proxy's swap a connection that got no HTTP answer fails the drill.
    assert judge(rows) == [
        "upgrade prepare: no request was sent in this phase (10 s)",
        "upgrade proxy: 1 of 1 requests got no HTTP answer (ConnectionResetError)",
    ]
    assert "ConnectionResetError" in "\n".join(report(rows))


def test_a_failure_while_the_erp_rolls_fails_the_drill() -> None:
    samples = [Sample(11, 12, 200), Sample(21, 22, 200), Sample(25, 26, 502), Sample(31, 32, 200)]
    rows = _phases().table(samples, 40.0)
    assert judge(rows) == ["upgrade erp: 1 of 2 requests failed (502)"]


def test_a_judged_phase_no_request_saw_fails_the_drill() -> None:
    rows = _phases().table([Sample(5, 6, 200), Sample(11, 12, 200), Sample(31, 32, 200)], 40.0)
    assert judge(rows) == ["upgrade erp: no request was sent in this phase (10 s)"]


def test_the_phase_before_the_upgrade_is_not_judged() -> None:
    samples = [Sample(5, 6, 503), Sample(11, 12, 200), Sample(21, 22, 200), Sample(31, 32, 200)]
    assert judge(_phases().table(samples, 40.0)) == []


def test_an_http_error_while_the_proxy_swaps_is_printed_not_judged() -> None:
    samples = [Sample(11, 12, 200), Sample(21, 22, 200), Sample(31, 32, 502), Sample(33, 34, 200)]
    rows = _phases().table(samples, 40.0)
    assert judge(rows) == []
    assert "502" in "\n".join(report(rows))


def test_rocketchat_plays_are_their_own_phase() -> None:
    assert play_phase("upgrade", "Rocket.Chat instances, one host at a time", False) == "upgrade rocketchat"
    assert (
        play_phase(
            "rollback",
            "Rocket.Chat instances, whether the database migrated forward (restored when it did)",
            False,
        )
        == "rollback rocketchat"
    )
    # The TLS sidecars stay their own layer, where Rocket.Chat may not fail: its instance's roll re-created
    # the sidecar in the instance's own window, so the sidecars' play finds it current.
    assert play_phase("upgrade", "Rocket.Chat's TLS sidecars, one host at a time", True) == "upgrade sidecar"
    assert drill_upgrade.RC_OWN == ("rocketchat",)
    assert "sidecar" in drill_upgrade.RC_JUDGED


def _rc_phases() -> Phases:
    phases = Phases()
    for when, name in [
        (0, "before"),
        (10, "upgrade prepare"),
        (20, "upgrade rocketchat"),
        (40, "upgrade erp"),
    ]:
        phases.enter(name, float(when))
    return phases


def test_rocketchat_down_in_its_own_play_is_a_window_not_a_failure_of_its_loop() -> None:
    samples = [
        Sample(11, 12, 200),
        Sample(22, 23, 502),
        Sample(30, 31, 502),
        Sample(35, 36, 200),
        Sample(41, 42, 200),
    ]
    rows = _rc_phases().table(samples, 50.0)
    assert judge(rows, RC_JUDGED) == []
    assert rc_window(rows) == "upgrade rocketchat: 2 failed over 8 s"
    # The ERP loop is judged in Rocket.Chat's play too: the ERP path does not pass through Rocket.Chat.
    assert judge(rows) == ["upgrade rocketchat: 2 of 3 requests failed (502)"]


def test_rocketchat_down_outside_its_own_play_fails_the_drill() -> None:
    samples = [Sample(11, 12, 200), Sample(22, 23, 200), Sample(41, 42, 502), Sample(45, 46, 200)]
    rows = _rc_phases().table(samples, 50.0)
    assert judge(rows, RC_JUDGED) == ["upgrade erp: 1 of 2 requests failed (502)"]
    assert rc_window(rows) == "none failed"


# rollback.yml's messages as ansible-playbook's default callback printed them in the lab (2026-12-07).
RESTORED = """TASK [Say that Rocket.Chat's database was restored] ****************************
ok: [chat] =>
    msg: 'Rocket.Chat''s database had migrated forward (migration version 331, before
        the upgrade 330): RESTORED from the pre-upgrade backup /var/backups/photomatrix/photomatrix-1.pmbackup
        on chat. Changes made since the upgrade are in the safety backup the restore took
        first.'
"""
NOT_RESTORED = """    msg: 'Rocket.Chat''s database is at the migration version it had before the upgrade
        (330): not restored.'
    msg: The ERP database had migrated forward (0002, before the upgrade 0001): RESTORED from the
        pre-upgrade backup /var/backups/photomatrix/photomatrix-1.pmbackup.
"""


def test_the_rollbacks_restore_of_rocketchat_is_read_from_its_output() -> None:
    assert rocketchat_restored(RESTORED)
    # The ERP's own RESTORED line is not Rocket.Chat's.
    assert not rocketchat_restored(NOT_RESTORED)


def test_each_hosts_containers_are_listed_by_the_same_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """erp1 runs a replica (photomatrix-erp-api-2): erp2 is still asked for every ERP container, and the
    TLS sidecar never counts as one of Rocket.Chat's instances (the name filter is anchored)."""
    asked: list[tuple[str, str]] = []

    def capture(lab, host: str, command: str, timeout: float = 60) -> str:
        asked.append((host, command))
        if "docker ps" in command:
            return {"erp1": "photomatrix-erp-api\nphotomatrix-erp-api-2", "erp2": "photomatrix-erp-api"}[host]
        return f"sha256:{host}"

    monkeypatch.setattr(drill_upgrade.remote, "capture", capture)
    assert drill_upgrade.erp_images(None, ["erp1", "erp2"]) == {
        "erp1/photomatrix-erp-api": "sha256:erp1",
        "erp1/photomatrix-erp-api-2": "sha256:erp1",
        "erp2/photomatrix-erp-api": "sha256:erp2",
    }
    filters = {command.split("--filter ")[1] for _, command in asked if "docker ps" in command}
    assert filters == {"'name=^photomatrix-erp-api(-[0-9]+)?$'"}


def test_the_sidecars_play_is_rocketchats_own_only_where_its_instances_were_left_alone() -> None:
    rolled = "TASK [rocketchat : Run instance 1] ***\nchanged: [chat]\n"
    left = (
        'ok: [localhost] => {\n    "msg": "localhost (Rocket.Chat): already on the recorded'
        ' images: not rolled\n    back."\n}\n'
    )
    assert drill_upgrade.rc_own_phases(rolled) == ("rocketchat",)
    assert drill_upgrade.rc_own_phases(left) == ("rocketchat", "sidecar")
    # Another layer left alone says nothing about Rocket.Chat's.
    other = left.replace("(Rocket.Chat)", "(ERP API)")
    assert drill_upgrade.rc_own_phases(other) == ("rocketchat",)
