"""Monitoring: Prometheus deployed unpublished, scraping every target (the ERP, the bot, node exporter,
the blackbox exporter's HTTPS probes through the proxy), its rules checked, unit-tested with promtool,
built only on metrics that exist, and one alert firing end to end: through Alertmanager and the bot
into the admins channel of Rocket.Chat."""

from __future__ import annotations

import ipaddress
import json
import random
import re
import socket
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from plugins.infra import ALERTMANAGER_TO_BOT, Stack, bot_get, docker_health, docker_inspect

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "monitoring" / "rules"
RULE_TESTS_DIR = ROOT / "monitoring" / "tests"
PROMETHEUS = "photomatrix-prometheus"
ALERTMANAGER = "photomatrix-alertmanager"
NODE_EXPORTER = "photomatrix-node-exporter"
BLACKBOX = "photomatrix-blackbox-exporter"
BOT = "photomatrix-chatbot"
ADMINS_GROUP = "admins"
NETWORK = "photomatrix"
# Scrape and evaluation run every 15 s: a change shows in the API within about a minute.
SETTLE_SECONDS = 120

PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset", "group_left"}


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


# The ERP serves HTTPS from the internal CA (issue 10): Prometheus's copy of that CA, and the name its
# certificate carries for every caller.
ERP_CA_INSIDE = "/etc/prometheus/erp-ca.crt"
ERP_METRICS = "https://erp-api:8000/metrics"


def fetch_inside(url: str, container: str = PROMETHEUS, cafile: str = "") -> str:
    """GET a URL from inside a monitoring container (internal network, nothing published); an https URL
    verified against CAFILE (a path inside the container)."""
    context = f", context=__import__('ssl').create_default_context(cafile={cafile!r})" if cafile else ""
    code = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10{context}).read().decode())"
    )
    out = run(["docker", "exec", container, "python3", "-c", code])
    assert out.returncode == 0, f"{url}: {out.stderr[-2000:]}"
    return out.stdout


def prometheus_api(path: str) -> Any:
    body = json.loads(fetch_inside(f"http://127.0.0.1:9090/api/v1/{path}"))
    assert body["status"] == "success", body
    return body["data"]


def wait_for(check: Callable[[], Any], what: str, timeout: float = SETTLE_SECONDS) -> Any:
    """Poll until check() returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(3)


def rule_documents() -> list[dict]:
    return [yaml.safe_load(path.read_text()) for path in sorted(RULES_DIR.glob("*.yml"))]


def repository_alerts() -> dict[str, str]:
    return {
        rule["alert"]: rule["expr"]
        for document in rule_documents()
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers left once strings, label matchers, ranges,
    grouping clauses and function calls are taken out."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return {name for name in names if name not in PROMQL_WORDS}


def exported_names(metrics_text: str) -> set[str]:
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> dict:
    assert PROMETHEUS in stack.containers, f"{PROMETHEUS} is not running: {stack.containers}"
    return docker_inspect(PROMETHEUS)


@pytest.fixture(scope="module")
def prometheus_image(prometheus: dict) -> str:
    return prometheus["Config"]["Image"]


def promtool(image: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The built image's promtool on the repository's monitoring/ folder (read-only, no network)."""
    return run(
        [
            "docker", "run", "--rm", "--network", "none",
            "--volume", f"{ROOT / 'monitoring'}:/monitoring:ro",
            "--entrypoint", "promtool", image, *args,
        ]
    )  # fmt: skip


def test_prometheus_is_healthy_hardened_and_not_published(prometheus: dict) -> None:
    assert docker_health(PROMETHEUS) == "healthy"
    host = prometheus["HostConfig"]
    assert not host["PortBindings"], host["PortBindings"]
    assert host["ReadonlyRootfs"]
    assert prometheus["Config"]["User"] not in ("", "0", "root", "0:0")
    assert set(prometheus["NetworkSettings"]["Networks"]) == {NETWORK}
    assert "--storage.tsdb.retention.time=15d" in prometheus["Args"], prometheus["Args"]
    volumes = {m["Name"]: m["Destination"] for m in prometheus["Mounts"] if m["Type"] == "volume"}
    assert volumes == {"photomatrix_prometheus_data": "/var/lib/prometheus/data"}


@pytest.fixture(scope="module")
def alertmanager(stack: Stack) -> dict:
    assert ALERTMANAGER in stack.containers, f"{ALERTMANAGER} is not running: {stack.containers}"
    return docker_inspect(ALERTMANAGER)


