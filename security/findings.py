"""One result line of a security scan, shared by every scan in this folder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.check}: {self.detail}"


def report(findings: list[Finding]) -> int:
    """Print every finding and a closing count; the exit code is 1 when any check failed."""
    for finding in findings:
        print(finding)
    failed = sum(not f.ok for f in findings)
    print(f"{len(findings) - failed} passed, {failed} failed")
    return 1 if failed else 0
