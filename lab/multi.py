"""The multi-host deployment cycle: the production-shaped inventory/lab deployed across its hosts.

`python -m lab.multi [-i INVENTORY] [--keep] [--from STEP]`: a fresh lab (`lab up`: every host of the
inventory with its own Docker Engine and sshd, and the lab registry), then from this machine over SSH:

1. `docker`: `playbooks/docker.yml`, each host's engine, host firewall and network; the project's images
   built once here and pushed to the lab registry; every host pulls the images it runs by reference;
2. `site`: `playbooks/site.yml`, the whole stack across the hosts (cold deploy). site.yml's first layer
   is docker.yml itself, so a run with both steps runs site.yml once and times its docker layer apart (up
   to the first play of the next layer): docker.yml alone first was a second, no-op pass over every host
   (`--to docker` runs docker.yml alone);
3. `rotate`: `make rotate WHAT=ca INVENTORY=<inventory>` (a new internal CA: the proxy's certificate, the
   ERP's and PostgreSQL's re-signed on their hosts, every consumer restarted);
4. `verify`: `make verify INVENTORY=<inventory>`, the read-only checks of every host and the public name,
   once, on the rotated deployment: every cross-host TLS hop verifies against the new CA (a cold deploy
   checked before any rotation is `--keep --to site`, then `make verify INVENTORY=<inventory>`); then
   `make status INVENTORY=<inventory>`, which must read every host's containers, the alerts and the public
   certificate (no UNKNOWN) and find no container down;
5. `again`: `playbooks/site.yml` a second time, on the rotated and verified deployment: every host's PLAY
   RECAP must say changed=0 (a task that changes on a converged lab is a defect: a template that renders
   differently each run, a check that cannot see what it deployed, or a rotation that left a host
   unlike what site.yml declares). On failure it names each changed task and its host;
6. `drill`: the ERP's own alerts from every ERP host (lab/drill_erp_alerts.py: a burst of wrong keys in
   each ERP replica; each ERP host's alert posted through the public name reaches the admins channel),
   then Rocket.Chat down and back (lab/drill_rocketchat.py: Rocket.Chat stopped on the chat host while an
   employee is in the registration dialog with the bot on the bot host; the bot reconnects, every answer is
   answered once, BotRocketChatDisconnected reaches the admins group once Rocket.Chat is back), then the
   host-loss drill (lab/drill_host_loss.py): the lab host erp1 killed under a steady request loop
   through the proxy, TargetDown in the admins group, the host started again and rejoining. Beside it, three
   host faults (lab/drill_host_faults.py), set before the kill and watched meanwhile: a container
   restarting in a loop on the bot host, a disk nearly full on the db host, the proxy's certificate about
   to expire; each alert in the admins group, each fault undone and its recovery seen;
7. `upgrade`: the rolling upgrade and rollback under load (lab/drill_upgrade.py): a new release of the
   project's images pushed to the lab registry, `make upgrade` then `make rollback` across the hosts
   while a request loop runs through the proxy; no request may fail while the ERP hosts (one at a time)
   or the bot are rolled. Last: its rollback leaves the lab on the release it started with, and it runs on
   a deployment that went through the drills, as a real one does after incidents. It is also the cycle's
   heaviest step (every host backed up, new images pulled), so in `make test` it runs as pytest and the
   other cycles end, while the drills before it mostly wait on alerts;

then the lab is removed, also on failure (`--keep` keeps it).

`--from STEP` (docker, site, rotate, verify, again, drill, upgrade) resumes a kept lab at that step, to
iterate on a fix without a fresh lab; without it, a run starts by removing whatever lab of that name is left.
`--to STEP` ends the run after that step. `make test-multi` (which CI's `make test` runs beside `make
test-infra`) is the whole cycle. Prints the time of each step with this machine's load average when it
ended (the figures are only comparable with the load beside them) and appends the result to
/var/log/photomatrix-lab-cycle.log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess  # nosec B404
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from lab import control, docker, drill_upgrade
from lab.cycle import CycleError, report
from lab.remote import RemoteError
from lab.topology import DEFAULT_INVENTORY, ROOT, Lab, LabConfigError, load

PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
# One host's line of Ansible's PLAY RECAP.
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)
STEP_TIMEOUT = 3600


def recap(output: str) -> dict[str, dict[str, int]]:
    """{host: {changed, unreachable, failed}} from the last PLAY RECAP in OUTPUT."""
    tail = output.rsplit("PLAY RECAP", 1)[-1] if "PLAY RECAP" in output else ""
    keys = ("changed", "unreachable", "failed")
    return {m["host"]: {key: int(m[key]) for key in keys} for m in RECAP.finditer(tail)}


def _run(
    argv: list[str],
    what: str,
    env: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> tuple[float, str]:
    """Run ARGV in the repository, its output on the terminal and kept (each line to ON_LINE too, as it
    comes); returns (seconds, output)."""
    started = time.monotonic()
    print(f"lab multi: {what}: {' '.join(argv)}", flush=True)
    lines: list[str] = []
    with subprocess.Popen(  # noqa: S603  # nosec B603
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        assert process.stdout is not None  # nosec B101
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
            if on_line is not None:
                on_line(line)
            if time.monotonic() - started > STEP_TIMEOUT:
                process.kill()
                raise CycleError(f"{what} did not finish within {STEP_TIMEOUT} s")
        returncode = process.wait(timeout=60)
    output = "".join(lines)
    if returncode != 0:
        raise CycleError(f"{what} failed (exit code {returncode})")
    return time.monotonic() - started, output


# After each playbook, the tasks that took longest (ansible.posix.profile_tasks, its summary only): where a
# run's time goes across the hosts.
PROFILE = {
    "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
    "PROFILE_TASKS_SUMMARY_ONLY": "true",
    "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "25",
}


def _playbook_output(
    inventory: Path, playbook: str, what: str, on_line: Callable[[str], None] | None = None
) -> tuple[float, str, dict[str, dict[str, int]]]:
    """Run PLAYBOOK against INVENTORY: (seconds, its output, its PLAY RECAP); a failed or unreachable
    host fails the step."""
    argv = [str(PLAYBOOK), "-i", str(inventory), f"playbooks/{playbook}"]
    seconds, output = _run(argv, what, env={**os.environ, **PROFILE}, on_line=on_line)
    hosts = recap(output)
    if not hosts:
        raise CycleError(f"{what}: no PLAY RECAP in the output")
    bad = {h: r for h, r in hosts.items() if r["failed"] or r["unreachable"]}
    if bad:
        raise CycleError(f"{what}: failed or unreachable hosts {bad}")
    return seconds, output, hosts


def _playbook(
    inventory: Path, playbook: str, what: str, on_line: Callable[[str], None] | None = None
) -> tuple[float, dict[str, dict[str, int]]]:
    seconds, _, hosts = _playbook_output(inventory, playbook, what, on_line)
    return seconds, hosts


TASK = re.compile(r"^TASK \[(?P<name>.*)\] \**$")
CHANGED = re.compile(r"^changed: \[(?P<host>[^\]]+)\]")


def changed_tasks(output: str) -> list[tuple[str, str]]:
    """(task, host) for each task Ansible's OUTPUT reports as changed on a host, in order."""
    found: list[tuple[str, str]] = []
    task = "?"
    for line in output.splitlines():
        if match := TASK.match(line):
            task = match["name"]
        elif match := CHANGED.match(line):
            found.append((task, match["host"]))
    return found


