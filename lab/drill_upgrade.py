"""Rolling upgrade and rollback of the multi-host lab under load (issue 11): the step `upgrade` of
`python -m lab.multi` (or `--from upgrade` on a kept lab of inventory/lab).

1. A new release in the lab registry, made on this machine without touching the working tree: the ERP,
   bot, proxy and Rocket.Chat (simulator) images re-built on top of the ones the lab runs with one more
   label (new image ids; the simulator's knows one more database migration, SIM_MIGRATION_VERSION),
   every other project image re-tagged, all pushed as <registry>/photomatrix/<name>:pmxup;
2. the host-loss drill's request loop from this machine to the public name (GET /activate/style.css, an
   ERP path of the proxy, RATE/s, verified against the stack's CA), each request counted in the play of
   upgrade.yml / rollback.yml that was under way when it started;
3. `make upgrade INVENTORY=<inventory> UPGRADE_ARGS="-e container_images_tag=pmxup -e
   container_images_build=false"`: preflight and a verified backup on every host, every host pulls its
   new references, then Rocket.Chat (its one instance re-created: it migrates its database as it
   starts), the ERP hosts one at a time (each ERP container stopped gracefully while the proxy sends
   its requests to the other host), the bot, the proxy, the exporters, monitoring. It must pass, the ERP
   containers and Rocket.Chat must run the new images, and no request may fail, whatever play was under
   way, but for the proxy's swap (its new nginx starts beside the running one): there no connection may
   be refused or go unanswered, HTTP errors are printed (JUDGED, CONNECTION_JUDGED). A second loop asks
   Rocket.Chat (GET /livez through the proxy): it may fail only in Rocket.Chat's own plays, its window
   is printed;
4. `make rollback INVENTORY=<inventory>`: the recorded previous images on every host again, under the
   same rule; Rocket.Chat's database, migrated by the new release, RESTORED from the pre-upgrade backup
   before the previous Rocket.Chat starts.

Prints each phase's requests, failures and time; lab.multi logs the timings. The single-host drill
(tests/infra/test_drill_upgrade.py) judges the same phases.
"""

from __future__ import annotations

import os
import subprocess  # nosec B404
import threading
import time
from dataclasses import dataclass, field

from lab import drill_host_loss as host_loss
from lab import remote
from lab.cycle import CycleError
from lab.topology import ROOT, Lab, ansible_inventory

TAG = "pmxup"
LABEL = "org.photomatrix.drill-release"
# Repositories of the project's images (playbooks/group_vars/all/images.yml): these get new ids.
REBUILT = ("erp-api", "chatbot", "nginx", "rocketchat-sim")
RETAGGED = ("prometheus", "alertmanager", "node-exporter", "blackbox-exporter", "redis", "postgresql")
RETAGGED += ("nats",)
RATE = 4.0
MAKE_TIMEOUT = 1800
DOCKER = "/usr/bin/docker"
ERP = "photomatrix-erp-api"
RC = "photomatrix-rocketchat"
# The plays of upgrade.yml / rollback.yml (by the start of their names) → the phase of the load.
PHASES = {
    "Rocket.Chat instances": "rocketchat",
    "ERP API": "erp",
    "Onboarding bot": "bot",
    "Rocket.Chat's TLS sidecars": "sidecar",
    "TLS proxy": "proxy",
    "Exporters": "exporters",
    "Monitoring": "monitoring",
}
# No request may fail in these: the ERP and the bot roll replicas behind the proxy's upstream, the rest
# (Rocket.Chat and its TLS sidecars included: the loop's ERP path does not pass them) is off the request path.
JUDGED = ("prepare", "rocketchat", "erp", "bot", "sidecar", "exporters", "monitoring", "finish")
# Rocket.Chat through the proxy (GET /livez, a second loop): one instance in the lab, so it is down while it
# is re-created in its own play (with the rollback's restore of its database); its TLS sidecar, which runs
# the proxy's nginx image, is re-created in that same window (roles/rocketchat, roll_instance.yml), so the
# sidecars' play finds it current and no request may fail there, nor in any other phase. Its window is
# printed.
RC_PATH = "/livez"
RC_RATE = 2.0
RC_OWN = ("rocketchat",)
RC_JUDGED = tuple(phase for phase in JUDGED if phase not in RC_OWN)
# The simulator's release image knows one more database migration (rocketchat_sim.config,
# SIM_MIGRATION_VERSION): its first start migrates Rocket.Chat's database, so make rollback must restore it.
RC_REPOSITORY = "rocketchat-sim"
# While the proxy swaps its nginx (roles/tls_proxy, swap.yml: the next one beside the running one) no
# connection may be refused, reset or go unanswered; an HTTP error status is counted and printed: the
# new nginx's first upstream connections are cold (40 of 601 got a 502 in one CI run at load ~20, 0 the
# other way; presumably their TLS handshakes to the ERP outlasting the 2 s connect timeout).
CONNECTION_JUDGED = ("proxy",)


