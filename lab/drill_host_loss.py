"""Failure drill of the multi-host lab (issue 11): host loss of an ERP host.

`python -m lab.multi --from drill --to drill` (a kept lab of inventory/lab) or the step `drill` of a
whole cycle:

1. a steady request loop from this machine to the public name (HTTPS verified against the stack's CA)
   on an ERP path of the proxy with no rate limit, GET /activate/style.css: RATE requests/s, each one's
   start, end and outcome recorded;
2. the lab host of the first `erp` host (erp1) is killed (`docker kill pmlab-erp1`: its engine, sshd and
   the ERP container die with it, nothing is stopped cleanly); the proxy must route around it: no request
   that started after the proxy's detection fails (DETECTION below);
3. Prometheus on the monitoring host sees the ERP target down and TargetDown (monitoring/rules/targets.yml,
   `for: 5m`; inventory/lab sets 1m with monitoring_alert_for, and the drill reads the deployed rule's wait
   from Prometheus and names it in its figures) reaches the admins group through Alertmanager and the
   bot; read there with the stack's admin account through Rocket.Chat's REST API (the simulator in the lab);
4. the host is started again: its engine restarts the stack's containers (restart policy), the ERP is
   healthy, the Prometheus target up, the loop's requests reach it again through the proxy (its request
   counter for the stylesheet route), its host firewall's rules are the deployed ones again (the lab
   host's init applies them at boot, as photomatrix-firewall.service does on a server), its cron daemon
   runs again (backups, container metrics: the lab host's init starts it, as systemd starts an enabled
   cron.service), and the resolved
   notification reaches the admins group.

DETECTION: nginx marks a server failed on the first attempt that errors or times out
(tls_proxy_erp_max_fails: 1, tls_proxy_erp_connect_timeout: 2 s) and passes the request to the other
replica (proxy_next_upstream). The drill takes the proxy's detection to be the end of the first request,
among those that ended after the kill, that failed or took at least SLOW_SECONDS (the connect timeout: the
proxy waited for the lost host); without such a request, the kill itself. Failures before it are reported
(count, time span); any failure of a request started after it fails the drill.

What it did, what it observed and the timings are printed; lab.multi logs the timings as its steps.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import shlex
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lab import docker, remote
from lab.cycle import CycleError
from lab.cycle import report as cycle_report
from lab.topology import Lab, ansible_inventory
from ops.scripts import wait_healthy

PATH = "/activate/style.css"  # an ERP path of the proxy without a rate limit (nginx.conf.j2)
ROUTE = "/activate/style.css"  # the ERP's route label for it (erp_http_requests_total)
RATE = 4.0  # requests per second
REQUEST_TIMEOUT = 30.0
WORKERS = 8
SLOW_SECONDS = 2.0  # tls_proxy_erp_connect_timeout: a request this slow waited for the lost host
BASELINE_SECONDS = 15.0
ERP_PORT = 8000
ALERT = "TargetDown"
# TargetDown's `for:` (5m at most: the production rule) plus scrape (15 s), evaluation (15 s), group_wait
# (10 s) and the bot's post, with room for a loaded machine.
ALERT_TIMEOUT = 15 * 60.0
REJOIN_TIMEOUT = 10 * 60.0
# A resolved notification waits for Alertmanager's next group_interval after the firing one (5 m by
# default, 1 m in inventory/lab).
RESOLVED_TIMEOUT = 12 * 60.0
POLL_SECONDS = 10.0
PROMETHEUS = "photomatrix-prometheus"
ERP_CONTAINER = "photomatrix-erp-api"
ADMIN_USER = "admin"
ADMIN_SECRET_PATH = "/srv/photomatrix/secrets/rocketchat/admin_password"  # noqa: S105  # nosec B105
ADMINS_GROUP = "admins"
FIREWALL_SCRIPT = "/usr/local/sbin/photomatrix-firewall"
# The bot's alert lines (bot/i18n: en, ru): "• FIRING [critical] *TargetDown*: …".
LINE_STATUS = {"FIRING": "firing", "АКТИВНО": "firing", "resolved": "resolved", "снято": "resolved"}


class DrillError(CycleError):
    """The drill could not run, or the stack did not do what it must."""


# ---------------------------------------------------------------------------------------- judging
@dataclass(frozen=True)
class Sample:
    """One request of the loop: wall-clock start and end, HTTP status (None: no answer) and error."""

    started: float
    ended: float
    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def describe(self, origin: float) -> str:
        outcome = str(self.status) if self.status is not None else self.error or "no answer"
        return f"+{self.started - origin:.1f} s: {outcome} after {self.seconds:.1f} s"


@dataclass(frozen=True)
class Judgement:
    total: int
    baseline: int
    baseline_failed: list[Sample]
    detected_at: float
    detected_by: Sample | None
    failed_before: list[Sample]  # ended after the kill, started before the detection
    failed_after: list[Sample]  # started at or after the detection: must be none
    slow_after: list[Sample]  # answered, but waited for the lost host (the proxy trying it again)
    longest: float

    @property
    def passed(self) -> bool:
        return not self.failed_after and not self.baseline_failed


def judge(samples: Iterable[Sample], killed_at: float, slow: float = SLOW_SECONDS) -> Judgement:
    """The loop's requests against the kill at KILLED_AT (module docstring, DETECTION)."""
    ordered = sorted(samples, key=lambda s: s.started)
    baseline = [s for s in ordered if s.ended < killed_at]
    after_kill = sorted((s for s in ordered if s.ended >= killed_at), key=lambda s: s.ended)
    first = next((s for s in after_kill if not s.ok or s.seconds >= slow), None)
    detected_at = first.ended if first is not None else killed_at
    return Judgement(
        total=len(ordered),
        baseline=len(baseline),
        baseline_failed=[s for s in baseline if not s.ok],
        detected_at=detected_at,
        detected_by=first,
        failed_before=[s for s in after_kill if not s.ok and s.started < detected_at],
        failed_after=[s for s in ordered if not s.ok and s.started >= detected_at],
        slow_after=[s for s in ordered if s.ok and s.started >= detected_at and s.seconds >= slow],
        longest=max((s.seconds for s in ordered), default=0.0),
    )


