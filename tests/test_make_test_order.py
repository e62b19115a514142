"""`make test`'s order, run for real with stand-ins: lint beside the images' build, then pytest in the
foreground and the deployment cycles (test-infra, test-multi, test-delivery) in the background once both
the build and lint are through; a failed lint runs no test and no cycle.

The Makefile runs in a folder of its own whose Makefile includes a copy of it and replaces the targets
with ones that log to a file, and BIN points at stand-ins for pytest and ansible-playbook (a sub-make
reads the Makefile of its folder, so nothing of the real suites can start)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess  # nosec B404
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STANDINS = """
lint: ; @echo lint-start >> events; sleep 2; echo lint-end >> events; exit $(LINT_RC)
test-infra: ; @echo infra >> events
test-delivery: ; @echo delivery >> events
test-multi: ; @echo multi >> events; $(PY) -c "$(BURN)"
BURN = import time; t = time.process_time(); exec('while time.process_time() - t < 0.3: pass')
"""


def make_test(tmp_path: Path, lint_rc: int) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile.real")
    for name in ("requirements.txt", "pyproject.toml", ".venv/.installed"):  # `setup` is up to date
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    (tmp_path / "Makefile").write_text("include Makefile.real\n" + STANDINS, encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {
        # Long enough for the cycles to end first: their CPU must not land in pytest's line.
        "pytest": "sleep 3; echo pytest >> events",
        "ansible-playbook": "echo images-start >> events; sleep 1; echo images-end >> events",
    }.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    done = subprocess.run(
        ["make", "--no-print-directory", "test", f"BIN={bin_dir}", f"PY={sys.executable}",
         f"LINT_RC={lint_rc}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "MAKEFLAGS": ""},
    )  # fmt: skip
    return done, (tmp_path / "events").read_text(encoding="utf-8").split()


def seconds(found: re.Match[str]) -> float:
    """User plus system seconds of a `CPU of …` line."""
    return int(found[1]) * 60 + float(found[2]) + int(found[3]) * 60 + float(found[4])


def test_lint_runs_beside_the_build_and_the_cycles_wait_for_both(tmp_path: Path) -> None:
    done, events = make_test(tmp_path, 0)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(events) == sorted(
        ["images-start", "images-end", "lint-start", "lint-end", "pytest", "infra", "delivery", "multi"]
    )
    assert events.index("images-start") < events.index("lint-end")  # side by side
    for cycle in ("infra", "delivery", "multi"):
        assert events.index(cycle) > events.index("lint-end")
        assert events.index(cycle) > events.index("images-end")
    assert events.index("pytest") > events.index("lint-end")
    # The machine's CPUs sampled beside it all (ops/cpu_busy.py), the whole run summed up at the end.
    assert "== the machine's CPUs" in done.stdout, done.stdout[-2000:]
    assert "whole run" in done.stdout.split("== the machine's CPUs", 1)[1], done.stdout[-2000:]
    assert "busy" in (tmp_path / ".state" / "cpu-busy.log").read_text(encoding="utf-8")
    # Each stream's own CPU (bash's times: its processes on this machine), in its log and the summary.
    for stream in ("make test-infra", "make test-multi", "make test-delivery", "lint", "pytest"):
        line = rf"^CPU of {stream}: user (\d+)m([\d.]+)s, system (\d+)m([\d.]+)s"
        found = re.search(line, done.stdout, re.MULTILINE)
        assert found, stream
        if stream == "make test-multi":  # its stand-in burns 0.3 s: counted (its children's, not a fork's)
            assert seconds(found) >= 0.25, found[0]
        if stream == "pytest":  # its own processes only, not the cycles bash reaped meanwhile
            assert events.index("multi") < events.index("pytest")
            assert seconds(found) < 0.2, found[0]


@pytest.mark.parametrize("lint_rc", [1])
def test_a_failed_lint_runs_no_test_and_no_cycle(tmp_path: Path, lint_rc: int) -> None:
    done, events = make_test(tmp_path, lint_rc)
    assert done.returncode != 0
    assert "lint failed" in done.stdout
    assert not {"pytest", "infra", "delivery", "multi"} & set(events), events