class UpgradeDrillError(CycleError):
    """The upgrade drill could not run, or the stack did not do what it must."""


@dataclass
class Phases:
    """(start time, name) of each phase, in order; a request belongs to the last phase started before it."""

    marks: list[tuple[float, str]] = field(default_factory=list)

    def enter(self, name: str, when: float | None = None) -> None:
        self.marks.append((time.time() if when is None else when, name))

    def of(self, started: float) -> str:
        name = "before"
        for when, phase in self.marks:
            if when > started:
                break
            name = phase
        return name

    def table(self, samples: list[host_loss.Sample], end: float) -> dict[str, dict]:
        """{phase: {seconds, sent, failed: [samples]}} in the order the phases came."""
        rows: dict[str, dict] = {}
        bounds = [*self.marks[1:], (end, "")]
        for (when, name), (until, _) in zip(self.marks, bounds, strict=True):
            row = rows.setdefault(name, {"seconds": 0.0, "sent": 0, "failed": []})
            row["seconds"] += max(0.0, until - when)
        for sample in samples:
            row = rows.setdefault(self.of(sample.started), {"seconds": 0.0, "sent": 0, "failed": []})
            row["sent"] += 1
            if not sample.ok:
                row["failed"].append(sample)
        return rows


def play_phase(target: str, play: str, seen_layer: bool) -> str:
    """The phase a play of `make TARGET` starts: `<target> <layer>`, or prepare/finish around them."""
    layer = next((phase for prefix, phase in PHASES.items() if play.startswith(prefix)), None)
    if layer:
        return f"{target} {layer}"
    return f"{target} {'finish' if seen_layer else 'prepare'}"


@dataclass
class PlayMarker:
    """Reads a playbook's output line by line (`make TARGET` or ansible-playbook): each play it starts
    enters its phase (play_phase) in PHASES."""

    target: str
    phases: Phases
    seen_layer: bool = False

    def __call__(self, line: str) -> None:
        if line.startswith("PLAY [") and not line.startswith("PLAY RECAP"):
            play = line[len("PLAY [") :].split("]", 1)[0]
            phase = play_phase(self.target, play, self.seen_layer)
            self.seen_layer = self.seen_layer or phase.split()[-1] in PHASES.values()
            self.phases.enter(phase)


def judge(rows: dict[str, dict], judged: tuple[str, ...] = JUDGED) -> list[str]:
    """Problems: a failed request in a judged phase, or a judged phase that no request saw."""
    problems = []
    for name, row in rows.items():
        layer = name.split()[-1]
        if layer not in judged and layer not in CONNECTION_JUDGED:
            continue
        failed = row["failed"] if layer in judged else [s for s in row["failed"] if s.status is None]
        if failed:
            kinds = sorted({str(s.status) if s.status is not None else s.error.split(":")[0] for s in failed})
            what = "requests failed" if layer in judged else "requests got no HTTP answer"
            problems.append(f"{name}: {len(failed)} of {row['sent']} {what} ({', '.join(kinds)})")
        elif row["sent"] == 0 and row["seconds"] >= 1:
            problems.append(f"{name}: no request was sent in this phase ({row['seconds']:.0f} s)")
    return problems


def proxy_errors(lab: Lab, hosts: list[str], lines: int = 30) -> list[str]:
    """The last warnings and errors of the proxy's nginx on the first proxy host (empty when unreadable):
    read after the upgrade, before the rollback's swap removes that container."""
    if not hosts:
        return []
    command = (
        f"sudo {DOCKER} logs photomatrix-proxy 2>&1 | grep -E '\\[(warn|error|crit|alert|emerg)\\]' "
        f"| tail -n {int(lines)} || true"
    )
    try:
        return remote.capture(lab, hosts[0], command, timeout=60).splitlines()
    except remote.RemoteError as exc:
        return [f"(not read: {exc})"]