def span(samples: list[Sample], origin: float) -> str:
    """'N failed, +a s to +b s after the kill' or 'none'."""
    if not samples:
        return "none"
    first, last = min(s.started for s in samples), max(s.ended for s in samples)
    kinds = sorted({str(s.status) if s.status is not None else s.error.split(":")[0] for s in samples})
    after = f"+{first - origin:.1f} s to +{last - origin:.1f} s after the kill"
    return f"{len(samples)} ({', '.join(kinds)}), {after}"


def parse_ts(value: str) -> float:
    """Rocket.Chat's message time (ISO 8601, `Z` or an offset) as a Unix time."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def alert_events(messages: Iterable[dict[str, Any]], alertname: str, needle: str) -> list[tuple[float, str]]:
    """(time, "firing" | "resolved") of each line of the bot's alert messages naming ALERTNAME and
    NEEDLE (the target's instance, which the rule's summary names), oldest first."""
    events = []
    for message in messages:
        text, ts = message.get("msg") or "", message.get("ts")
        if not ts:
            continue
        for line in text.splitlines():
            words = line.split()
            if len(words) < 2 or words[0] != "•" or f"*{alertname}*" not in line or needle not in line:
                continue
            status = LINE_STATUS.get(words[1])
            if status:
                events.append((parse_ts(ts if isinstance(ts, str) else ts.get("$date", "")), status))
    return sorted(events)


def first_event(events: list[tuple[float, str]], status: str, after: float) -> float | None:
    return next((when for when, seen in events if seen == status and when >= after), None)


def episode(events: list[tuple[float, str]], since: float) -> tuple[float | None, float | None]:
    """(firing, resolved) of the first episode that fired at or after SINCE: its resolution is the first
    one after that firing. A resolved line posted between SINCE and the firing belongs to an earlier
    episode, its notification held back (Alertmanager retries while the bot or Rocket.Chat cannot take it:
    seen in CI on 2026-12-07, 16 s after the kill, right after the Rocket.Chat drill)."""
    firing = first_event(events, "firing", since)
    return firing, first_event(events, "resolved", firing) if firing is not None else None


def vector_value(result: list[dict[str, Any]]) -> float | None:
    """The value of a one-element instant vector (Prometheus /api/v1/query), None when empty."""
    if not result:
        return None
    return float(result[0]["value"][1])


# ---------------------------------------------------------------------------------------- the loop
class RequestLoop:
    """GET https://NAME/PATH RATE times a second (each on a new connection, a few at once at most),
    every outcome recorded."""

    def __init__(self, name: str, context: ssl.SSLContext, path: str = PATH, rate: float = RATE) -> None:
        self.name, self.context, self.path, self.interval = name, context, path, 1.0 / rate
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="drill-request")
        self._ticker = threading.Thread(target=self._tick, name="drill-ticker", daemon=True)

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._ticker.join(timeout=10)
        self._pool.shutdown(wait=True)
        with self._lock:
            return sorted(self.samples, key=lambda s: s.started)

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._pool.submit(self._one)

    def _one(self) -> None:
        started = time.time()
        status: int | None = None
        error = ""
        connection = http.client.HTTPSConnection(
            self.name, 443, timeout=REQUEST_TIMEOUT, context=self.context
        )
        try:
            connection.request("GET", self.path, headers={"User-Agent": "pmlab-drill-host-loss"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            connection.close()
        with self._lock:
            self.samples.append(Sample(started, time.time(), status, error))


# ---------------------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    """What the drill reaches: the lost host, the monitoring and chat hosts, the public name."""

    lab: Lab
    victim: str
    survivors: list[str]
    mon: str
    chat: str
    domain: str
    context: ssl.SSLContext
    _token: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, lab: Lab) -> Stack:
        data = ansible_inventory(lab.inventory, DrillError)
        erp = data.get("erp", {}).get("hosts", [])
        mon = data.get("monitoring", {}).get("hosts", [])
        chat = data.get("rocketchat", {}).get("hosts", [])
        if len(erp) < 2 or not mon or not chat:
            raise DrillError("the host-loss drill needs two erp hosts, a monitoring and a rocketchat host")
        hostvars = data["_meta"]["hostvars"][erp[0]]
        domain = str(hostvars.get("photomatrix_domain", ""))
        ca = lab.state_dir / "secrets" / "ca.crt"
        if not domain or not ca.is_file():
            raise DrillError(f"no public name or no CA ({ca}): deploy first (site.yml)")
        context = ssl.create_default_context(cafile=str(ca))
        return cls(lab, erp[0], erp[1:], mon[0], chat[0], domain, context)

    def instance(self, host: str) -> str:
        return f"{self.lab.hosts[host]}:{ERP_PORT}"

    # Prometheus, from inside its container on the monitoring host (nothing of it is published).
    def _prometheus(self, path: str, params: dict[str, str]) -> Any:
        url = f"http://127.0.0.1:9090/api/v1/{path}?" + urllib.parse.urlencode(params)
        code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
        command = f"sudo docker exec {PROMETHEUS} python3 -c {shlex.quote(code)}"
        body = json.loads(remote.capture(self.lab, self.mon, command, timeout=90))
        if body.get("status") != "success":
            raise DrillError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self._prometheus("query", {"query": promql})["result"]

    def alert_wait(self, name: str = ALERT) -> str:
        """The deployed rule's `for:` of the alert NAME, as Prometheus reports it ("1m", "5m", "90s")."""
        groups = self._prometheus("rules", {"type": "alert"})["groups"]
        durations = [r.get("duration", 0) for g in groups for r in g["rules"] if r.get("name") == name]
        if not durations:
            raise DrillError(f"Prometheus has no alert rule {name}")
        return duration_text(durations[0])

    def up(self, host: str) -> float | None:
        return vector_value(self.query(f'up{{job="erp-api",instance="{self.instance(host)}"}}'))

    def alert_state(self, host: str) -> str:
        result = self.query(f'ALERTS{{alertname="{ALERT}",instance="{self.instance(host)}"}}')
        return result[0]["metric"].get("alertstate", "") if result else ""

    def served(self, host: str) -> float | None:
        promql = f'sum(erp_http_requests_total{{instance="{self.instance(host)}",route="{ROUTE}"}})'
        return vector_value(self.query(promql))

    # Rocket.Chat (the simulator in the lab) through the public name, as the stack's admin.
    def _rest(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> Any:
        connection = http.client.HTTPSConnection(self.domain, 443, timeout=30, context=self.context)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        if response.status == 429:
            return None  # Rocket.Chat's limiter: the next poll tries again
        if response.status != 200:
            raise DrillError(f"{method} {path}: {response.status} {text[:300]}")
        return json.loads(text)

    def admin_password(self) -> str:
        """The stack's Rocket.Chat admin password, read on the chat host into this process only."""
        return remote.capture(self.lab, self.chat, f"sudo cat {ADMIN_SECRET_PATH}").strip()

    def login(self) -> None:
        answer = self._rest("POST", "/api/v1/login", {"user": ADMIN_USER, "password": self.admin_password()})
        if not answer or answer.get("status") != "success":
            raise DrillError(f"cannot log in to Rocket.Chat as {ADMIN_USER}")
        self._token = {"X-User-Id": answer["data"]["userId"], "X-Auth-Token": answer["data"]["authToken"]}

    def admins_messages(self) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"roomName": ADMINS_GROUP, "count": 100})
        answer = self._rest("GET", f"/api/v1/groups.history?{query}", headers=self._token)
        return answer["messages"] if answer else []

    def host_running(self, host: str) -> bool:
        info = docker.inspect("container", self.lab.container(host)) or {}
        return bool(info.get("State", {}).get("Running"))

    def erp_health(self, host: str) -> str:
        """Docker's verdict on the ERP container; while it has none yet ("starting": Docker's first check
        is one interval after the start, 120 s in inventory/lab), "healthy" when the container's own
        check, run now as Docker runs it, exits 0 (as a deploy's wait judges it: roles/common)."""
        inspect = f"sudo docker inspect --format '{{{{.State.Health.Status}}}}' {ERP_CONTAINER}"
        config = f"sudo docker inspect --format '{{{{json .Config}}}}' {ERP_CONTAINER}"
        try:
            status = remote.capture(self.lab, host, inspect, timeout=30).strip()
            if status != "starting":
                return status
            check = wait_healthy().check_argv(json.loads(remote.capture(self.lab, host, config, timeout=30)))
            if not check:
                return status
            run = f"sudo timeout 20 docker exec {ERP_CONTAINER} {shlex.join(check)}"
            passed = remote.capture(self.lab, host, f"{run} >/dev/null 2>&1 && echo ok || true", timeout=30)
            return "healthy" if passed.strip() == "ok" else status
        except (remote.RemoteError, json.JSONDecodeError):
            return "unreachable"

    def cron(self, host: str) -> str:
        """Whether the host's own cron daemon runs (backups, container metrics): counted in the host's
        PID namespace only, as roles/common cron_daemon counts it."""
        command = (
            "sudo sh -c 'pgrep --exact --ns $$ --nslist pid cron >/dev/null' && echo running || echo stopped"
        )
        return remote.capture(self.lab, host, command, timeout=60).strip()

    def firewall(self, host: str) -> str:
        command = f"sudo {FIREWALL_SCRIPT} check >/dev/null 2>&1; echo $?"
        code = remote.capture(self.lab, host, command, timeout=60).strip()
        return {"0": "as deployed", "1": "differ from the deployed ones"}.get(code, f"check exit code {code}")


