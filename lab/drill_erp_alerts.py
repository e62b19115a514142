"""Failure drill of the multi-host lab (issue 11): the ERP's own alerts reach Rocket.Chat from every ERP host.

`python -m lab.multi --from drill --to drill` (a kept lab of inventory/lab) or the step `drill` of a
whole cycle, before
the host-loss drill. The ERP raises its own suspicious-activity alerts (erp/services/alerts.py: failed
authentications, rate-limited requests, registrations above a threshold within a window) and posts them to
Rocket.Chat's incoming webhook `erp-alerts` (the admins channel). On an ERP host without Rocket.Chat that
post goes through the public name and the proxy, the name mapped to the proxy in the ERP container's
/etc/hosts and the certificate checked against ERP_ALERT_WEBHOOK_CA_FILE (roles/erp_api). `make verify`
checks the route read-only (`python -m erp alerts-check`); this drill posts for real:

1. in every ERP replica of every ERP host, a burst of requests with a wrong API key to its own
   GET /api/bot/v1/positions, over its TLS (verified against the internal CA for erp-api), from SOURCES
   loopback addresses (127.0.0.2, 127.0.0.3, ...), PER_SOURCE requests each. The ERP answers a source's
   failed keys 401 up to ERP_AUTH_FAILURE_LIMIT (10 within 5 minutes), then 429 until that window passes:
   one source cannot reach the alert's threshold (20 failures within 60 s per replica), and a burst from the
   bot's host would have shut the bot out of the ERP for five minutes. Each answer must be 401;
2. every ERP host must raise `auth_failures` (erp_alerts_total{kind="auth_failures"} of each of its
   instances grows, read from Prometheus on the monitoring host), no delivery may fail
   (erp_alert_webhook_failures_total unchanged), and the admins channel must hold one new ERP alert per
   alert raised, read with the stack's admin account through Rocket.Chat's REST API.

The ERP posts one alert per kind every ERP_ALERT_WEBHOOK_MIN_INTERVAL_SECONDS (300 s) per replica: a second
run within five minutes raises none, and says so.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from typing import Any

from lab import remote
from lab.drill_host_loss import DrillError, Stack
from lab.topology import Lab

ERP_CONTAINERS = "sudo docker ps --format '{{.Names}}' --filter name=^photomatrix-erp-api"
PATH = "/api/bot/v1/positions"
PORT = 8000  # erp_api_port, inside the container
TLS_NAME = "erp-api"  # erp_api_tls_server_name: first in every ERP certificate
CA_FILE = "/run/secrets/erp/tls-ca.crt"  # the internal CA in the ERP container (its health check's)
# ERP_AUTH_FAILURE_LIMIT (10) failures per source, from enough sources for the alert's threshold
# (ERP_ALERT_AUTH_FAILURES_THRESHOLD, 20 within 60 s per replica), with room.
PER_SOURCE = 10
SOURCES = 3
NEEDLE = "ERP: suspicious activity `auth_failures`"
TIMEOUT = 180.0
POLL_SECONDS = 5.0
UP_TIMEOUT = 120.0  # every ERP target up in Prometheus before the burst
# Its figure in lab.multi's summary (ops/figures.py LAB_STEPS reads it by this name).
STEP = "drill ERP alerts: every ERP host's own alert in the admins channel, through the proxy"


def _log(message: str) -> None:
    print(f"drill erp-alerts: {time.strftime('%H:%M:%S')} {message}", flush=True)


def burst_code(sources: int, per_source: int) -> str:
    """The Python an ERP replica runs: PER_SOURCE requests with a wrong key from each of SOURCES loopback
    addresses to its own port, over TLS when it serves TLS (its CA file there); prints the statuses as
    JSON."""
    return f"""
import json, os, socket, ssl
context = ssl.create_default_context(cafile="{CA_FILE}") if os.path.exists("{CA_FILE}") else None
request = b"GET {PATH} HTTP/1.0\\r\\nHost: {TLS_NAME}\\r\\nX-API-Key: pmlab-drill-wrong-key\\r\\n\\r\\n"
statuses = []
for source in range({sources}):
    for _ in range({per_source}):
        try:
            address = (f"127.0.0.{{source + 2}}", 0)
            s = socket.create_connection(("127.0.0.1", {PORT}), 15, source_address=address)
            if context is not None:
                s = context.wrap_socket(s, server_hostname="{TLS_NAME}")
            s.sendall(request)
            statuses.append(int(s.recv(64).split()[1]))
            s.close()
        except (OSError, ValueError, IndexError) as exc:
            statuses.append(str(exc)[:80])