def _docker(*args: str, stdin: str | None = None, timeout: float = 600) -> str:
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603
            [DOCKER, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise UpgradeDrillError(f"docker {args[0]} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise UpgradeDrillError(f"docker {' '.join(args[:2])} failed: {result.stderr.strip()[-600:]}")
    return result.stdout.strip()


def new_release(lab: Lab, current: str) -> dict[str, str]:
    """Push the `pmxup` release to the lab registry; returns {repository: new image id} of the re-built."""
    prefix = f"{lab.registry}/photomatrix"
    token = f"{int(time.time())}"
    built = {}
    for repository in (*REBUILT, *RETAGGED):
        source = f"{prefix}/{repository}:{current}"
        target = f"{prefix}/{repository}:{TAG}"
        try:
            _docker("image", "inspect", "--format", "{{.Id}}", source, timeout=60)
        except UpgradeDrillError as exc:
            if repository in REBUILT:
                raise UpgradeDrillError(f"{source} is not on this machine: deploy the lab first") from exc
            continue  # not part of this lab (Redis runs only with bot replicas)
        if repository in REBUILT:
            dockerfile = f"FROM {source}\nLABEL {LABEL}={token}\n"
            if repository == RC_REPOSITORY:
                dockerfile += f"ENV SIM_MIGRATION_VERSION={migration_version(source) + 1}\n"
            _docker("build", "--network", "none", "--tag", target, "-", stdin=dockerfile)
            built[repository] = _docker("image", "inspect", "--format", "{{.Id}}", target, timeout=60)
        else:
            _docker("tag", source, target, timeout=60)
        _docker("push", "--quiet", target, timeout=1200)
    return built


def migration_version(image: str) -> int:
    """The last database migration the simulator image knows (its SIM_MIGRATION_VERSION, or the default)."""
    from rocketchat_sim.config import SimSettings

    found = SimSettings.model_fields["SIM_MIGRATION_VERSION"].default
    env = _docker("image", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", image)
    for line in env.split():
        if line.startswith("SIM_MIGRATION_VERSION="):
            found = int(line.split("=", 1)[1])
    return int(found)


def container_images(lab: Lab, hosts: list[str], name: str) -> dict[str, str]:
    """{host/container: image id} of the container NAME and its instances NAME-2, NAME-3, … on HOSTS (not
    NAME-tls, the TLS sidecar)."""
    found = {}
    for host in hosts:
        names = remote.capture(
            lab,
            host,
            f"sudo docker ps --all --format '{{{{.Names}}}}' --filter 'name=^{name}(-[0-9]+)?$'",
            timeout=60,
        ).split()
        for container in names:
            image = remote.capture(
                lab, host, f"sudo docker inspect --format '{{{{.Image}}}}' {container}", timeout=60
            )
            found[f"{host}/{container}"] = image.strip()
    return found


def erp_images(lab: Lab, hosts: list[str]) -> dict[str, str]:
    """{host/container: image id} of every ERP container (the first and its replicas) on HOSTS."""
    found = container_images(lab, hosts, ERP)
    if not found:
        raise UpgradeDrillError(f"no ERP container runs on {', '.join(hosts)}")
    return found


def make(target: str, inventory: str, phases: Phases, *args: str) -> tuple[float, str]:
    """`make TARGET INVENTORY=…`, its output shown and read as it comes: each play starts a phase."""
    argv = ["/usr/bin/make", "--no-print-directory", target, f"INVENTORY={inventory}", *args]
    print(f"lab multi: upgrade drill: {' '.join(argv)}", flush=True)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    started = time.monotonic()
    phases.enter(f"{target} prepare")
    lines: list[str] = []
    marker = PlayMarker(target, phases)
    with subprocess.Popen(  # noqa: S603  # nosec B603
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        timer = threading.Timer(MAKE_TIMEOUT, process.kill)
        timer.start()
        try:
            assert process.stdout is not None  # nosec B101
            for line in process.stdout:
                print(line, end="", flush=True)
                lines.append(line)
                marker(line)
        finally:
            timer.cancel()
        returncode = process.wait(timeout=60)
    phases.enter(f"after {target}")
    if returncode != 0:
        raise UpgradeDrillError(f"make {target} failed (exit code {returncode})")
    return time.monotonic() - started, "".join(lines)


def rocketchat_restored(output: str) -> bool:
    """Whether rollback.yml's output says it restored Rocket.Chat's database (its message, as the callback
    prints it: folded over lines, an apostrophe doubled inside YAML quotes)."""
    said = " ".join(output.replace("''", "'").split())
    return "Rocket.Chat's database had migrated forward (migration version" in said and (
        "RESTORED from the pre-upgrade backup" in said
    )


def rc_own_phases(output: str) -> tuple[str, ...]:
    """Rocket.Chat's own phases in one run of upgrade.yml or rollback.yml, read from its output: its
    instances' play, and its TLS sidecars' play too when the instances' play left Rocket.Chat as it was
    ("already on the recorded images", playbooks/tasks/upgrade_host.yml): the sidecars are then re-created
    alone, in a window of their own (the single-host drill's rollback: its Rocket.Chat image is only
    re-tagged, the proxy's nginx image is new)."""
    said = " ".join(output.replace("''", "'").split())
    left_alone = "(Rocket.Chat): already on the recorded images" in said
    return RC_OWN + (("sidecar",) if left_alone else ())


def rc_window(rows: dict[str, dict]) -> str:
    """Rocket.Chat's failed requests in its own phases: how many, over how long (first to last failure)."""
    spans = []
    for name, row in rows.items():
        failed = row["failed"]
        if name.split()[-1] in RC_OWN and failed:
            span = max(s.started for s in failed) - min(s.started for s in failed)
            spans.append(f"{name}: {len(failed)} failed over {span:.0f} s")
    return "; ".join(spans) or "none failed"


def report(rows: dict[str, dict]) -> list[str]:
    lines = []
    for name, row in rows.items():
        failed = row["failed"]
        kinds = sorted({str(s.status) if s.status is not None else s.error.split(":")[0] for s in failed})
        lines.append(
            f"  {name:<22} {row['seconds']:6.0f} s {row['sent']:6d} requests {len(failed):4d} failed"
            + (f"  ({', '.join(kinds)})" if kinds else "")
        )
    return lines


def forget_release(lab: Lab) -> None:
    """Remove this machine's `pmxup` tags (the lab registry's copies go with the lab)."""
    for repository in (*REBUILT, *RETAGGED):
        subprocess.run(  # noqa: S603  # nosec B603
            [DOCKER, "image", "rm", f"{lab.registry}/photomatrix/{repository}:{TAG}"],
            capture_output=True,
            timeout=120,
            check=False,
        )


def run(lab: Lab, inventory: str) -> dict[str, tuple[float, float]]:
    """The drill on the deployed lab; returns its timings by name for lab.multi's summary: (seconds,
    the 1-minute load average when each ended)."""
    try:
        return _drill(lab, inventory)
    finally:
        forget_release(lab)


def _drill(lab: Lab, inventory: str) -> dict[str, tuple[float, float]]:
    data = ansible_inventory(lab.inventory, UpgradeDrillError)
    stack = host_loss.Stack.of(lab)
    erp_hosts = data.get("erp", {}).get("hosts", [])
    current = str(data["_meta"]["hostvars"][erp_hosts[0]].get("container_images_tag", "current"))
    figures: dict[str, tuple[float, float]] = {}

    mark = time.monotonic()
    built = new_release(lab, current)
    figures[f"upgrade drill: release {TAG} built and pushed"] = (time.monotonic() - mark, os.getloadavg()[0])
    before = erp_images(lab, erp_hosts)
    rc_hosts = data.get("rocketchat", {}).get("hosts", [])
    rc_before = container_images(lab, rc_hosts, RC)
    print(
        f"lab multi: upgrade drill: ERP images before: {before}; new ERP image {built['erp-api']}; "
        f"Rocket.Chat before: {rc_before}, new {built[RC_REPOSITORY]}",
        flush=True,
    )

    phases = Phases()
    loop = host_loss.RequestLoop(stack.domain, stack.context, rate=RATE)
    rc_loop = host_loss.RequestLoop(stack.domain, stack.context, path=RC_PATH, rate=RC_RATE)
    phases.enter("before")
    loop.start()
    rc_loop.start()
    stopped: UpgradeDrillError | None = None
    proxy_log: list[str] = []
    try:
        time.sleep(5)  # a baseline: the stack answers before anything changes
        upgrade_args = f"UPGRADE_ARGS=-e container_images_tag={TAG} -e container_images_build=false"
        seconds, output = make("upgrade", inventory, phases, upgrade_args)
        figures["make upgrade across the hosts, under load"] = (seconds, os.getloadavg()[0])
        said = " ".join(output.split())
        if "MongoDB NOT rolled by this playbook" not in said:
            raise UpgradeDrillError("make upgrade did not say that MongoDB was not rolled (no mongod here)")
        if "make rollback restores its pre-upgrade backup if it has to run" not in said:
            raise UpgradeDrillError("make upgrade did not say that Rocket.Chat's database migrated forward")
        after = erp_images(lab, erp_hosts)
        rc_after = container_images(lab, rc_hosts, RC)
        proxy_log = proxy_errors(lab, data.get("proxy", {}).get("hosts", []))
        seconds, output = make("rollback", inventory, phases)
        figures["make rollback across the hosts, under load"] = (seconds, os.getloadavg()[0])
        time.sleep(5)
    except UpgradeDrillError as exc:
        stopped = exc
    finally:
        samples = loop.stop()
        rc_samples = rc_loop.stop()
    # What the load saw, printed also when a run stopped (until then).
    rows = phases.table(samples, time.time())
    failed = sum(len(row["failed"]) for row in rows.values())
    print(
        f"lab multi: upgrade drill: {len(samples)} requests through {stack.domain}, {failed} failed:",
        flush=True,
    )
    print("\n".join(report(rows)), flush=True)
    answered_errors = any(
        sample.status is not None
        for name, row in rows.items()
        if name.split()[-1] in CONNECTION_JUDGED
        for sample in row["failed"]
    )
    if answered_errors and proxy_log:
        # What the new nginx said while it answered with an error (its log ends with the rollback's swap).
        print("lab multi: upgrade drill: the upgraded proxy's warnings and errors:", flush=True)
        print("\n".join(f"  {line}" for line in proxy_log), flush=True)
    rc_rows = phases.table(rc_samples, time.time())
    rc_failed = sum(len(row["failed"]) for row in rc_rows.values())
    print(
        f"lab multi: upgrade drill: Rocket.Chat ({RC_PATH}): {len(rc_samples)} requests, {rc_failed} failed "
        f"(down while its one instance is re-created; its window: {rc_window(rc_rows)}):",
        flush=True,
    )
    print("\n".join(report(rc_rows)), flush=True)
    if stopped is not None:
        raise stopped
    restored = erp_images(lab, erp_hosts)
    rc_restored = container_images(lab, rc_hosts, RC)

    problems = judge(rows) + [f"Rocket.Chat: {p}" for p in judge(rc_rows, RC_JUDGED)]
    rc_stale = {name: image for name, image in rc_after.items() if image != built[RC_REPOSITORY]}
    if not rc_after or rc_stale:
        problems.append(f"after the upgrade Rocket.Chat does not run the new image: {rc_after}")
    if rc_restored != rc_before:
        problems.append(f"after the rollback Rocket.Chat runs {rc_restored}, not {rc_before}")
    if not rocketchat_restored(output):
        problems.append("make rollback did not restore Rocket.Chat's database (the new release migrated it)")
    stale = {name: image for name, image in after.items() if image != built["erp-api"]}
    if stale:
        problems.append(f"after the upgrade these ERP containers do not run the new image: {stale}")
    if restored != before:
        problems.append(f"after the rollback the ERP images are {restored}, not {before}")
    if "not restored" not in " ".join(output.split()):
        problems.append("make rollback did not say whether the database was restored")
    if problems:
        raise UpgradeDrillError("upgrade drill: " + "; ".join(problems))
    print(
        f"lab multi: upgrade drill: passed ({len(samples)} requests, {failed} failed, none while the ERP "
        "or the bot rolled)"
    )
    return figures
