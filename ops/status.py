"""`make status`: one screen of what is up, what is alerting and when the public certificate expires.

Read-only: `docker ps` on every host of the inventory (through Ansible's own connection, no published
port), Alertmanager's active alerts read with `amtool` inside the monitoring container, and one TLS
handshake to the public name verified with the stack's CA. Nothing is started, stopped or written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import ssl
import subprocess  # nosec B404
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.ansible_env import json_env
from security.report import inventory_vars, proxy_address

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60
ALERTS_QUERY = (
    "docker exec {container} amtool alert query --output=json --alertmanager.url=http://127.0.0.1:9093"
)


@dataclass
class HostStatus:
    host: str
    containers: list[dict] = field(default_factory=list)
    error: str = ""


@dataclass
class Status:
    hosts: list[HostStatus]
    alerts: list[dict] | None
    alerts_error: str
    cert_not_after: dt.datetime | None
    cert_error: str
    public: str


def ansible_command(
    inventory: Path, pattern: str, command: str, module: str = "ansible.builtin.command"
) -> dict[str, tuple[int, str, str]]:
    """Run one read-only command (or MODULE with these arguments) on the hosts of `pattern`;
    {host: (rc, stdout, error)}."""
    binary = Path(sys.executable).with_name("ansible")
    env = {
        **json_env("json"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    }
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603
            [str(binary), pattern, "-i", str(inventory), "-m", module, "-a", command],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT * 3,
            check=False,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"*": (1, "", f"ansible timed out after {TIMEOUT * 3} s")}
    try:
        report = json.loads(result.stdout[result.stdout.find("{") :])
    except ValueError:
        return {"*": (1, "", (result.stderr or result.stdout).strip()[-300:] or "ansible failed")}
    out: dict[str, tuple[int, str, str]] = {}
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for host, res in task.get("hosts", {}).items():
                failed = res.get("failed") or res.get("unreachable")
                error = ((res.get("stderr") or "").strip() or res.get("msg", "")) if failed else ""
                stdout = res.get("stdout", res.get("msg", "") if not failed else "")
                out[host] = (int(res.get("rc", 1 if error else 0)), str(stdout), str(error)[-300:])
    return out


# The settings make status reads from the inventory, as Ansible templates them for the proxy host.
SETTINGS = ("photomatrix_domain", "photomatrix_ca_file", "photomatrix_root", "tls_proxy_cert_mode")


def inventory_settings(inventory: Path) -> dict[str, Any]:
    """SETTINGS as Ansible templates them for the first proxy host (else the first Docker host), undefined
    ones left out: a value such as inventory/lab's photomatrix_ca_file, "{{ inventory_dir }}/.lab/secrets/
    ca.crt", is a path only then. The debug module runs here, reaching no host. {} when Ansible cannot
    answer (the raw group_vars stand in)."""
    fields = ", ".join(f"'{name}': {name} | default(none)" for name in SETTINGS)
    message = "msg={{ {" + fields + ", 'groups': group_names} | to_json }}"
    answers: list[tuple[int, str, dict[str, Any]]] = []
    for host, (rc, stdout, error) in ansible_command(
        inventory, "proxy:docker_hosts", message, module="ansible.builtin.debug"
    ).items():
        if rc or error:
            continue
        try:
            found = json.loads(stdout)
        except ValueError:
            continue
        answers.append((0 if "proxy" in found.pop("groups", []) else 1, host, found))
    if not answers:
        return {}
    _, _, found = min(answers, key=lambda answer: answer[:2])
    return {name: value for name, value in found.items() if value is not None}


def containers(inventory: Path, prefix: str) -> list[HostStatus]:
    # Ansible templates the module arguments: docker's Go template braces are kept literal.
    ps = f"docker ps -a --no-trunc --filter name={prefix} --format '{{% raw %}}{{{{json .}}}}{{% endraw %}}'"
    hosts = []
    for host, (rc, stdout, error) in sorted(ansible_command(inventory, "docker_hosts", ps).items()):
        status = HostStatus(host)
        if rc != 0 or error:
            status.error = error or f"docker ps exit code {rc}"
        else:
            status.containers = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        hosts.append(status)
    return hosts


def alerts(inventory: Path, container: str) -> tuple[list[dict] | None, str]:
    results = ansible_command(
        inventory, "monitoring:docker_hosts[0]", ALERTS_QUERY.format(container=container)
    )
    for _host, (rc, stdout, error) in sorted(results.items()):
        if rc == 0 and not error:
            try:
                return json.loads(stdout or "[]"), ""
            except ValueError:
                return None, "amtool answered something else than JSON"
        last = error or f"exit code {rc}"
    return None, last if results else "no monitoring host in the inventory"


def certificate(public: str, address: str, port: int, ca: str | None) -> tuple[dt.datetime | None, str]:
    """notAfter of the certificate served for `public`, verified against the stack's CA."""
    try:
        context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        with (
            socket.create_connection((address, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=public) as tls,
        ):
            not_after = tls.getpeercert()["notAfter"]
    except (OSError, ssl.SSLError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), dt.UTC), ""


