"""lab.multi reads Ansible's PLAY RECAP to tell a failed or unreachable host; its steps run in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.multi import recap, summary

pytestmark = pytest.mark.unit

OUTPUT = """
PLAY [Docker Engine and images] ************************************************
TASK [Gathering Facts] *********************************************************
ok: [edge]

PLAY RECAP *********************************************************************
edge                       : ok=10   changed=3    unreachable=0    failed=0    skipped=2
erp1                       : ok=12   changed=0    unreachable=1    failed=0    skipped=4

PLAY [Summary] *****************************************************************

PLAY RECAP *********************************************************************
edge                       : ok=140  changed=0    unreachable=0    failed=0    skipped=60
mongo1                     : ok=40   changed=2    unreachable=0    failed=1    skipped=9
"""


def test_the_last_recap_counts_per_host() -> None:
    assert recap(OUTPUT) == {
        "edge": {"changed": 0, "unreachable": 0, "failed": 0},
        "mongo1": {"changed": 2, "unreachable": 0, "failed": 1},
    }


def test_no_recap_is_no_hosts() -> None:
    assert recap("ERROR! the playbook could not be found") == {}


def test_each_step_is_reported_with_the_load_beside_it() -> None:
    lines = summary({"lab up": (78.4, 12.91), "site.yml again (changed=0)": (301.0, 3.0)})
    assert lines[0].split() == ["lab", "up", "78", "s", "(load", "12.9)"]
    assert lines[1].endswith("301 s  (load 3.0)")


class _Lab:
    name = "pmlabx"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir


DRILLS = {
    "drill ERP alerts: every ERP host's own alert in the admins channel, through the proxy": (20.0, 9.0),
    "drill host loss: erp1 killed → TargetDown in the admins group": (330.0, 14.2),
    "drill host faults, whole (faults set to every one undone and recovered)": (240.0, 9.0),
}


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """lab.multi with the lab and every command replaced: the steps it runs, in order. `make drill`
    records the drills' timings in the lab's state as tests/infra/test_drill_hosts.py does."""
    from contextlib import nullcontext

    import lab.multi as multi

    ran: list[str] = []
    lab = _Lab(tmp_path)
    monkeypatch.setattr(multi, "load", lambda inventory: lab)
    monkeypatch.setenv("PHOTOMATRIX_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setattr(multi.control, "lock", lambda lab: nullcontext())
    monkeypatch.setattr(multi.control, "status", lambda lab: [("pmlabx-edge", "running", "10.0.0.1")])
    monkeypatch.setattr(multi.control, "down", lambda lab: ran.append("down"))
    monkeypatch.setattr(multi.control, "up", lambda lab: ran.append("up") or {"total": 1.0})
    clean = {"edge": {"changed": 0, "unreachable": 0, "failed": 0}}

    def playbook(inventory: object, book: str, what: str, on_line=None) -> tuple[float, str, dict]:
        ran.append(book)
        for line in ("PLAY [Docker Engine and images] ****\n", "PLAY [MongoDB] ****\n"):
            if on_line is not None:
                on_line(line)
        return 1.0, "", clean

    monkeypatch.setattr(multi, "_playbook_output", playbook)

    def run(argv: list[str], what: str) -> tuple[float, str]:
        ran.append(argv[2])
        if argv[2] == "status":
            return 1.0, "Photomatrix status at …\n\nAlerts\n  none firing\n\nall good\n"
        if argv[2] == "drill":
            assert argv[3] == "INVENTORY=inventory/lab"
            for step, figure in DRILLS.items():  # each drill as it passes
                multi.add_drill_figures(lab, {step: figure})  # type: ignore[arg-type]
        return 1.0, ""

    monkeypatch.setattr(multi, "_run", run)
    upgrade = {"make upgrade across the hosts, under load": (200.0, 9.0)}
    monkeypatch.setattr(multi.drill_upgrade, "run", lambda lab, inventory: ran.append("upgrade") or upgrade)
    return ran


def test_a_run_starts_from_a_fresh_lab_and_removes_it(steps: list[str]) -> None:
    from lab.multi import multi

    figures = multi()
    assert steps == [
        "down", "up", "site.yml", "rotate", "verify", "status", "site.yml", "drill", "upgrade", "down",
    ]  # fmt: skip
    assert list(figures) == [
        "lab up",
        "docker layer (engines, firewall, images built once, pushed, pulled)",
        "site.yml (cold deploy across the hosts)",
        "make rotate WHAT=ca (certificates re-signed, restarts)",
        "make verify after the rotation",
        "make status (every host read, none down)",
        "site.yml again (changed=0)",
        "drill ERP alerts: every ERP host's own alert in the admins channel, through the proxy",
        "drill host loss: erp1 killed → TargetDown in the admins group",
        "drill host faults, whole (faults set to every one undone and recovered)",
        "make upgrade across the hosts, under load",
        "lab down",
    ]


def test_from_resumes_the_kept_lab_without_removing_it_first(steps: list[str]) -> None:
    from lab.multi import multi

    multi(keep=True, start="rotate")
    assert steps == ["rotate", "verify", "status", "site.yml", "drill", "upgrade"]


def test_to_ends_after_that_step_and_still_removes_the_lab(steps: list[str]) -> None:
    from lab.multi import multi

    figures = multi(stop="verify")
    assert steps == ["down", "up", "site.yml", "rotate", "verify", "status", "down"]
    assert "upgrade" not in steps
    assert list(figures)[-1] == "lab down"


def test_to_before_from_is_refused(steps: list[str]) -> None:
    import lab.multi as multi

    with pytest.raises(multi.CycleError, match="comes before"):
        multi.multi(keep=True, start="verify", stop="rotate")
    assert steps == []


def test_from_drill_runs_the_drill_alone_on_the_kept_lab(steps: list[str]) -> None:
    from lab.multi import multi

    figures = multi(keep=True, start="drill", stop="drill")
    assert steps == ["drill"]
    assert list(figures) == [
        "drill ERP alerts: every ERP host's own alert in the admins channel, through the proxy",
        "drill host loss: erp1 killed → TargetDown in the admins group",
        "drill host faults, whole (faults set to every one undone and recovered)",
    ]


def test_a_failed_drill_fails_the_cycle_shows_its_report_and_leaves_no_lab(
    steps: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import lab.multi as multi

    alerts = next(iter(DRILLS.items()))
    real_run = multi._run

    def drill_fails(argv: list[str], what: str) -> tuple[float, str]:
        if argv[2] != "drill":
            return real_run(argv, what)
        steps.append("drill")
        multi.add_drill_figures(multi.load(Path()), dict([alerts]))  # the ERP alerts drill passed
        report = multi.drill_report(Path("inventory/lab"))
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("E   DrillError: 1 request(s) failed after the proxy's detection\n")
        raise multi.CycleError("drill failed (exit code 2)")

    reports: list[str] = []
    monkeypatch.setattr(multi, "_run", drill_fails)
    monkeypatch.setattr(multi, "report", lambda text, stream: reports.append(text))
    assert multi.main([]) == 1
    assert "drill failed" in reports[0].splitlines()[0]
    assert alerts[0] in reports[0]  # the drill that passed keeps its figure
    assert "failed after the proxy's detection" in capsys.readouterr().out  # the whole report, shown
    assert steps[-1] == "down"


def test_the_drills_figures_are_read_in_the_order_they_passed(tmp_path: Path) -> None:
    from lab.multi import add_drill_figures, drill_figures

    lab = _Lab(tmp_path)
    assert drill_figures(lab) == {}  # type: ignore[arg-type]
    for step, figure in DRILLS.items():
        add_drill_figures(lab, {step: figure})  # type: ignore[arg-type]
    assert drill_figures(lab) == DRILLS  # type: ignore[arg-type]
    assert list(drill_figures(lab)) == list(DRILLS)  # type: ignore[arg-type]


def test_from_refuses_without_a_kept_lab(steps: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import lab.multi as multi

    monkeypatch.setattr(multi.control, "status", lambda lab: [])
    with pytest.raises(multi.CycleError, match="needs the kept lab"):
        multi.multi(keep=True, start="site")
    assert steps == []


def test_a_failed_run_still_reports_the_steps_that_passed(
    steps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lab.multi as multi

    def make_fails(argv: list[str], what: str) -> tuple[float, str]:  # the first: make rotate
        raise multi.CycleError(f"{argv[2]} failed (exit code 1)")

    reports: list[str] = []
    monkeypatch.setattr(multi, "_run", make_fails)
    monkeypatch.setattr(multi, "report", lambda text, stream: reports.append(text))
    assert multi.main([]) == 1
    lines = reports[0].splitlines()
    assert "FAILED" in lines[0]
    assert "rotate failed" in lines[0]
    assert [line.split(" s  (load")[0].rsplit(None, 1)[0].strip() for line in lines[1:]] == [
        "lab up",
        "docker layer (engines, firewall, images built once, pushed, pulled)",
        "site.yml (cold deploy across the hosts)",
        "lab down",
    ]


def test_to_docker_runs_docker_yml_alone(steps: list[str]) -> None:
    from lab.multi import DOCKER_STEP, multi

    figures = multi(stop="docker")
    assert steps == ["down", "up", "docker.yml", "down"]
    assert DOCKER_STEP in figures


def test_the_docker_layer_is_timed_apart_within_one_site_run() -> None:
    """site.yml's docker layer ends when a play that is not docker.yml's starts: task headers, recaps and
    docker.yml's own plays do not end it."""
    import lab.multi as multi

    clock = multi.LayerClock()
    for line in (
        "PLAY [Docker Engine and images] ***************\n",
        "TASK [docker_engine : Install Docker Engine] ***\n",
        "PLAY RECAP *************************************\n",
    ):
        clock.line(line)
    assert clock.figure is None
    clock.line("PLAY [MongoDB] *********************************\n")
    assert clock.figure is not None
    first = clock.figure
    clock.line("PLAY [Rocket.Chat] *****************************\n")
    assert clock.figure is first


