"""Run the fuzz targets with atheris (libFuzzer), one process per target; keep crashes as regressions.

    python -m security.fuzz.run [--target NAME ...] [--seconds 15]

Seeds: tests/fuzz/corpus/<target>/ (committed). The inputs a run finds are kept in
.state/fuzz/corpus/<target>/ (so the next run starts from them). A crashing input is copied to
tests/fuzz/regressions/<target>/ (commit it: tests/fuzz/test_fuzz_regressions.py replays it for
ever) and the run exits 1. Offline: nothing here uses the network.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess  # nosec B404 - fixed argv lists, never a shell
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "fuzz" / "corpus"
REGRESSIONS = ROOT / "tests" / "fuzz" / "regressions"
WORK = ROOT / ".state" / "fuzz"


def worker(target: str, libfuzzer_args: list[str]) -> None:
    """Inside the target's own process: instrument the code under test, then fuzz until told to stop."""
    import importlib

    import atheris

    from security.fuzz import targets

    with atheris.instrument_imports(include=["bot", "erp", "rocketchat_sim"]):
        for module in targets.INSTRUMENTED[target]:
            importlib.import_module(module)
    function = targets.TARGETS[target]
    function(b"")  # imports and one-time set-up happen outside the measured runs
    atheris.Setup([sys.argv[0], *libfuzzer_args], function)
    atheris.Fuzz()


def run_target(target: str, seconds: int) -> tuple[bool, list[Path], str]:
    """Fuzz one target for `seconds`; (passed, crash files kept, libFuzzer's last lines)."""
    corpus = WORK / "corpus" / target
    crashes = WORK / "crashes" / target
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    seeds = SEEDS / target
    before = set(crashes.iterdir())
    args = [
        str(corpus),
        *([str(seeds)] if seeds.is_dir() else []),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-max_len=4096",
        "-print_final_stats=1",
    ]
    command = [sys.executable, "-m", "security.fuzz.run", "--worker", target, "--", *args]
    result = subprocess.run(  # noqa: S603  # nosec B603
        command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    new = sorted(set(crashes.iterdir()) - before)
    kept = []
    for crash in new:
        destination = REGRESSIONS / target / crash.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(crash, destination)
        kept.append(destination)
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-12:])
    return result.returncode == 0 and not new, kept, tail


def main(argv: list[str] | None = None) -> int:
    from security.fuzz.targets import TARGETS

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: all")
    parser.add_argument("--seconds", type=int, default=15, help="per target")
    args = parser.parse_args(argv)
    failed = 0
    for target in args.target or list(TARGETS):
        started = time.monotonic()
        passed, kept, tail = run_target(target, args.seconds)
        runs = next(
            (line.split()[-1] for line in tail.splitlines() if "stat::number_of_executed_units" in line), "?"
        )
        print(f"{'PASS' if passed else 'FAIL'}  {target}: {runs} runs in {time.monotonic() - started:.0f} s")
        for path in kept:
            print(f"      crash kept as a regression input: {path.relative_to(ROOT)}")
        if not passed:
            failed += 1
            print("      " + tail.replace("\n", "\n      "))
    print(f"fuzzing: {len(TARGETS) if not args.target else len(args.target)} target(s), {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