# A step's figure: its seconds and the 1-minute load average when it ended.
Figure = tuple[float, float]


def summary(figures: dict[str, Figure]) -> list[str]:
    """One line per step: its name, seconds and the load average beside them."""
    return [f"  {step:<72} {seconds:6.0f} s  (load {load:.1f})" for step, (seconds, load) in figures.items()]


def _figure(seconds: float) -> Figure:
    return seconds, os.getloadavg()[0]


# The plays of playbooks/docker.yml, site.yml's first layer (by their names in Ansible's output).
DOCKER_PLAYS = frozenset(
    play["name"] for play in yaml.safe_load((ROOT / "playbooks" / "docker.yml").read_text(encoding="utf-8"))
)
PLAY = re.compile(r"^PLAY \[(?P<name>.*)\] \**$")


class LayerClock:
    """Reads site.yml's output as it comes: the figure of its docker layer, taken when the first play that
    is not docker.yml's starts."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.figure: Figure | None = None

    def line(self, line: str) -> None:
        match = PLAY.match(line.rstrip("\n"))
        if self.figure is None and match and match["name"] not in DOCKER_PLAYS:
            self.figure = _figure(time.monotonic() - self.started)


MAKE = ("/usr/bin/make", "--no-print-directory")
# The drills' timings, in the lab's state (tests/infra/test_drill_hosts.py adds each drill's as it passes).
DRILL_FIGURES = "drill-figures.json"


def drill_report(inventory: Path) -> Path:
    """Where playbooks/verify.yml keeps the whole report of `make drill INVENTORY=<inventory>` (its
    verify_report: PHOTOMATRIX_REPORT_DIR, by default .state/verify)."""
    folder = os.environ.get("PHOTOMATRIX_REPORT_DIR") or str(ROOT / ".state" / "verify")
    return Path(folder) / f"drill-{inventory.name}.log"


def add_drill_figures(lab: Lab, new: dict[str, Figure]) -> None:
    """Add a passed drill's timings (step name: (seconds, load average)) to the lab's record of them."""
    path = lab.state_dir / DRILL_FIGURES
    known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    known.update({step: list(figure) for step, figure in new.items()})
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(known, ensure_ascii=False, indent=1), encoding="utf-8")
    temporary.replace(path)


def drill_figures(lab: Lab) -> dict[str, Figure]:
    """The drills' timings recorded in the lab's state, in the order they passed (none: {})."""
    path = lab.state_dir / DRILL_FIGURES
    if not path.is_file():
        return {}
    return {
        step: (float(seconds), float(load))
        for step, (seconds, load) in json.loads(path.read_text("utf-8")).items()
    }


def _show_report(path: Path) -> None:
    """The whole pytest report of `make drill` (each drill's account of what it did and saw), on the
    terminal and so in `make test`'s TEST_MULTI_LOG."""
    if path.is_file():
        print(f"lab multi: the drills' whole report ({path}):", flush=True)
        print(path.read_text(encoding="utf-8", errors="replace"), flush=True)


DOCKER_STEP = "docker layer (engines, firewall, images built once, pushed, pulled)"
# With the docker step: site.yml's layers after its docker layer (until 2026-12-05 the whole of a second
# site.yml run, whose docker layer was a no-op pass after docker.yml alone).
SITE_STEP = "site.yml (cold deploy across the hosts)"
# The steps in order, by the name `--from` takes.
STEPS = ("up", "docker", "site", "rotate", "verify", "again", "drill", "upgrade")
AGAIN_STEP = "site.yml again (changed=0)"
STATUS_STEP = "make status (every host read, none down)"


def status_problems(output: str) -> list[str]:
    """The lines of `make status` (ops/status.py) that say it could not look (UNKNOWN) or a container is
    down (DOWN), stripped; a status without its closing line counts as one too."""
    lines = [line.strip() for line in output.splitlines()]
    found = [line for line in lines if "UNKNOWN" in line or line.startswith("DOWN ")]
    if not any(line == "all good" or line.endswith("thing(s) need attention") for line in lines):
        found.append("no verdict line (all good / … need attention)")
    return found


def multi(
    inventory: Path = DEFAULT_INVENTORY,
    keep: bool = False,
    start: str = "up",
    figures: dict[str, Figure] | None = None,
    stop: str = STEPS[-1],
) -> dict[str, Figure]:
    """The cycle; START other than "up" resumes a kept lab at that step (nothing removed first), STOP
    is the last step run.

    FIGURES (filled as each step ends) keeps the steps that passed when a later one fails."""
    for step in (start, stop):
        if step not in STEPS:
            raise CycleError(f"no step {step!r}: one of {', '.join(STEPS)}")
    if STEPS.index(stop) < STEPS.index(start):
        raise CycleError(f"--to {stop} comes before --from {start}")
    lab = load(inventory)
    name = inventory.relative_to(ROOT) if inventory.is_relative_to(ROOT) else inventory
    todo = STEPS[STEPS.index(start) : STEPS.index(stop) + 1]
    verify = [*MAKE, "verify", f"INVENTORY={name}"]
    figures = {} if figures is None else figures
    with control.lock(lab):
        if start == "up":
            control.down(lab)  # fresh hosts: nothing left from an earlier run
        elif not control.status(lab):
            raise CycleError(f"--from {start} needs the kept lab {lab.name}, and none runs")
        try:
            if "up" in todo:
                figures["lab up"] = _figure(control.up(lab)["total"])
            if "docker" in todo and "site" not in todo:
                seconds, _ = _playbook(name, "docker.yml", "images to the lab registry")
                figures[DOCKER_STEP] = _figure(seconds)
            if "site" in todo:
                clock = LayerClock()
                seconds, _ = _playbook(name, "site.yml", "deploy (its first layer: docker.yml)", clock.line)
                if "docker" in todo:
                    if clock.figure is None:
                        raise CycleError("site.yml ran no play after its docker layer")
                    figures[DOCKER_STEP] = clock.figure
                    seconds -= clock.figure[0]
                figures[SITE_STEP] = _figure(seconds)
            if "rotate" in todo:
                rotate = [*MAKE, "rotate", "WHAT=ca", f"INVENTORY={name}"]
                seconds, _ = _run(rotate, "rotate the internal CA")
                figures["make rotate WHAT=ca (certificates re-signed, restarts)"] = _figure(seconds)
            if "verify" in todo:
                seconds, _ = _run(verify, "verify")
                figures["make verify after the rotation"] = _figure(seconds)
                # The one screen an operator reads first, across the hosts: every host's containers, the
                # alerts on the monitoring host and the public certificate must each be read (no UNKNOWN),
                # and no container down. An alert firing is not a failure here: a loaded CI machine may
                # fire HostCpuSaturated.
                status = [*MAKE, "status", f"INVENTORY={name}"]
                seconds, output = _run(status, "status (read-only, every host)")
                problems = status_problems(output)
                if problems:
                    raise CycleError(f"make status could not read or found down: {'; '.join(problems)}")
                figures[STATUS_STEP] = _figure(seconds)
            if "again" in todo:
                seconds, output, hosts = _playbook_output(name, "site.yml", "second run (changed=0 expected)")
                changed = {host: counts["changed"] for host, counts in hosts.items() if counts["changed"]}
                if changed:
                    tasks = "; ".join(f"{host}: {task}" for task, host in changed_tasks(output))
                    raise CycleError(
                        f"the second site.yml run changed {changed} ({tasks or 'no task named'})"
                    )
                figures[AGAIN_STEP] = _figure(seconds)
            if "drill" in todo:
                # `make drill INVENTORY=<inventory>` (tests/infra/test_drill_hosts.py): the ERP's alerts from
                # every ERP host (lab/drill_erp_alerts.py), Rocket.Chat down and back
                # (lab/drill_rocketchat.py), then the host loss (lab/drill_host_loss.py)
                # beside three host faults (lab/drill_host_faults.py). Each drill adds its timings to the
                # lab's state; the host loss's each with the highest load average sampled during it.
                (lab.state_dir / DRILL_FIGURES).unlink(missing_ok=True)
                drill_report(inventory).unlink(missing_ok=True)
                drill = [*MAKE, "drill", f"INVENTORY={name}"]
                try:
                    _run(drill, "drill (ERP alerts, Rocket.Chat down, host faults beside the host loss)")
                finally:
                    _show_report(drill_report(inventory))
                    figures.update(drill_figures(lab))
            if "upgrade" in todo:
                print("lab multi: upgrade: make upgrade and make rollback under load (lab/drill_upgrade.py)")
                figures.update(drill_upgrade.run(lab, str(name)))
        finally:
            if not keep:
                mark = time.monotonic()
                control.down(lab)
                figures["lab down"] = _figure(time.monotonic() - mark)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.multi", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-i", "--inventory", type=Path, default=DEFAULT_INVENTORY, help="default: inventory/lab"
    )
    parser.add_argument("--keep", action="store_true", help="leave the lab running at the end")
    parser.add_argument(
        "--from",
        dest="start",
        choices=STEPS,
        default="up",
        help="resume a kept lab at this step (default up: a fresh lab)",
    )
    parser.add_argument(
        "--to",
        dest="stop",
        choices=STEPS,
        default=STEPS[-1],
        help=f"end after this step (default {STEPS[-1]})",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    figures: dict[str, Figure] = {}
    try:
        multi(args.inventory.resolve(), keep=args.keep, start=args.start, figures=figures, stop=args.stop)
    except (
        LabConfigError,
        docker.DockerError,
        CycleError,
        RemoteError,
        OSError,
        subprocess.SubprocessError,
    ) as exc:
        lines = [f"lab cycle multi: FAILED after {time.monotonic() - started:.0f} s: {exc}"]
        report("\n".join(lines + summary(figures)), sys.stderr)
        return 1
    lines = [f"lab cycle multi: passed in {time.monotonic() - started:.0f} s"]
    lines += summary(figures)
    report("\n".join(lines), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
