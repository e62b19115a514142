"""Secrets in the repository: detect-secrets over the git-tracked files, against a committed baseline.

    python -m security.secrets_scan [--root DIR]      # exit 1 when a secret not in the baseline appears
    python -m security.secrets_scan --update          # accept the current findings into the baseline

The baseline (.secrets.baseline) lists the reviewed findings (test fixtures, placeholders) by file,
type and hash, never the value; line moves do not matter. A new finding prints its file, line and
type only. Offline: detect-secrets' network-verifying plugins are not used.
"""

from __future__ import annotations

import argparse
import json
import subprocess  # nosec B404 - fixed argv lists, never a shell
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ".secrets.baseline"
TIMEOUT = 600
# Generated files that hold hashes by design: the baseline itself and lock files.
EXCLUDE = r"(^|/)(\.secrets\.baseline|package-lock\.json)$"


def _detect_secrets() -> str:
    return str(Path(sys.executable).with_name("detect-secrets"))


def scan(root: Path) -> dict:
    """detect-secrets' JSON for the git-tracked files under `root`."""
    result = subprocess.run(  # noqa: S603  # nosec B603
        [_detect_secrets(), "scan", "--exclude-files", EXCLUDE, "--disable-filter",
         "detect_secrets.filters.common.is_ignored_due_to_verification_policies"],
        cwd=root, capture_output=True, text=True, timeout=TIMEOUT, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def _keys(results: dict) -> set[tuple[str, str, str]]:
    return {
        (filename, item["type"], item["hashed_secret"])
        for filename, items in results.get("results", {}).items()
        for item in items
    }


def new_findings(root: Path) -> list[str]:
    """`file:line: type` for every finding the baseline does not list."""
    baseline_path = root / BASELINE
    if not baseline_path.exists():
        return [f"{BASELINE}: missing (run python -m security.secrets_scan --update and review it)"]
    known = _keys(json.loads(baseline_path.read_text(encoding="utf-8")))
    found = scan(root)
    return sorted(
        f"{filename}:{item.get('line_number', '?')}: {item['type']}"
        for filename, items in found.get("results", {}).items()
        for item in items
        if (filename, item["type"], item["hashed_secret"]) not in known
    )


def update(root: Path) -> int:
    found = scan(root)
    found.pop("generated_at", None)  # a stable file: it changes only when the findings do
    (root / BASELINE).write_text(json.dumps(found, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{BASELINE}: {sum(len(v) for v in found.get('results', {}).values())} reviewed findings")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository to scan (default: this one)")
    parser.add_argument("--update", action="store_true", help="write the current findings as the baseline")
    args = parser.parse_args(argv)
    if args.update:
        return update(args.root)
    new = new_findings(args.root)
    for line in new:
        print(f"FAIL  new secret: {line}")
    print(f"secrets scan: {len(new)} new finding(s) against {BASELINE}")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