print(json.dumps(statuses))
"""


def by_instance(result: list[dict[str, Any]]) -> dict[str, float]:
    """{instance: value} of an instant vector summed by instance."""
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in result}


def raised_on(hosts: dict[str, str], before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Alerts raised per ERP host (HOSTS: name -> address): the growth of its instances' counters."""
    raised: dict[str, float] = {}
    for host, address in hosts.items():
        mine = [i for i in set(before) | set(after) if i.split(":")[0] == address]
        raised[host] = sum(after.get(i, 0.0) - before.get(i, 0.0) for i in mine)
    return raised


def wait_targets_up(stack: Stack, timeout: float = UP_TIMEOUT) -> dict[str, float]:
    """Every ERP target up in Prometheus (right after a deploy, an upgrade or a rollback a replica may not
    be scraped up yet); returns {instance: up}. None within TIMEOUT, or no target at all: DrillError."""
    deadline = time.monotonic() + timeout
    while True:
        up = by_instance(stack.query('up{job="erp-api"}'))
        if up and all(value == 1 for value in up.values()):
            return up
        if time.monotonic() > deadline:
            raise DrillError(f"the ERP targets are not all up within {timeout:.0f} s before the drill: {up}")
        _log(f"waiting for every ERP target up: {up}")
        time.sleep(POLL_SECONDS)


def run(lab: Lab) -> dict[str, tuple[float, float]]:
    """The drill on the kept lab; returns its timings by name, for lab.multi's summary."""
    stack = Stack.of(lab)
    erp_hosts = {host: lab.hosts[host] for host in [stack.victim, *stack.survivors]}
    raised_q = 'sum by (instance) (erp_alerts_total{job="erp-api",kind="auth_failures"})'
    failed_q = 'sum(erp_alert_webhook_failures_total{job="erp-api"})'
    wait_targets_up(stack)
    before = by_instance(stack.query(raised_q))
    failed_before = sum(by_instance(stack.query(failed_q)).values())
    stack.login()
    seen = {m["_id"] for m in stack.admins_messages() if NEEDLE in m.get("msg", "")}
    started = time.time()
    code = burst_code(SOURCES, PER_SOURCE)
    for host in erp_hosts:
        replicas = remote.capture(lab, host, ERP_CONTAINERS, timeout=60).split()
        if not replicas:
            raise DrillError(f"no ERP container runs on {host}")
        for replica in replicas:
            command = f"sudo docker exec {replica} python -c {shlex.quote(code)}"
            answer = remote.capture(lab, host, command, timeout=120).strip().splitlines()
            statuses = json.loads(answer[-1]) if answer else []
            others = [s for s in statuses if s != 401]
            _log(
                f"{host}/{replica}: {len(statuses)} requests with a wrong key from {SOURCES} sources, "
                f"{statuses.count(401)} answered 401"
            )
            if others or len(statuses) != SOURCES * PER_SOURCE:
                raise DrillError(f"{host}/{replica}: not every request was refused with 401: {others[:5]}")

    deadline = time.monotonic() + TIMEOUT
    raised: dict[str, float] = {}
    new: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        raised = raised_on(erp_hosts, before, by_instance(stack.query(raised_q)))
        new = [m for m in stack.admins_messages() if NEEDLE in m.get("msg", "") and m["_id"] not in seen]
        if all(raised.values()) and len(new) >= sum(raised.values()):
            break
        time.sleep(POLL_SECONDS)
    delivered = time.time() - started
    failed = sum(by_instance(stack.query(failed_q)).values()) - failed_before
    _log(f"alerts raised per ERP host: {raised}; webhook deliveries failed: {failed:.0f}")
    _log(f"admins channel: {len(new)} new ERP alert message(s) after {delivered:.0f} s")
    for message in new[:4]:
        _log(f"  {message.get('msg', '')[:160]}")
    silent = [host for host, n in raised.items() if not n]
    if silent:
        raise DrillError(
            f"no auth_failures alert raised on {', '.join(silent)} within {TIMEOUT:.0f} s (one per kind "
            "every 5 min per replica: a run within five minutes of the last raises none)"
        )
    if failed:
        raise DrillError(
            f"{failed:.0f} ERP alert webhook deliveries failed (erp_alert_webhook_failures_total)"
        )
    if len(new) < sum(raised.values()):
        raise DrillError(
            f"{sum(raised.values()):.0f} alerts raised, {len(new)} reached the admins channel "
            f"within {TIMEOUT:.0f} s"
        )
    _log("passed")
    return {STEP: (delivered, os.getloadavg()[0])}
