"""A silent ERP replica (issue 11, `make drill`, never production): one of the ERP's replicas on this
machine frozen with `docker pause` while a steady request loop goes through the proxy to an ERP route.

A frozen or partitioned host is the hard case a kill does not show: nothing refuses. The paused
container's kernel still completes TCP handshakes into its listen backlog, but its process answers
nothing: no TLS handshake, no HTTP answer; connections already open hang. The proxy must route around
it by its timeouts alone (roles/tls_proxy: proxy_connect_timeout, which also bounds the TLS handshake to
the upstream, tls_proxy_erp_connect_timeout; proxy_read_timeout, tls_proxy_erp_read_timeout; and
proxy_next_upstream timeout, which passes a timed-out GET to the other replica within
proxy_next_upstream_timeout). The bounds are read from the deployed nginx.conf (the location of the
loop's path), so the drill judges the configuration that runs:

(a) no request fails, baseline and freeze alike, provided the read timeout is below
    proxy_next_upstream_timeout (a request held on the frozen replica is then retried on the other one);
    otherwise nginx answers 504 to what was in flight on the frozen replica, which the drill reports as
    the defect it is. Nor when the surviving replica's TLS handshake outlasts the connect timeout on
    this loaded machine: max_fails=1 marks it failed too, and with every primary entry of the upstream
    marked failed nginx turns to the role's backup entries (every replica again, never marked failed)
    instead of answering 502 "no live upstreams" until fail_timeout passes, as it did before them (33
    requests in 9 s in one run; tests/roles/test_erp_upstream_all_failed.py makes that state without
    load);
(b) no request waits longer than read timeout + connect timeout + SLACK_SECONDS: one try on the frozen
    replica ends by the longer of its two timeouts (a request on a connection opened before the freeze
    waits for the read timeout, one on a new connection for the connect timeout, the TLS handshake
    included), the retry on the other replica is one ordinary request;
(c) TargetDown for the frozen replica's Prometheus target fires and reaches the admins channel (the
    deployed rule's `for:`, 5m in inventory/local, plus scrape, evaluation and group wait);
(d) after `docker unpause` the replica takes requests again: its own request counter for the loop's
    route grows beyond the value of the first scrape after the unpause (Prometheus, every 15 s).

The container is unpaused in the fixture's teardown whatever happens. Printed: what it did, what it
observed (requests sent, failed, slowest, the time to the alert and to the rejoin).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from infra.test_drill_alerts import delivered, erp_replicas, firing, report
from infra.test_monitoring import prometheus_api, query, wait_for
from plugins.infra import Stack, docker_health, docker_inspect

from lab.drill_host_loss import RequestLoop, Sample

pytestmark = [pytest.mark.infra, pytest.mark.drill]

PATH = "/activate/style.css"  # an ERP location of the proxy without a rate limit (nginx.conf.j2)
RATE = 4.0  # requests per second, each on a new connection (lab/drill_host_loss.py's loop)
BASELINE_SECONDS = 10.0
ALERT = "TargetDown"
# Scrape (15 s), evaluation (15 s), group wait (10 s) and the bot's post after the rule's `for:`, with
# room for this loaded machine.
ALERT_MARGIN_SECONDS = 240.0
REJOIN_TIMEOUT = 180.0
# Docker's next health check after the unpause: one interval (30 s) and its run (slow on a loaded machine).
HEALTH_TIMEOUT = 240.0
# Scheduling on this shared 2-core machine, the retried request's own time on the other replica.
SLACK_SECONDS = 3.0
NGINX_DEFAULT_TIMEOUT = 60.0  # proxy_read_timeout and proxy_connect_timeout when nothing sets them


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def seconds(value: str) -> float:
    """An nginx time ("2s", "500ms", "1m", "10") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value.strip())
    assert match, f"not an nginx time: {value!r}"
    scale = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
    return float(match.group(1)) * scale


