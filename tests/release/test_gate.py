"""The gate's decisions (stop at the first failure, signed record, rollback of a failed upgrade) and
promotion's refusals, with real processes: steps are real commands, one of them forced to fail, and
deployments run ansible-playbook with a stand-in playbook that records what it was given."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from release import deploy, gate, manifest
from release.__main__ import _gate_and_rollback

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

PROBE = """
- name: Stands in for playbooks/site.yml; records which release it was given
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Record the release
      ansible.builtin.copy:
        dest: "{{ probe_out }}"
        content: "{{ photomatrix_release | to_json }}"
        mode: "0600"
"""


@pytest.fixture(autouse=True)
def gate_key(tmp_path, monkeypatch) -> Path:
    key = tmp_path / "keys" / "gate.key"
    monkeypatch.setenv("RELEASE_GATE_KEY_FILE", str(key))
    return key


def _copy(released: manifest.Manifest, into: Path, version: str) -> manifest.Manifest:
    """Another release of the same images (a new version), in its own directory."""
    shutil.copytree(released.directory / "sbom", into / "sbom")
    data = json.loads(released.path.read_text())
    data["version"] = version
    return manifest.load(manifest.write(into, data))


def _step(name: str, code: str) -> gate.Step:
    return gate.Step(name, [PY, "-c", code])


def test_gate_stops_at_the_first_failure_and_promotion_refuses_it(released, tmp_path):
    m = _copy(released, tmp_path / "r", "v-gate-fail")
    marker = tmp_path / "security-ran"
    steps = [
        _step("verify", "print('verified')"),
        _step("load", "import sys; print('p95 over the SLO'); sys.exit(3)"),
        _step("security", f"open({str(marker)!r}, 'w')"),
    ]
    record = gate.run(m, "staging", steps)
    assert record["passed"] is False
    assert [s["name"] for s in record["steps"]] == ["verify", "load"]
    assert record["steps"][1]["rc"] == 3
    assert record["skipped"] == ["security"]
    assert not marker.exists()
    assert "p95 over the SLO" in (m.directory / record["steps"][1]["log"]).read_text()
    with pytest.raises(gate.GateError, match=r"failed the staging gate \(step load\)"):
        gate.check(m, "staging")


def test_a_passed_gate_is_accepted_only_for_its_manifest_and_untouched(released, tmp_path, gate_key):
    m = _copy(released, tmp_path / "r", "v-gate-pass")
    record = gate.run(
        m, "staging", [_step("verify", "pass"), _step("load", "pass"), _step("security", "pass")]
    )
    assert record["passed"] is True
    assert gate_key.stat().st_mode & 0o777 == 0o600
    assert gate.check(m, "staging")["version"] == "v-gate-pass"
    other = _copy(released, tmp_path / "other", "v-other")
    shutil.copy(gate.record_path(m, "staging"), gate.record_path(other, "staging"))
    with pytest.raises(gate.GateError, match="another manifest"):
        gate.check(other, "staging")
    edited = json.loads(gate.record_path(m, "staging").read_text())
    edited["steps"][1]["rc"] = 0
    edited["version"] = "v-edited"
    gate.record_path(m, "staging").write_text(json.dumps(edited))
    with pytest.raises(gate.GateError, match="signature does not match"):
        gate.check(m, "staging")


def test_promote_refuses_a_release_without_a_passed_staging_gate(released, registry, tmp_path, gate_key):
    m = _copy(released, tmp_path / "r", "v-no-gate")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"hosts": {"prod1": {"container_registry": registry.address}}}})
    )
    command = [PY, "-m", "release", "--state", str(tmp_path / "state"), "promote", "--env", "production",
               "--inventory", str(inventory), "--manifest", str(m.path)]  # fmt: skip
    env = {"RELEASE_GATE_KEY_FILE": str(gate_key), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert result.returncode == 2
    assert "has no staging gate record" in result.stderr
    gate.run(m, "staging", [_step("verify", "import sys; sys.exit(1)")])
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert result.returncode == 2
    assert "failed the staging gate (step verify)" in result.stderr
    assert not (m.directory / "deployments").exists()


def test_a_failed_gate_after_an_upgrade_rolls_back_to_the_previous_release(released, registry, tmp_path):
    first = _copy(released, tmp_path / "r1", "v-first")
    second = _copy(released, tmp_path / "r2", "v-second")
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE)
    seen = tmp_path / "seen.json"
    inventory = tmp_path / "hosts.yml"
    host = {"container_registry": registry.address, "probe_out": str(seen), "ansible_python_interpreter": PY}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"stagehost": host}}}))
    state = tmp_path / "state"
    for m in (first, second):  # the release in place, then the upgrade
        deploy.deploy(m, "staging", inventory, state, registry.ca, playbook=str(playbook))
    assert json.loads(seen.read_text())["version"] == "v-second"
    args = argparse.Namespace(state=state, registry_ca=registry.ca, playbook=str(playbook))
    rc = _gate_and_rollback(args, second, "staging", inventory, [_step("verify", "import sys; sys.exit(2)")])
    assert rc == 1
    assert json.loads(seen.read_text())["version"] == "v-first"  # what runs now
    history = deploy.History(state, "staging").entries()
    assert [(e["version"], e["how"]) for e in history] == [
        ("v-first", "deploy"), ("v-second", "deploy"), ("v-first", "rollback"),
    ]  # fmt: skip


def test_a_failed_first_release_has_nothing_to_roll_back(released, registry, tmp_path):
    only = _copy(released, tmp_path / "r", "v-only")
    args = argparse.Namespace(state=tmp_path / "state", registry_ca=registry.ca, playbook="unused.yml")
    rc = _gate_and_rollback(
        args, only, "staging", tmp_path / "hosts.yml", [_step("verify", "raise SystemExit(1)")]
    )
    assert rc == 1
    assert deploy.History(tmp_path / "state", "staging").entries() == []


def test_the_staging_gate_runs_the_documented_targets(tmp_path):
    steps = gate.default_steps(Path("inventory/staging"), "https://chat.example.test", tmp_path)
    assert [s.argv for s in steps] == [
        ["make", "verify", "INVENTORY=inventory/staging"],
        ["make", "load", "PROFILE=smoke", "TARGET=https://chat.example.test",
         f"LOAD_ARGS=--reports {tmp_path / 'load'}"],
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "security.report", "--inventory", "inventory/staging"],
    ]  # fmt: skip
