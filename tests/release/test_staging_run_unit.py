"""What the staging run accepts as the forced gate failure of release 3 (no lab, no registry)."""

from __future__ import annotations

import os
import subprocess  # nosec B404
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from release import staging_run
from release.staging_run import LEAK_CAUGHT_BY, StagingRunError, gate_caught

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS = SimpleNamespace(version="v1.r2")


def _caught(tmp_path: Path, by: str = "gate step verify", log_text: str = "", to: str = "v1.r2") -> dict:
    log = tmp_path / "gate-staging" / "verify.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(log_text)
    # As gate records it: relative to the release's directory.
    return {"outcome": "rolled back", "caught": {"by": by, "log": "gate-staging/verify.log", "rc": 2},
            "rolled_back_to": to}  # fmt: skip


def test_the_gate_failing_at_the_environment_check_and_the_rollback_are_accepted(tmp_path):
    text = f"FAILED tests/infra/test_hosts.py::{LEAK_CAUGHT_BY}[stage]\n"
    gate_caught(_caught(tmp_path, log_text=text), PREVIOUS, tmp_path)


def test_a_leaky_release_that_passed_the_gate_is_an_error(tmp_path):
    with pytest.raises(StagingRunError, match="passed the gate"):
        gate_caught({"outcome": "passed", "version": "v1.r3"}, PREVIOUS, tmp_path)


def test_refused_by_the_upgrade_instead_of_the_gate_is_an_error(tmp_path):
    with pytest.raises(StagingRunError, match="not by the gate's verify"):
        gate_caught(_caught(tmp_path, by="upgrade"), PREVIOUS, tmp_path)


def test_verify_failing_at_another_test_is_an_error(tmp_path):
    caught = _caught(tmp_path, log_text="FAILED tests/infra/test_tls.py::test_certificate - boom\n")
    with pytest.raises(StagingRunError, match=LEAK_CAUGHT_BY):
        gate_caught(caught, PREVIOUS, tmp_path)


def test_rolled_back_to_another_release_is_an_error(tmp_path):
    caught = _caught(tmp_path, log_text=LEAK_CAUGHT_BY, to="v1")
    with pytest.raises(StagingRunError, match=r"not v1\.r2"):
        gate_caught(caught, PREVIOUS, tmp_path)


def test_the_leak_is_an_env_line_in_the_erp_image_only_and_the_check_exists():
    assert set(staging_run.LEAKY) == {"erp"}
    assert staging_run.LEAKY["erp"].startswith("ENV ERP_ALERT_WEBHOOK_URL=")
    # The name the gate must catch is one the verify check refuses, and that check is where the gate looks.
    hosts = (Path(__file__).resolve().parents[1] / "infra" / "test_hosts.py").read_text()
    assert f"def {LEAK_CAUGHT_BY}(" in hosts
    assert '"ERP_ALERT_WEBHOOK_URL",' in hosts  # one of SECRET_NAMES


def _rollback_log(tmp_path: Path, layers: list[str]) -> Path:
    """A log as ansible-playbook writes it (the project's ansible.cfg: YAML results) with the messages of
    rollback.yml's layers left alone; a long host name makes the YAML fold them."""
    book = tmp_path / "book.yml"
    host = "stage-with-a-rather-long-host-name-so-the-line-folds.example.internal"
    said = "already on the recorded images: not rolled back."
    tasks = [
        {"name": f"Say {layer}", "ansible.builtin.debug": {"msg": f"{host} ({layer}): {said}"}}
        for layer in layers
    ]
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(book)],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    log = tmp_path / "rollback.log"
    log.write_text(done.stdout)
    return log


def test_the_layers_a_rollback_left_alone_are_read_from_its_log(tmp_path):
    log = _rollback_log(tmp_path, list(staging_run.LEFT_ALONE))
    assert staging_run.layers_left_alone(log) == set(staging_run.LEFT_ALONE)
    caught = {"version": "v1.r3", "rollback_log": str(log), "rollback_seconds": 99.0}
    assert staging_run.rolled_back_only_the_erp(caught)["left_alone"] == sorted(staging_run.LEFT_ALONE)


@pytest.mark.parametrize("layers", [["bot", "proxy", "node exporter"], [*staging_run.LEFT_ALONE, "ERP API"]])
def test_a_rollback_that_rolled_more_or_left_the_erp_alone_is_an_error(tmp_path, layers):
    caught = {"version": "v1.r3", "rollback_log": str(_rollback_log(tmp_path, layers)), "rollback_seconds": 9}
    with pytest.raises(StagingRunError, match="ERP API alone"):
        staging_run.rolled_back_only_the_erp(caught)


def _every_layer_log(tmp_path: Path, ran: list[str], skipped: list[str], said: str) -> Path:
    """A rollback log as ansible-playbook writes it: SAID as the play's finding, then rollback.yml's task
    `Run the role <role>` for each role, included (RAN) or skipped (SKIPPED), as tasks/upgrade_host.yml
    runs it."""
    for role in ran + skipped:
        tasks = tmp_path / "roles" / role / "tasks"
        tasks.mkdir(parents=True, exist_ok=True)
        (tasks / "main.yml").write_text(
            yaml.safe_dump([{"ansible.builtin.debug": {"msg": f"{role} deployed"}}])
        )
    tasks = [{"name": "Say what rolls back here", "ansible.builtin.debug": {"msg": said}}]
    for role in ran + skipped:
        tasks.append({
            "name": f"Run the role {role}", "ansible.builtin.include_role": {"name": role},
            "when": role in ran,
        })  # fmt: skip
    book = tmp_path / "book.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(book)],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_ROLES_PATH": str(tmp_path / "roles")},
    )  # fmt: skip
    log = tmp_path / "rollback-every-layer.log"
    log.write_text(done.stdout)
    return log


EVERY = "stage: every container runs its recorded image (every layer re-deployed: rollback_every_layer)."
ROLES = ["erp_api", "chatbot", "rocketchat", "tls_proxy", "monitoring"]


def test_a_rollback_of_every_layer_is_read_from_its_log(tmp_path):
    log = _every_layer_log(tmp_path, ROLES, [], EVERY)
    assert staging_run.roles_run(log) == (set(ROLES), set())
    assert staging_run.every_layer_findings(log) == {"roles_run": sorted(ROLES)}


@pytest.mark.parametrize(("skipped", "said", "problem"), [
    (["chatbot"], EVERY, r"skipped \['chatbot'\]"),
    ([], "stage: not on the recorded images: photomatrix-erp-api.", "did not find every container"),
    ([], "stage: every container runs its recorded image.", "did not say that every layer"),
])  # fmt: skip
def test_a_rollback_that_skipped_a_layer_or_had_stale_containers_is_an_error(
    tmp_path, skipped, said, problem
):
    ran = [role for role in ROLES if role not in skipped]
    log = _every_layer_log(tmp_path, ran, skipped, said)
    with pytest.raises(StagingRunError, match=problem):
        staging_run.every_layer_findings(log)


def test_the_rollback_playbook_says_what_the_staging_run_reads():
    book = (ROOT / "playbooks" / "rollback.yml").read_text()
    assert "every container runs its recorded image" in book
    assert "(every layer re-deployed: rollback_every_layer)" in book
    host = (ROOT / "playbooks" / "tasks" / "upgrade_host.yml").read_text()
    assert "name: Run the role {{ upgrade_role }}" in host
    assert "ROLLBACK_ARGS" in (ROOT / "Makefile").read_text()