@dataclass(frozen=True)
class ProxyTimeouts:
    connect: float
    read: float
    next_upstream: float  # 0: no limit

    @classmethod
    def deployed(cls, stack: Stack, path: str = PATH) -> ProxyTimeouts:
        """The timeouts that apply to PATH's location in the deployed nginx.conf: the location's own
        directive, else the HTTPS server's, else nginx's default."""
        conf = (stack.root / "proxy" / "nginx.conf").read_text()
        start = conf.index(f"location = {path} {{")
        block = conf[start : conf.index("}", start)]
        server = conf[conf.index("listen 8443") :]
        server_level = re.sub(r"location [^{]*\{[^}]*\}", "", server)

        def directive(name: str, default: float) -> float:
            for text in (block, server_level):
                found = re.search(rf"^\s*{name}\s+([^;]+);", text, re.MULTILINE)
                if found:
                    return seconds(found.group(1))
            return default

        return cls(
            connect=directive("proxy_connect_timeout", NGINX_DEFAULT_TIMEOUT),
            read=directive("proxy_read_timeout", NGINX_DEFAULT_TIMEOUT),
            next_upstream=directive("proxy_next_upstream_timeout", 0.0),
        )

    @property
    def retried(self) -> bool:
        """A GET held by the frozen replica until the read timeout is still passed to the other one."""
        return not self.next_upstream or self.read < self.next_upstream

    @property
    def longest(self) -> float:
        return self.read + self.connect + SLACK_SECONDS


def instance_of(container: str) -> str:
    """The Prometheus target (job erp-api) of CONTAINER: its alias or address on the stack's network."""
    names: set[str] = set()
    for network in docker_inspect(container)["NetworkSettings"]["Networks"].values():
        names.update(network.get("Aliases") or [])
        names.update(network.get("DNSNames") or [])
        names.add(network.get("IPAddress") or "")
    targets = [r["metric"]["instance"] for r in query('up{job="erp-api"}')]
    found = [t for t in targets if t.rsplit(":", 1)[0] in names]
    assert len(found) == 1, f"{container} ({sorted(names)}) among the ERP targets {targets}"
    return found[0]


def served(instance: str) -> float | None:
    """The replica's own request counter for the loop's route, as Prometheus scraped it last."""
    result = query(f'sum(erp_http_requests_total{{instance="{instance}",route="{PATH}"}})')
    return float(result[0]["value"][1]) if result else None


def up(instance: str) -> float | None:
    result = query(f'up{{job="erp-api",instance="{instance}"}}')
    return float(result[0]["value"][1]) if result else None


def alert_wait() -> float:
    """The deployed rule's `for:` of ALERT, in seconds, as Prometheus reports it."""
    groups = prometheus_api("rules?type=alert")["groups"]
    durations = [r.get("duration", 0) for g in groups for r in g["rules"] if r.get("name") == ALERT]
    assert durations, f"Prometheus has no alert rule {ALERT}"
    return float(durations[0])


def paused(container: str) -> bool:
    return bool(docker_inspect(container)["State"].get("Paused"))


@dataclass
class Freeze:
    victim: str
    instance: str
    loop: RequestLoop
    paused_at: float = 0.0  # Unix times
    unpaused_at: float = 0.0

    def unpause(self) -> None:
        if paused(self.victim):
            out = run(["docker", "unpause", self.victim])
            assert out.returncode == 0, out.stderr
        self.unpaused_at = self.unpaused_at or time.time()


@pytest.fixture
def freeze(stack: Stack) -> Iterator[Freeze]:
    replicas = [name for name in erp_replicas() if name in stack.containers]
    if len(replicas) < 2:
        pytest.skip(f"the silent-replica drill needs two ERP replicas (erp_api_replicas), found {replicas}")
    assert stack.proxy in stack.containers, f"{stack.proxy} is not running: deploy first (make up)"
    victim = replicas[-1]
    assert not paused(victim), f"{victim} is paused before the drill"
    instance = instance_of(victim)
    wait_for(lambda: up(instance) == 1, f"the ERP target {instance} up before the drill", timeout=60)
    assert not firing(ALERT, instance=instance), f"{ALERT} for {instance} fires before the drill"
    loop = RequestLoop(stack.domain, stack.ssl_context(), path=PATH, rate=RATE)
    done = Freeze(victim, instance, loop)
    loop.start()
    try:
        yield done
    finally:
        done.unpause()
        loop.stop()


def spread(samples: list[Sample], origin: float) -> str:
    if not samples:
        return "none"
    kinds = sorted({str(s.status) if s.status is not None else s.error.split(":")[0] for s in samples})
    first, last = min(s.started for s in samples), max(s.ended for s in samples)
    when = f"started +{first - origin:.1f} s to ended +{last - origin:.1f} s"
    return f"{len(samples)} ({', '.join(kinds)}), {when}"


