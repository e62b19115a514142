"""Mozilla TLS profile compliance with sslyze (default profile: "intermediate").

    python -m security.sslyze_check https://chat.example.com [--resolve ADDRESS] [--ca ca.pem]
        [--profile intermediate]

sslyze 6 pins cryptography < 47 and the project pins a newer one, so sslyze lives in its own venv,
`.state/tools/sslyze`, made on first use from the exact pins in security/sslyze-requirements.txt
(PyPI is the only network it needs; `ensure_tool` says so when it is unreachable). The scan itself
talks only to the endpoint given. Exit 1 when the endpoint is not compliant.
"""

from __future__ import annotations

import argparse
import json
import subprocess  # nosec B404 - fixed argv lists, never a shell
import sys
from pathlib import Path
from urllib.parse import urlsplit

from security.findings import Finding, report

ROOT = Path(__file__).resolve().parent.parent
TOOL_DIR = ROOT / ".state" / "tools" / "sslyze"
REQUIREMENTS = Path(__file__).with_name("sslyze-requirements.txt")
SCANNER = Path(__file__).with_name("sslyze_scan.py")
STAMP = TOOL_DIR / ".installed"
SCAN_TIMEOUT = 300


class ToolUnavailable(RuntimeError):
    """sslyze could not be installed (no PyPI): the caller decides whether that fails or skips loudly."""


def tool_python() -> Path:
    return TOOL_DIR / "bin" / "python"


def ensure_tool() -> Path:
    """The tool venv's Python, installing sslyze there when missing or when the pins changed."""
    pins = REQUIREMENTS.read_text(encoding="utf-8")
    if STAMP.exists() and STAMP.read_text(encoding="utf-8") == pins and tool_python().exists():
        return tool_python()
    try:
        if not tool_python().exists():
            venv = [sys.executable, "-m", "venv", str(TOOL_DIR)]
            subprocess.run(venv, check=True, timeout=300)  # noqa: S603  # nosec B603
        subprocess.run(  # noqa: S603  # nosec B603
            [str(tool_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--timeout", "60", "-r", str(REQUIREMENTS)],
            check=True, timeout=900, capture_output=True, text=True,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", "") or ""
        raise ToolUnavailable(f"cannot install sslyze from PyPI: {output.strip()[-500:]}") from None
    STAMP.write_text(pins, encoding="utf-8")
    return tool_python()


def scan(
    host: str, port: int, *, address: str | None = None, ca: str | None = None, profile: str = "intermediate"
) -> dict:
    """The scanner's JSON result: compliant, issues, curves, error."""  # fmt: skip
    python = ensure_tool()
    result = subprocess.run(  # noqa: S603  # nosec B603
        [str(python), str(SCANNER), host, str(port), address or host, profile, ca or ""],
        capture_output=True, text=True, timeout=SCAN_TIMEOUT, check=False,
    )  # fmt: skip
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {
            "compliant": False,
            "issues": {},
            "curves": [],
            "error": (result.stderr or "no output")[-800:],
        }


def check(
    url: str, *, resolve: str | None = None, ca: str | None = None, profile: str = "intermediate"
) -> list[Finding]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"not an https URL: {url!r}")
    result = scan(parts.hostname, parts.port or 443, address=resolve, ca=ca, profile=profile)
    if result.get("error"):
        return [Finding(f"Mozilla {profile} profile (sslyze)", False, str(result["error"]))]
    issues = result.get("issues") or {}
    findings = [
        Finding(
            f"Mozilla {profile} profile (sslyze)",
            bool(result.get("compliant")),
            "compliant" if result.get("compliant") else f"{len(issues)} issue(s)",
        )
    ]
    findings += [Finding(f"sslyze {name}", False, text) for name, text in sorted(issues.items())]
    findings.append(
        Finding("TLS curves offered", "tls_curves" not in issues, ", ".join(result.get("curves", [])))
    )
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--resolve", help="connect to this address instead of resolving the host")
    parser.add_argument("--ca", help="CA certificate the chain must verify against (a private CA)")
    parser.add_argument("--profile", default="intermediate", choices=["modern", "intermediate", "old"])
    args = parser.parse_args(argv)
    try:
        findings = check(args.url, resolve=args.resolve, ca=args.ca, profile=args.profile)
    except ToolUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return report(findings)


if __name__ == "__main__":
    sys.exit(main())
