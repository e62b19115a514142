"""The gate a release passes in staging before it may be promoted, and its signed record.

The gate is a list of steps, each a documented command (make verify, make load PROFILE=smoke, the
read-only audit of make security: python -m security.report), run in order; the first failure stops
it. The result is written next to the manifest as gate-<env>.json with the manifest's sha256 and an
HMAC-SHA256 signature by a key that stays on the machine that runs the pipeline
(RELEASE_GATE_KEY_FILE, default /etc/photomatrix/release/gate.key, created 0600 on first use).
`make promote` accepts a manifest only with a valid, passed staging record for exactly that manifest.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess  # nosec B404
import time
from dataclasses import dataclass, field
from pathlib import Path

from release.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KEY_FILE = Path("/etc/photomatrix/release/gate.key")
STEP_TIMEOUT = 3600


class GateError(RuntimeError):
    """The gate failed, or its record is missing, unsigned or for another manifest."""


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    reports: list[Path] = field(default_factory=list)  # copied into the gate's directory afterwards
    timeout: float = STEP_TIMEOUT
    cwd: Path = ROOT  # where it runs: the work tree, or the release's own tree


def default_steps(inventory: Path, target: str, out: Path, tree: Path | None = None) -> list[Step]:
    """The staging gate: read-only verification, the smoke load profile against its SLOs, the audit.

    TREE: the release's own tree (a `git archive` of its commit, release.deploy.release_tree): the
    checks that ship with the release run there, with this work tree's virtualenv."""
    where = tree or ROOT
    # This work tree's virtualenv as it is: never re-installed from the release's requirements (-o).
    venv = [] if tree is None else [f"VENV={ROOT / '.venv'}", "-o", str(ROOT / ".venv" / ".installed")]
    return [
        Step("verify", ["make", *venv, "verify", f"INVENTORY={inventory}"], cwd=where),
        # The load generator and its SLOs are this work tree's tooling (they judge, they do not ship).
        Step(
            "load",
            ["make", "load", "PROFILE=smoke", f"TARGET={target}", f"LOAD_ARGS=--reports {out / 'load'}"],
        ),
        # make security's read-only audit of the environment (TLS, sslyze, the API probe's public checks),
        # a judge like the load generator: this work tree's. Its repository checks (bandit, tests/security)
        # are stage 1's, `make test` of the same commit.
        Step(
            "security",
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "security.report", "--inventory", str(inventory)],
            reports=[ROOT / ".state" / "security-report" / inventory.name],
        ),
    ]


def key_file() -> Path:
    return Path(os.environ.get("RELEASE_GATE_KEY_FILE", str(DEFAULT_KEY_FILE)))


def _key(create: bool) -> bytes:
    path = key_file()
    if not path.is_file():
        if not create:
            raise GateError(f"no gate key at {path}: this machine never ran a gate")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


def _canonical(record: dict) -> bytes:
    body = {k: v for k, v in record.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(record: dict) -> str:
    return hmac.new(_key(create=True), _canonical(record), hashlib.sha256).hexdigest()


def record_path(manifest: Manifest, env: str) -> Path:
    return manifest.directory / f"gate-{env}.json"


def run(manifest: Manifest, env: str, steps: list[Step]) -> dict:
    """Run STEPS in order until one fails; write and return the signed record."""
    out = manifest.directory / f"gate-{env}"
    out.mkdir(parents=True, exist_ok=True)
    results = []
    passed = True
    for step in steps:
        log = out / f"{step.name}.log"
        print(f"gate {env}: {step.name}: {' '.join(step.argv)}", flush=True)
        started = time.monotonic()
        with log.open("w") as handle:
            try:
                rc = subprocess.run(  # noqa: S603  # nosec B603
                    step.argv,
                    cwd=step.cwd,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    timeout=step.timeout,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = 124
                handle.write(f"\ngate: {step.name} did not finish within {step.timeout:.0f} s\n")
            except OSError as exc:
                rc = 127
                handle.write(f"\ngate: {step.name} could not start: {exc}\n")
        reports = []
        for report in step.reports:
            if report.exists():
                dest = out / f"{step.name}-report"
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(report, dest) if report.is_dir() else shutil.copy2(report, dest)
                reports.append(dest.relative_to(manifest.directory).as_posix())
        results.append(
            {
                "name": step.name,
                "command": step.argv,
                "rc": rc,
                "seconds": round(time.monotonic() - started, 1),
                "log": log.relative_to(manifest.directory).as_posix(),
                "reports": reports,
            }
        )
        print(f"gate {env}: {step.name}: {'passed' if rc == 0 else f'FAILED (exit {rc})'}", flush=True)
        if rc != 0:
            passed = False
            break
    record = {
        "environment": env,
        "manifest_sha256": manifest.sha256,
        "version": manifest.version,
        "commit": manifest.commit,
        "passed": passed,
        "steps": results,
        "skipped": [s.name for s in steps[len(results) :]],
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    record["signature"] = sign(record)
    record_path(manifest, env).write_text(json.dumps(record, indent=2) + "\n")
    return record


def check(manifest: Manifest, env: str = "staging") -> dict:
    """The passed, signed gate record of ENV for exactly this manifest, else GateError."""
    path = record_path(manifest, env)
    if not path.is_file():
        raise GateError(
            f"release {manifest.version} has no {env} gate record ({path.name}): run the gate first"
        )
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise GateError(f"{path}: unreadable gate record") from exc
    expected = hmac.new(_key(create=False), _canonical(record), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(str(record.get("signature", "")), expected):
        raise GateError(f"{path}: the signature does not match (edited, or signed by another machine's key)")
    if record.get("manifest_sha256") != manifest.sha256 or record.get("environment") != env:
        raise GateError(f"{path}: the record is for another manifest or environment")
    if record.get("passed") is not True:
        failed = next((s["name"] for s in record.get("steps", []) if s.get("rc") != 0), "?")
        raise GateError(f"release {manifest.version} failed the {env} gate (step {failed})")
    return record
