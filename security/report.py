"""Audit a deployed environment from its inventory, read-only, and write a report (JSON + Markdown).

    python -m security.report --inventory inventory/staging [--out DIR] [--url URL] [--resolve ADDR]
        [--key-file bot.key --erp-url URL]

Runs, against the proxy the inventory names (https://<photomatrix_domain>/, verified against
<photomatrix_ca_file>): the TLS audit (security/tls_check.py), sslyze's Mozilla "intermediate"
check (security/sslyze_check.py) and the API probe's public checks (no key: what anyone can try);
with --key-file and --erp-url (an address that reaches the ERP API, e.g. from the bot's network)
also the whole API probe. Read-only: it creates nothing; the activation checks use a random login
that does not exist (they leave audit rows). Writes DIR/report.json and DIR/report.md (default
.state/security-report/<inventory name>/) and exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from security import api_probe, sslyze_check, tls_check
from security.findings import Finding

ROOT = Path(__file__).resolve().parent.parent


def inventory_vars(inventory: Path) -> dict[str, Any]:
    """group_vars/all.yml or group_vars/all/*.yml (vault files left out), merged."""
    found: dict[str, Any] = {}
    group_vars = inventory / "group_vars"
    files = [group_vars / "all.yml"] if (group_vars / "all.yml").is_file() else []
    files += sorted(p for p in (group_vars / "all").glob("*.yml") if "vault" not in p.name)
    for path in files:
        found.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return found


def proxy_address(inventory: Path) -> str | None:
    """The first proxy host's address (ansible_host, else its name; local hosts are 127.0.0.1)."""
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text(encoding="utf-8")) or {}
    proxy = hosts.get("all", {}).get("children", {}).get("proxy", {}).get("hosts") or {}
    for name, settings in proxy.items():
        address = (settings or {}).get("ansible_host", name)
        return "127.0.0.1" if address in ("localhost", "127.0.0.1") else str(address)
    return None


def _section(findings: list[Finding]) -> list[dict[str, Any]]:
    return [{"check": f.check, "ok": f.ok, "detail": f.detail} for f in findings]


def audit(
    url: str, *, resolve: str | None, ca: str | None, key: str | None = None, erp_url: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    sections: dict[str, list[dict[str, Any]]] = {}
    try:
        sections["tls"] = _section(tls_check.check(url, ca=ca, resolve=resolve))
    except (httpx.HTTPError, OSError, ValueError) as exc:
        sections["tls"] = _section([Finding("TLS audit ran", False, f"{type(exc).__name__}: {exc}")])
    try:
        sections["mozilla_intermediate"] = _section(sslyze_check.check(url, resolve=resolve, ca=ca))
    except sslyze_check.ToolUnavailable as exc:
        sections["mozilla_intermediate"] = _section([Finding("sslyze available", False, str(exc))])
    try:
        sections["api_public"] = _section(api_probe.run_public(url.rstrip("/"), ca=ca))
    except (httpx.HTTPError, OSError, ValueError) as exc:  # a dead endpoint is a failed check
        sections["api_public"] = _section([Finding("API probe ran", False, f"{type(exc).__name__}: {exc}")])
    if key and erp_url:
        sections["api"] = _section(api_probe.run(erp_url.rstrip("/"), key, ca=ca))
    return sections


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Security report: {report['environment']}",
        "",
        f"{report['generated_at']} · {report['url']} · "
        f"**{report['passed']} passed, {report['failed']} failed**",
        "",
    ]
    for name, findings in report["sections"].items():
        failed = [f for f in findings if not f["ok"]]
        lines += [f"## {name} ({len(findings) - len(failed)}/{len(findings)} passed)", ""]
        lines += ["| | check | detail |", "|---|---|---|"]
        for f in sorted(findings, key=lambda f: f["ok"]):
            detail = str(f["detail"]).replace("|", "\\|").replace("\n", " ")[:200]
            lines.append(f"| {'PASS' if f['ok'] else '**FAIL**'} | {f['check']} | {detail} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="report folder (default .state/security-report/<name>)")
    parser.add_argument("--url", help="the proxy's URL (default https://<photomatrix_domain>/)")
    parser.add_argument("--resolve", help="connect to this address (default: the inventory's proxy host)")
    parser.add_argument("--ca", help="CA file (default: the inventory's photomatrix_ca_file)")
    parser.add_argument("--key-file", help="a bot-scope ERP key: adds the whole API probe (with --erp-url)")
    parser.add_argument("--erp-url", help="a URL that reaches the ERP API itself")
    args = parser.parse_args(argv)
    if not (args.inventory / "hosts.yml").is_file():
        print(f"error: {args.inventory}: no hosts.yml (give an inventory folder)", file=sys.stderr)
        return 2
    variables = inventory_vars(args.inventory)
    url = args.url or f"https://{variables.get('photomatrix_domain', 'localhost')}/"
    ca = args.ca or variables.get("photomatrix_ca_file")
    # Lab inventories name their files from the inventory's folder (Ansible's inventory_dir).
    if ca and "{{" in ca:
        ca = re.sub(r"\{\{\s*inventory_dir\s*\}\}", str(args.inventory.resolve()), ca)
        if "{{" in ca:
            print(
                f"error: photomatrix_ca_file {ca!r} needs Ansible to render it: pass --ca FILE",
                file=sys.stderr,
            )
            return 2
    key = Path(args.key_file).read_text(encoding="utf-8").strip() if args.key_file else None
    sections = audit(
        url, resolve=args.resolve or proxy_address(args.inventory), ca=ca, key=key, erp_url=args.erp_url
    )
    every = [f for findings in sections.values() for f in findings]
    failed = sum(not f["ok"] for f in every)
    report = {
        "environment": args.inventory.name,
        "url": url,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "passed": len(every) - failed,
        "failed": failed,
        "sections": sections,
    }
    out = args.out or ROOT / ".state" / "security-report" / args.inventory.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "report.md").write_text(markdown(report) + "\n", encoding="utf-8")
    for section, findings in sections.items():
        for f in findings:
            print(f"{'PASS' if f['ok'] else 'FAIL'}  [{section}] {f['check']}: {f['detail']}")
    print(f"{report['passed']} passed, {failed} failed; report: {out / 'report.md'} and report.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