@pytest.mark.timeout(1500)
def test_a_frozen_erp_replica_is_routed_around_alerted_on_and_rejoins(freeze: Freeze, stack: Stack) -> None:
    bounds = ProxyTimeouts.deployed(stack)
    wait = alert_wait()
    time.sleep(BASELINE_SECONDS)
    baseline = freeze.loop.snapshot()
    assert baseline, "the request loop sent nothing"
    assert all(s.ok for s in baseline), (
        f"requests failed before the freeze: {[s for s in baseline if not s.ok][:3]}"
    )

    loads = [os.getloadavg()[0]]  # the figures are comparable only with the machine's load beside them
    freeze.paused_at = time.time()
    out = run(["docker", "pause", freeze.victim])
    assert out.returncode == 0, out.stderr
    t0 = freeze.paused_at
    wait_for(lambda: up(freeze.instance) == 0, f"Prometheus: {freeze.instance} down", timeout=120)
    target_down = time.time() - t0
    wait_for(lambda: firing(ALERT, instance=freeze.instance), f"{ALERT} firing", wait + ALERT_MARGIN_SECONDS)
    alert_firing = time.time() - t0
    wait_for(
        lambda: delivered(stack, ALERT, freeze.instance),
        f"{ALERT} for {freeze.instance} in the admins channel",
        timeout=ALERT_MARGIN_SECONDS,
    )
    detected = time.time() - t0
    loads.append(os.getloadavg()[0])
    assert paused(freeze.victim), (
        f"{freeze.victim} is no longer paused: it was not frozen for the whole alert"
    )

    freeze.unpause()
    t1 = freeze.unpaused_at
    wait_for(
        lambda: up(freeze.instance) == 1, f"Prometheus: {freeze.instance} up again", timeout=REJOIN_TIMEOUT
    )
    first_scrape = served(freeze.instance) or 0.0
    wait_for(
        lambda: (served(freeze.instance) or 0.0) > first_scrape,
        f"{freeze.victim} serving the loop's requests through the proxy again",
        timeout=REJOIN_TIMEOUT,
    )
    rejoined = time.time() - t1
    # Docker judged it unhealthy while frozen (its check timed out); its next check, one interval on, passes.
    health = wait_for(
        lambda: (docker_health(freeze.victim) == "healthy" and "healthy") or "",
        f"{freeze.victim} healthy again",
        timeout=HEALTH_TIMEOUT,
    )
    healthy_after = time.time() - t1
    time.sleep(2.0)  # requests started just after the rejoin are judged too
    samples = freeze.loop.stop()
    loads.append(os.getloadavg()[0])

    during = [s for s in samples if s.ended >= t0]
    failed = [s for s in samples if not s.ok]
    slowest = max(samples, key=lambda s: s.seconds)
    slow = [s for s in samples if s.seconds > bounds.longest]
    held = [s for s in during if s.seconds >= bounds.connect]  # waited at least once for the frozen one
    report(
        "silent ERP replica",
        f"GET https://{stack.domain}{PATH} at {RATE:.0f}/s, each on a new connection, through the proxy; "
        f"docker pause {freeze.victim} ({freeze.instance}) for {t1 - t0:.0f} s, then docker unpause",
        f"{len(samples)} requests ({len(samples) - len(during)} before the freeze), failed: "
        f"{spread(failed, t0)}; slowest {slowest.seconds:.1f} s ({slowest.describe(t0)} from the pause); "
        f"{len(held)} waited >= {bounds.connect:.0f} s for the frozen replica; bound {bounds.longest:.0f} s "
        f"(proxy read {bounds.read:.0f} s + connect {bounds.connect:.0f} s + {SLACK_SECONDS:.0f} s; "
        f"next_upstream_timeout {bounds.next_upstream:.0f} s); target down after {target_down:.0f} s, "
        f"{ALERT} (for {wait:.0f} s) firing after {alert_firing:.0f} s and posted to the admins channel; "
        f"after the unpause its request counter grew (rejoined) after {rejoined:.0f} s, "
        f"Docker said {health} after {healthy_after:.0f} s; 1-minute load average at the pause, the alert "
        f"and the end: {', '.join(f'{x:.1f}' for x in loads)}",
        detected,
        rejoined,
    )
    assert not failed, f"{len(failed)} request(s) failed: {[s.describe(t0) for s in failed[:5]]}"
    assert not slow, (
        f"{len(slow)} request(s) waited longer than {bounds.longest:.0f} s: "
        f"{[s.describe(t0) for s in slow[:5]]}"
    )
    assert bounds.retried, (
        f"proxy_read_timeout {bounds.read:.0f} s is not below proxy_next_upstream_timeout "
        f"{bounds.next_upstream:.0f} s: a GET held by a frozen replica would be answered 504, not retried"
    )