def test_alertmanager_is_healthy_hardened_and_not_published(alertmanager: dict, stack: Stack) -> None:
    assert docker_health(ALERTMANAGER) == "healthy"
    host = alertmanager["HostConfig"]
    assert not host["PortBindings"], host["PortBindings"]
    assert host["ReadonlyRootfs"]
    assert alertmanager["Config"]["User"] not in ("", "0", "root", "0:0")
    assert set(alertmanager["NetworkSettings"]["Networks"]) == {NETWORK}
    volumes = {m["Name"]: m["Destination"] for m in alertmanager["Mounts"] if m["Type"] == "volume"}
    assert volumes == {"photomatrix_alertmanager_data": "/var/lib/alertmanager"}
    # The token is a 0600 file of Alertmanager's user, the same the bot was given, never in the config.
    token_file = stack.root / "alertmanager" / "secrets" / "bot_token"
    mode = token_file.stat()
    assert (mode.st_mode & 0o777, mode.st_uid) == (0o600, 990)
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert token == (stack.root / "secrets" / "bot" / "alerts_token").read_text().strip()
    assert token not in (stack.root / "alertmanager" / "alertmanager.yml").read_text()
    assert token not in json.dumps(alertmanager["Config"]["Env"])


def test_amtool_accepts_the_deployed_configuration(alertmanager: dict) -> None:
    config = "/etc/alertmanager/alertmanager.yml"
    out = run(["docker", "exec", ALERTMANAGER, "amtool", "check-config", config])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 receivers" in out.stdout, out.stdout


def test_prometheus_sends_alerts_to_alertmanager(prometheus: dict, alertmanager: dict) -> None:
    def active() -> list[dict] | None:
        found = prometheus_api("alertmanagers")["activeAlertmanagers"]
        return found or None

    (found,) = wait_for(active, "Prometheus to discover Alertmanager")
    assert found["url"] == "http://alertmanager:9093/api/v2/alerts"


