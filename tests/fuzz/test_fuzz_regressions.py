"""Fuzzing gates CI: every seed and kept crash input replays cleanly, and a short atheris run of every
target finds nothing new (`make fuzz` is the long run; see security/fuzz/run.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from plugins.processes import ROOT

from security.fuzz.targets import TARGETS

FUZZ = ROOT / "tests" / "fuzz"
KNOWN = {
    line.split()[0]: line.split(maxsplit=1)[1]
    for line in (FUZZ / "regressions" / "KNOWN.txt").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
}


def _inputs() -> list:
    cases = []
    for kind in ("corpus", "regressions"):
        for target in sorted(TARGETS):
            folder = FUZZ / kind / target
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                name = f"{target}/{path.name}"
                marks = [pytest.mark.xfail(reason=KNOWN[name], strict=True)] if name in KNOWN else []
                cases.append(pytest.param(target, path, id=f"{kind}/{name}", marks=marks))
    return cases


@pytest.mark.unit
@pytest.mark.parametrize(("target", "path"), _inputs())
def test_input_replays_without_a_crash(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


@pytest.mark.integration
def test_a_short_coverage_guided_run_finds_no_crash() -> None:
    """`make fuzz` with 8 s per target: about a minute in all (the default long run is 300 s each)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "fuzz", "FUZZ_SECONDS=8"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.count("PASS") == len(TARGETS)