# ---------------------------------------------------------------------------------------- the drill
def _log(message: str) -> None:
    print(f"drill host-loss: {time.strftime('%H:%M:%S')} {message}", flush=True)


# (Unix time, 1-minute load average) at each poll: the figures are comparable only with the load beside them.
LOADS: list[tuple[float, float]] = []


def peak_load(loads: list[tuple[float, float]], start: float, end: float) -> float:
    """The highest load average sampled from START to END (0.0 when none was)."""
    return max((load for when, load in loads if start <= when <= end), default=0.0)


def _wait(what: str, probe: Callable[[], Any], timeout: float, started: float) -> float:
    """Poll PROBE until it returns something truthy; returns the Unix time it did."""
    deadline = time.monotonic() + timeout
    while True:
        LOADS.append((time.time(), os.getloadavg()[0]))
        try:
            if probe():
                now = time.time()
                _log(f"{what}: after {now - started:.0f} s")
                return now
        except (remote.RemoteError, OSError, ValueError, KeyError) as exc:
            _log(f"{what}: not yet ({type(exc).__name__}: {str(exc)[:120]})")
        if time.monotonic() > deadline:
            raise DrillError(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


@dataclass
class Timeline:
    loop_started: float = 0.0
    killed: float = 0.0
    target_down: float | None = None
    alert_firing: float | None = None
    alert_in_admins: float | None = None
    alert_line: str = ""
    started: float = 0.0
    erp_healthy: float | None = None
    target_up: float | None = None
    serving: float | None = None
    resolved_in_admins: float | None = None
    loop_stopped: float = 0.0
    firewall: str = ""
    cron: str = ""


def _admins_event(stack: Stack, status: str, since: float) -> float | None:
    """When the admins group got the firing or the resolved line of the episode that fired since SINCE."""
    firing, resolved = episode(
        alert_events(stack.admins_messages(), ALERT, stack.instance(stack.victim)), since
    )
    return firing if status == "firing" else resolved


def run(lab: Lab) -> dict[str, tuple[float, float]]:
    """The drill on the kept lab; returns its timings by name, for lab.multi's summary: (seconds, the
    highest 1-minute load average sampled meanwhile)."""
    stack = Stack.of(lab)
    victim, container = stack.victim, lab.container(stack.victim)
    _log(
        f"lost host {victim} ({container}), serving replica(s) {', '.join(stack.survivors)}; "
        f"monitoring {stack.mon}; admins group on {stack.chat}"
    )
    if not stack.host_running(victim):
        raise DrillError(f"{container} is not running: the drill needs the whole lab")
    for host in [victim, *stack.survivors]:
        if stack.up(host) != 1:
            raise DrillError(f"the ERP target {stack.instance(host)} is not up before the drill")
    if stack.alert_state(victim):
        raise DrillError(f"{ALERT} for {stack.instance(victim)} is already {stack.alert_state(victim)}")
    wait = stack.alert_wait()
    _log(f"{ALERT} fires after {wait} down (the deployed rule's for:)")
    stack.login()
    line = Timeline()
    loop = RequestLoop(stack.domain, stack.context)
    line.loop_started = time.time()
    loop.start()
    _log(f"request loop: GET https://{stack.domain}{PATH}, {RATE:.0f}/s, from this machine")
    killed = False
    LOADS.clear()
    try:
        time.sleep(BASELINE_SECONDS)
        bad = [s for s in loop.snapshot() if not s.ok]
        if bad:
            raise DrillError(f"requests failed before the host was lost: {bad[:3]}")
        line.killed = time.time()
        LOADS.append((line.killed, os.getloadavg()[0]))
        docker.run(["kill", container], timeout=120)
        killed = True
        _log(f"docker kill {container} (the host: its engine, sshd and ERP container with it)")
        t0 = line.killed
        line.target_down = _wait(
            f"Prometheus: {stack.instance(victim)} down", lambda: stack.up(victim) == 0, ALERT_TIMEOUT, t0
        )
        line.alert_firing = _wait(
            f"Prometheus: {ALERT} firing", lambda: stack.alert_state(victim) == "firing", ALERT_TIMEOUT, t0
        )
        line.alert_in_admins = _wait(
            f"admins group: {ALERT} firing", lambda: _admins_event(stack, "firing", t0), ALERT_TIMEOUT, t0
        )
        line.alert_in_admins = _admins_event(stack, "firing", t0) or line.alert_in_admins
        line.alert_line = next(
            (
                m["msg"]
                for m in stack.admins_messages()
                if ALERT in m.get("msg", "") and stack.instance(victim) in m.get("msg", "")
            ),
            "",
        )
        if stack.host_running(victim):
            raise DrillError(f"{container} runs again by itself: the host was not lost for the whole alert")
        line.started = time.time()
        LOADS.append((line.started, os.getloadavg()[0]))
        docker.run(["start", container], timeout=300)
        killed = False
        _log(f"docker start {container}")
        t1 = line.started
        line.erp_healthy = _wait(
            f"{victim}: {ERP_CONTAINER} healthy",
            lambda: stack.erp_health(victim) == "healthy",
            REJOIN_TIMEOUT,
            t1,
        )
        line.target_up = _wait(
            f"Prometheus: {stack.instance(victim)} up", lambda: stack.up(victim) == 1, REJOIN_TIMEOUT, t1
        )
        line.serving = _wait(
            f"{victim} serves the loop's requests through the proxy again",
            lambda: (stack.served(victim) or 0) > 0,
            REJOIN_TIMEOUT,
            t1,
        )
        line.firewall = stack.firewall(victim)
        line.cron = stack.cron(victim)
        line.resolved_in_admins = _wait(
            f"admins group: {ALERT} resolved",
            lambda: _admins_event(stack, "resolved", t0),
            RESOLVED_TIMEOUT,
            t1,
        )
        line.resolved_in_admins = _admins_event(stack, "resolved", t0) or line.resolved_in_admins
    finally:
        line.loop_stopped = time.time()
        samples = loop.stop()
        if killed:
            _log(f"docker start {container} (the drill did not finish)")
            docker.run(["start", container], timeout=300, check=False)
    verdict = judge(samples, line.killed)
    # On the terminal and in the lab cycle log (its own entry; lab.multi logs the timings as its steps).
    cycle_report("\n".join(report(line, verdict, stack)), sys.stdout)
    if not verdict.passed:
        raise DrillError(
            f"{len(verdict.failed_after)} request(s) failed after the proxy's detection, "
            f"{len(verdict.baseline_failed)} before the host was lost"
        )
    if line.alert_in_admins is None or line.serving is None or line.resolved_in_admins is None:
        raise DrillError("the drill ended without the alert, the rejoin or the resolved notification")
    if line.firewall != "as deployed":
        raise DrillError(f"{victim}'s host firewall rules after the restart: {line.firewall}")
    if line.cron != "running":
        raise DrillError(
            f"{victim}'s cron daemon after the restart: {line.cron} (no backup, no container metrics)"
        )
    killed, started, stopped = line.killed, line.started, line.loop_stopped
    return {
        f"drill host loss: {victim} killed → {ALERT} (for {wait}) in the admins group": (
            line.alert_in_admins - killed,
            peak_load(LOADS, killed, line.alert_in_admins),
        ),
        f"drill host loss: {victim} started → serving through the proxy again": (
            line.serving - started,
            peak_load(LOADS, started, line.serving),
        ),
        f"drill host loss: {victim} started → resolved in the admins group": (
            line.resolved_in_admins - started,
            peak_load(LOADS, started, line.resolved_in_admins),
        ),
        f"drill host loss, whole drill (request loop start to stop; {ALERT} for {wait})": (
            stopped - line.loop_started,
            peak_load(LOADS, line.loop_started, stopped),
        ),
    }


def duration_text(seconds: float) -> str:
    """A rule's wait in Prometheus' notation: 300 → "5m", 90 → "90s", 3600 → "1h"."""
    whole = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _after(when: float | None, origin: float) -> str:
    return f"{when - origin:.0f} s" if when is not None else "not seen"


def report(line: Timeline, verdict: Judgement, stack: Stack) -> list[str]:
    """What the drill did, what it observed, how long each part took."""

    def clock(when: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(when))

    victim, t0, t1 = stack.victim, line.killed, line.started
    container = stack.lab.container(victim)
    detected = (
        f"{verdict.detected_at - t0:.1f} s after the kill ({verdict.detected_by.describe(t0)})"
        if verdict.detected_by
        else "no request found the lost host: the kill itself"
    )
    alert = line.alert_line.splitlines()
    shown = next((x for x in alert if ALERT in x and stack.instance(victim) in x), "")
    lines = [
        "drill host-loss: did",
        f"  {clock(line.loop_started)}  request loop: GET https://{stack.domain}{PATH}, {RATE:.0f}/s, "
        f"new connection each, from this machine",
        f"  {clock(t0)}  docker kill {container} (host {victim}: engine, sshd, ERP container)",
        f"  {clock(t1)}  docker start {container}" if t1 else "  (the host was not started by the drill)",
        f"  {clock(line.loop_stopped)}  request loop stopped",
        "drill host-loss: observed",
        f"  requests: {verdict.total}, baseline before the kill {verdict.baseline} "
        f"(failed: {len(verdict.baseline_failed)}); longest {verdict.longest:.1f} s",
        f"  proxy's detection (first request after the kill that failed or took >= {SLOW_SECONDS:.0f} s): "
        f"{detected}",
        f"  failed before detection: {span(verdict.failed_before, t0)}",
        f"  failed after detection: {span(verdict.failed_after, t0)}",
        f"  answered after waiting >= {SLOW_SECONDS:.0f} s for the lost host (the proxy trying it again "
        f"every fail_timeout): {len(verdict.slow_after)}",
        f"  Prometheus: {stack.instance(victim)} down {_after(line.target_down, t0)} after the kill, "
        f"{ALERT} firing after {_after(line.alert_firing, t0)}",
        f"  admins group: {ALERT} firing after {_after(line.alert_in_admins, t0)}: {shown[:160]}",
        f"  after the start: {victim}'s {ERP_CONTAINER} healthy after {_after(line.erp_healthy, t1)}, "
        f"target up after {_after(line.target_up, t1)}, serving the loop's requests through the proxy "
        f"after {_after(line.serving, t1)} (its request counter for {ROUTE}, via Prometheus)",
        f"  admins group: {ALERT} resolved {_after(line.resolved_in_admins, t1)} after the start",
        f"  {victim}'s host firewall rules after the restart: {line.firewall or 'not checked'}",
        f"  {victim}'s cron daemon after the restart: {line.cron or 'not checked'}",
        "drill host-loss: " + ("passed" if verdict.passed else "FAILED: requests failed after detection"),
    ]
    return lines