def test_the_bot_refuses_alerts_without_its_token(stack: Stack) -> None:
    code = (
        ALERTMANAGER_TO_BOT
        + """
headers = {"Authorization": "Bearer wrong", "Content-Type": "application/json"}
request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
try:
    print(urllib.request.urlopen(request, timeout=10, context=context).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""
    )
    out = run(["docker", "exec", ALERTMANAGER, "python3", "-c", code])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "401"


def test_promtool_accepts_the_deployed_configuration(prometheus: dict) -> None:
    out = run(["docker", "exec", PROMETHEUS, "promtool", "check", "config", "/etc/prometheus/prometheus.yml"])
    assert out.returncode == 0, out.stdout + out.stderr
    rule_files = sorted(path.name for path in RULES_DIR.glob("*.yml"))
    for name in rule_files:
        assert f"/etc/prometheus/rules/{name}" in out.stdout, out.stdout


def test_promtool_checks_and_unit_tests_the_rules(prometheus_image: str) -> None:
    rules = [f"/monitoring/rules/{path.name}" for path in sorted(RULES_DIR.glob("*.yml"))]
    checked = promtool(prometheus_image, "check", "rules", *rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = [f"/monitoring/tests/{path.name}" for path in sorted(RULE_TESTS_DIR.glob("*.yml"))]
    tested = promtool(prometheus_image, "test", "rules", *tests)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(tests), tested.stdout


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        case["alertname"]
        for path in RULE_TESTS_DIR.glob("*.yml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert set(repository_alerts()) <= tested, set(repository_alerts()) - tested


def test_every_target_is_scraped_and_up(prometheus: dict) -> None:
    # Rocket.Chat's exporter through its TLS sidecar (its simulator serves one too).
    expected = {"prometheus", "erp-api", "chatbot", "node", "blackbox", "rocketchat"}

    def all_up() -> list[dict] | None:
        targets = prometheus_api("targets?state=active")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for(all_up, "every target up")
    assert {t["labels"]["job"] for t in targets} == expected
    up = prometheus_api("query?query=up")["result"]
    assert {r["metric"]["job"]: r["value"][1] for r in up} == dict.fromkeys(expected, "1")


def test_rules_are_loaded_and_evaluate_without_errors(prometheus: dict) -> None:
    def evaluated() -> list[dict] | None:
        rules = [rule for group in prometheus_api("rules")["groups"] for rule in group["rules"]]
        return rules if rules and all(rule["health"] == "ok" for rule in rules) else None

    rules = wait_for(evaluated, "every rule evaluated")
    assert not [rule for rule in rules if rule.get("lastError")]
    assert {rule["name"] for rule in rules if rule["type"] == "alerting"} == set(repository_alerts())


def query(promql: str) -> list[dict]:
    return prometheus_api("query?query=" + urllib.parse.quote(promql))["result"]


@pytest.mark.parametrize("name", [NODE_EXPORTER, BLACKBOX])
def test_the_exporters_are_healthy_hardened_and_not_published(stack: Stack, name: str) -> None:
    assert name in stack.containers, f"{name} is not running: {stack.containers}"
    assert docker_health(name) == "healthy"
    info = docker_inspect(name)
    host = info["HostConfig"]
    assert not host["PortBindings"], host["PortBindings"]  # Prometheus runs on this host
    assert host["ReadonlyRootfs"]
    assert host["CapDrop"] == ["ALL"]
    assert not host["Privileged"]
    assert info["Config"]["User"] == "65534:65534"
    assert all(m.get("RW") is False for m in info["Mounts"]), info["Mounts"]


def test_the_hosts_containers_and_certificate_are_watched(prometheus: dict, stack: Stack) -> None:
    """What the new alerts read exists for this host: its root filesystem, the containers' restart
    counts and health (cron's textfile), and both HTTPS probes through the proxy with the expiry of
    the certificate the proxy serves."""

    def seen() -> dict | None:
        disk = query('node_filesystem_size_bytes{mountpoint="/"}')
        healthy = {r["metric"]["container"]: r["value"][1] for r in query("photomatrix_container_healthy")}
        restarts = query('photomatrix_container_restarts_total{container="photomatrix-erp-api"}')
        probes = {r["metric"]["probe"]: r["value"][1] for r in query("probe_success")}
        expiry = query('probe_ssl_earliest_cert_expiry{probe="public"}')
        if disk and healthy and restarts and probes and expiry:
            return {"healthy": healthy, "probes": probes, "expiry": float(expiry[0]["value"][1])}
        return None

    found = wait_for(seen, "node exporter, container metrics and probes in Prometheus")
    assert found["probes"] == {"public": "1", "erp": "1"}, found["probes"]
    assert found["healthy"][stack.erp] == "1", found["healthy"]
    assert found["healthy"][stack.proxy] == "1", found["healthy"]
    served = ssl_expiry(stack)
    assert abs(found["expiry"] - served) < 1, (found["expiry"], served)


def ssl_expiry(stack: Stack) -> float:
    """notAfter of the certificate the proxy serves for the public name, as a Unix time."""
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw,
        stack.ssl_context().wrap_socket(raw, server_hostname=stack.domain) as tls,
    ):
        return float(ssl.cert_time_to_seconds(tls.getpeercert()["notAfter"]))


def test_rules_use_only_metrics_the_stack_exports(prometheus: dict) -> None:
    exported = {"up"}  # Prometheus' own series for every target
    probe = "http://blackbox-exporter:9115/probe?module=https_public&target=https://proxy:8443/api/info"
    node = "https://node-exporter:9100/metrics"
    exported |= exported_names(fetch_inside(ERP_METRICS, cafile=ERP_CA_INSIDE))
    exported |= exported_names(fetch_inside(node, cafile=ERP_CA_INSIDE))
    exported |= exported_names(bot_get(BOT, "/metrics"))
    exported |= exported_names(fetch_inside(probe))
    used = {name for expr in repository_alerts().values() for name in metric_names(expr)}
    assert used, "no metric names found in the rules"
    assert used <= exported, f"rules use metrics nobody exports: {sorted(used - exported)}"


def spare_address() -> str:
    """A free address in the upper half of the internal network, different on each run: the ERP locks a
    source out after 10 failed logins in 5 minutes, so a rerun must not come from the same address."""
    network = json.loads(run(["docker", "network", "inspect", NETWORK]).stdout)[0]
    subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
    used = {entry["IPv4Address"].split("/")[0] for entry in network["Containers"].values()}
    hosts = list(subnet.hosts())
    candidates = [str(ip) for ip in hosts[len(hosts) // 2 :] if str(ip) not in used]
    return random.choice(candidates)  # nosec B311: not a secret, just a fresh address


def bad_key_requests(image: str, address: str, count: int, ca_file: Path) -> list[int]:
    """Requests with an unknown API key to the ERP on the internal network, from a throwaway container
    (over HTTPS, the certificate verified against the stack's CA mounted in)."""
    code = f"""
import ssl, urllib.error, urllib.request
context = ssl.create_default_context(cafile="/ca.crt")
statuses = []
for _ in range({count}):
    url = "https://erp-api:8000/api/bot/v1/positions"
    request = urllib.request.Request(url, headers={{"X-API-Key": "wrong"}})
    try:
        statuses.append(urllib.request.urlopen(request, timeout=10, context=context).status)
    except urllib.error.HTTPError as exc:
        statuses.append(exc.code)
print(statuses)
"""
    network = ["--network", NETWORK, "--ip", address, "--volume", f"{ca_file}:/ca.crt:ro"]
    out = run(["docker", "run", "--rm", *network, "--entrypoint", "python3", image, "-c", code])
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def auth_failures_seen() -> float:
    result = prometheus_api("query?query=sum(erp_auth_failures_total)")["result"]
    return float(result[0]["value"][1]) if result else 0.0


# A drill (`make drill`, refused for production): the burst fires a real alert in the admins channel and
# writes failed authentications to the ERP's audit log, which `make verify` (read-only) must never do.
@pytest.mark.drill
@pytest.mark.timeout(600)
def test_a_burst_of_bad_keys_raises_the_auth_failure_alert(
    stack: Stack, prometheus: dict, alertmanager: dict, prometheus_image: str
) -> None:
    address = spare_address()
    before = auth_failures_seen()
    # One failure first, so the counter's series exists in Prometheus before the burst: increase()
    # cannot see the jump of a series that appears with its first sample already counting it.
    assert bad_key_requests(prometheus_image, address, 1, stack.ca_file) == [401]
    wait_for(lambda: auth_failures_seen() >= before + 1, "the first failed authentication to be scraped")
    assert bad_key_requests(prometheus_image, address, 7, stack.ca_file) == [401] * 7

    def alert_state() -> str | None:
        alerts = prometheus_api("alerts")["alerts"]
        states = [a["state"] for a in alerts if a["labels"]["alertname"] == "ErpAuthFailureBurst"]
        return states[0] if states else None

    assert wait_for(alert_state, "ErpAuthFailureBurst to go pending") in ("pending", "firing")
    # Held for its `for:` minute, the alert fires.
    assert wait_for(lambda: alert_state() == "firing", "ErpAuthFailureBurst to fire", timeout=150)

    # Delivered: Alertmanager holds it, and after its group wait the bot posts it to the admins channel.
    def in_alertmanager() -> list[dict] | None:
        alerts = json.loads(fetch_inside("http://127.0.0.1:9093/api/v2/alerts", ALERTMANAGER))
        named = [a for a in alerts if a["labels"].get("alertname") == "ErpAuthFailureBurst"]
        return named or None

    (held,) = wait_for(in_alertmanager, "ErpAuthFailureBurst to reach Alertmanager", timeout=60)
    assert held["status"]["state"] == "active"
    assert "chatbot" in [receiver["name"] for receiver in held["receivers"]]
    texts = wait_for(lambda: admins_messages_naming(stack, "ErpAuthFailureBurst"), "the alert in Rocket.Chat")
    line = f"[{held['labels'].get('severity', '-')}] *ErpAuthFailureBurst*"
    assert any(line in text for text in texts), texts


def admins_messages_naming(stack: Stack, needle: str) -> list[str]:
    """The bot's messages in the admins group naming `needle`, read with the bot's own token (the bot is a
    member of the group; the workspace admin need not be)."""
    secrets_dir = stack.root / "secrets"
    user_id = (secrets_dir / "bootstrap" / "erp-bot-user-id").read_text().strip()
    token = (secrets_dir / "bot" / "rocketchat_token").read_text().strip()
    headers = {"X-User-Id": user_id, "X-Auth-Token": token}
    tls = stack.ssl_context()
    with httpx.Client(base_url=stack.base_url, verify=tls, timeout=15, headers=headers) as http:
        response = http.get("/api/v1/groups.history", params={"roomName": ADMINS_GROUP, "count": 50})
    if response.status_code == 429:  # Rocket.Chat's rate limiter: the next poll tries again
        return []
    response.raise_for_status()
    return [m["msg"] for m in response.json()["messages"] if m["u"]["_id"] == user_id and needle in m["msg"]]