def describe(container: dict) -> tuple[bool, str]:
    """(ok, text): running and healthy (or no healthcheck) is ok. Running with its health check not run
    yet ("health: starting": Docker's first check is one 30 s interval after a start; a deploy's wait ran
    it already) is ok too, shown as `wait`: a check that keeps failing turns it unhealthy."""
    text = container.get("Status", "")
    state = container.get("State", "")
    running = state == "running" or text.startswith("Up")
    bad = "unhealthy" in text or "Restarting" in text
    return running and not bad, text or state


def mark(ok: bool, text: str) -> str:
    """describe()'s verdict as the status line's first word."""
    return "DOWN" if not ok else "wait" if "health: starting" in text else "ok  "


def render(status: Status, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    lines = [f"Photomatrix status at {now:%Y-%m-%d %H:%M} UTC", "", "Containers"]
    problems = 0
    for host in status.hosts:
        if host.error:
            problems += 1
            lines.append(f"  {host.host}: UNKNOWN ({host.error})")
            continue
        up = sum(describe(c)[0] for c in host.containers)
        lines.append(f"  {host.host}: {up}/{len(host.containers)} up")
        for c in sorted(host.containers, key=lambda c: c.get("Names", "")):
            ok, text = describe(c)
            problems += not ok
            lines.append(f"    {mark(ok, text)} {c.get('Names', '?'):<32} {text}")
    lines += ["", "Alerts"]
    if status.alerts is None:
        problems += 1
        lines.append(f"  UNKNOWN ({status.alerts_error})")
    elif not status.alerts:
        lines.append("  none firing")
    else:
        for alert in status.alerts:
            labels = alert.get("labels", {})
            since = str(alert.get("startsAt", ""))[:16].replace("T", " ")
            lines.append(
                f"  FIRING {labels.get('alertname', '?')} ({labels.get('severity', '-')}) since {since}"
                f" {alert.get('annotations', {}).get('summary', '')}".rstrip()
            )
        problems += len(status.alerts)
    lines += ["", "Certificate"]
    if status.cert_not_after is None:
        problems += 1
        lines.append(f"  {status.public}: UNKNOWN ({status.cert_error})")
    else:
        days = (status.cert_not_after - now).total_seconds() / 86400
        flag = "EXPIRED" if days < 0 else "SOON" if days < 21 else "ok"
        lines.append(
            f"  {status.public}: {flag}, expires {status.cert_not_after:%Y-%m-%d %H:%M} UTC ({days:.0f} days)"
        )
        problems += flag != "ok"
    lines += ["", "all good" if problems == 0 else f"{problems} thing(s) need attention"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make status", description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, default=ROOT / "inventory" / "local")
    parser.add_argument("--prefix", default="photomatrix-", help="container names shown")
    parser.add_argument("--alertmanager", default="photomatrix-alertmanager", help="its container")
    parser.add_argument("--public", help="public name (default: the inventory's photomatrix_domain)")
    parser.add_argument("--address", help="address to connect to (default: the inventory's proxy host)")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument(
        "--ca", help="CA file (default: the inventory's photomatrix_ca_file or <root>/pki/ca.crt)"
    )
    args = parser.parse_args(argv)
    if not (args.inventory / "hosts.yml").is_file():
        print(f"error: {args.inventory}: no hosts.yml (give an inventory folder)", file=sys.stderr)
        return 2
    variables = {**inventory_vars(args.inventory), **inventory_settings(args.inventory)}
    public = args.public or str(variables.get("photomatrix_domain", "localhost"))
    ca = args.ca or variables.get("photomatrix_ca_file")
    # <root>/pki/ca.crt is the internal CA, in every certificate mode; it signs the public certificate in
    # the selfsigned mode only (ACME and provided certificates: the system's CAs).
    if ca is None and variables.get("tls_proxy_cert_mode", "selfsigned") == "selfsigned":
        candidate = Path(str(variables.get("photomatrix_root", "/srv/photomatrix"))) / "pki" / "ca.crt"
        ca = str(candidate) if candidate.is_file() else None
    address = args.address or proxy_address(args.inventory) or public
    found_alerts, alerts_error = alerts(args.inventory, args.alertmanager)
    not_after, cert_error = certificate(public, address, args.port, ca)
    status = Status(
        hosts=containers(args.inventory, args.prefix),
        alerts=found_alerts,
        alerts_error=alerts_error,
        cert_not_after=not_after,
        cert_error=cert_error,
        public=public,
    )
    print(render(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