def test_a_site_run_without_a_play_after_its_docker_layer_fails(
    steps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lab.multi as multi

    clean = {"edge": {"changed": 0, "unreachable": 0, "failed": 0}}
    monkeypatch.setattr(multi, "_playbook", lambda inventory, book, what, on_line=None: (1.0, clean))
    with pytest.raises(multi.CycleError, match="no play after its docker layer"):
        multi.multi(stop="site")


SECOND_RUN = """
TASK [tls_proxy : Render nginx.conf] *******************************************
Sunday 06 December 2026  03:01:02 +0000 (0:00:01.100)       0:02:03.000 *******
ok: [edge]
TASK [erp_api : Start the ERP's containers] ************************************
changed: [erp1] => (item=photomatrix-erp-api)
ok: [erp2] => (item=photomatrix-erp-api)
TASK [monitoring : Rules] ******************************************************
changed: [mon]

PLAY RECAP *********************************************************************
edge                       : ok=140  changed=0    unreachable=0    failed=0    skipped=60
erp1                       : ok=40   changed=1    unreachable=0    failed=0    skipped=9
mon                        : ok=40   changed=1    unreachable=0    failed=0    skipped=9
"""


def test_changed_tasks_names_each_task_and_host() -> None:
    from lab.multi import changed_tasks

    assert changed_tasks(SECOND_RUN) == [
        ("erp_api : Start the ERP's containers", "erp1"),
        ("monitoring : Rules", "mon"),
    ]
    assert changed_tasks("") == []


def test_a_second_run_that_changes_anything_fails_the_cycle_naming_the_tasks(
    steps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lab.multi as multi

    def playbook(inventory: object, book: str, what: str, on_line=None) -> tuple[float, str, dict]:
        steps.append(book)
        return 1.0, SECOND_RUN, multi.recap(SECOND_RUN)

    monkeypatch.setattr(multi, "_playbook_output", playbook)
    with pytest.raises(multi.CycleError, match=r"second site\.yml run changed") as caught:
        multi.multi(keep=True, start="again")
    assert "{'erp1': 1, 'mon': 1}" in str(caught.value)
    assert "erp1: erp_api : Start the ERP's containers" in str(caught.value)
    assert "mon: monitoring : Rules" in str(caught.value)
    assert steps == ["site.yml"]


STATUS = """Photomatrix status at 2026-12-06 08:06 UTC

Containers
  bot: 2/2 up
    ok   photomatrix-chatbot              Up 3 minutes (healthy)
    wait photomatrix-node-exporter        Up About a minute (health: starting)
  erp1: UNKNOWN (Failed to connect to the host via ssh)
  erp2: 1/2 up
    DOWN photomatrix-erp-api              Exited (1) 2 minutes ago

Alerts
  FIRING HostCpuSaturated (warning) since 2026-12-06 07:40 mon: CPU above 90 % for 15 minutes

Certificate
  chat.pmlab.test: ok, expires 2027-03-06 08:02 UTC (90 days)

4 thing(s) need attention
"""


def test_make_status_fails_the_cycle_where_it_could_not_look_or_a_container_is_down() -> None:
    from lab.multi import status_problems

    assert status_problems(STATUS) == [
        "erp1: UNKNOWN (Failed to connect to the host via ssh)",
        "DOWN photomatrix-erp-api              Exited (1) 2 minutes ago",
    ]  # a firing alert alone is not a failure of the cycle (a loaded machine fires HostCpuSaturated)
    healthy = STATUS.replace("  erp1: UNKNOWN (Failed to connect to the host via ssh)\n", "").replace(
        "    DOWN photomatrix-erp-api              Exited (1) 2 minutes ago\n", ""
    )
    assert status_problems(healthy) == []
    assert status_problems("make: *** [Makefile:144: status] Error 1") == [
        "no verdict line (all good / … need attention)"
    ]
