"""Failure drill of the multi-host lab (issue 11): the ERP's own alerts reach Rocket.Chat from every ERP host.

`python -m lab.multi --from drill` (a kept lab of inventory/lab) or the step `drill` of a whole cycle, before
the host-loss drill. The ERP raises its own suspicious-activity alerts (erp/services/alerts.py: failed
authentications, rate-limited requests, registrations above a threshold within a window) and posts them to
Rocket.Chat's incoming webhook `erp-alerts` (the admins channel). On an ERP host without Rocket.Chat that
post goes through the public name and the proxy, the name mapped to the proxy in the ERP container's
/etc/hosts and the certificate checked against ERP_ALERT_WEBHOOK_CA_FILE (roles/erp_api). `make verify`
checks the route read-only (`python -m erp alerts-check`); this drill posts for real:

1. a burst of requests with a wrong API key to GET /api/bot/v1/positions, from inside the bot's container
   on the bot host, through the public name: the bot's own route and source address, so the proxy admits
   them (its allowlist) and balances them over the ERP hosts (round robin) at PACE, under the proxy's rate
   limit for the route. Each answer must be 401;
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
from lab.topology import Lab, ansible_inventory

BOT_CONTAINER = "photomatrix-chatbot"
PATH = "/api/bot/v1/positions"
# The ERP's threshold (ERP_ALERT_AUTH_FAILURES_THRESHOLD, 20 within 60 s per replica) for each instance,
# round robin over them, with room: MARGIN times the threshold per instance.
THRESHOLD = 20
MARGIN = 1.5
PACE_SECONDS = 0.08  # ~12 requests/s: under the proxy's 20 r/s for the route (tls_proxy_rate_erp_api)
NEEDLE = "ERP: suspicious activity `auth_failures`"
TIMEOUT = 180.0
POLL_SECONDS = 5.0


def _log(message: str) -> None:
    print(f"drill erp-alerts: {time.strftime('%H:%M:%S')} {message}", flush=True)


def burst_code(domain: str, count: int, pace: float) -> str:
    """The Python the bot's container runs: COUNT requests with a wrong key through the public name (the
    bot's CA), one every PACE seconds; prints their statuses as JSON."""
    return f"""
import json, ssl, time, urllib.error, urllib.request
context = ssl.create_default_context(cafile="/etc/bot/ca.crt")
statuses = []
for _ in range({count}):
    headers = {{"X-API-Key": "pmlab-drill-wrong-key"}}
    request = urllib.request.Request("https://{domain}{PATH}", headers=headers)
    try:
        statuses.append(urllib.request.urlopen(request, timeout=15, context=context).status)
    except urllib.error.HTTPError as exc:
        statuses.append(exc.code)
    except OSError as exc:
        statuses.append(str(exc)[:80])
    time.sleep({pace})
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


def run(lab: Lab) -> dict[str, tuple[float, float]]:
    """The drill on the kept lab; returns its timings by name, for lab.multi's summary."""
    stack = Stack.of(lab)
    data = ansible_inventory(lab.inventory, DrillError)
    bots = data.get("bots", {}).get("hosts", [])
    if not bots:
        raise DrillError("the ERP alerts drill needs a bots host")
    bot = bots[0]
    erp_hosts = {host: lab.hosts[host] for host in [stack.victim, *stack.survivors]}
    raised_q = 'sum by (instance) (erp_alerts_total{job="erp-api",kind="auth_failures"})'
    failed_q = 'sum(erp_alert_webhook_failures_total{job="erp-api"})'
    up = by_instance(stack.query('up{job="erp-api"}'))
    instances = [i for i, value in up.items() if value == 1]
    if len(instances) < len(erp_hosts):
        raise DrillError(f"the ERP targets are not all up before the drill: {up}")
    before = by_instance(stack.query(raised_q))
    failed_before = sum(by_instance(stack.query(failed_q)).values())
    stack.login()
    seen = {m["_id"] for m in stack.admins_messages() if NEEDLE in m.get("msg", "")}
    count = int(THRESHOLD * MARGIN * len(instances))
    _log(
        f"{count} requests with a wrong key, GET https://{stack.domain}{PATH} from {BOT_CONTAINER} on {bot}, "
        f"over {len(instances)} ERP instance(s) on {', '.join(erp_hosts)}"
    )
    started = time.time()
    code = burst_code(stack.domain, count, PACE_SECONDS)
    command = f"sudo docker exec {BOT_CONTAINER} python3 -c {shlex.quote(code)}"
    statuses = json.loads(remote.capture(lab, bot, command, timeout=count * 20 + 60).strip().splitlines()[-1])
    burst = time.time() - started
    others = [s for s in statuses if s != 401]
    _log(f"burst sent in {burst:.0f} s: {statuses.count(401)} answered 401, others {others[:5]}")
    if others:
        raise DrillError(
            f"{len(others)} of {count} requests did not answer 401 (the ERP's refusal): {others[:5]}"
        )

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
    step = "drill ERP alerts: wrong-key burst → every ERP host's alert in the admins channel"
    return {step: (delivered, os.getloadavg()[0])}
