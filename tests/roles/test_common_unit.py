"""roles/common stays the one place that waits for a container's health and the one that makes a service's
certificate from the internal CA: no role polls Docker's health state itself, every role that runs a
container with a health check waits through wait_healthy, no role but the CA's own signs, and the entry
points' argument specs document exactly their defaults (literal values)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROLES = Path(__file__).resolve().parents[2] / "roles"


def tasks(path: Path) -> list[dict]:
    """Every task of a task file, blocks opened."""
    found = []
    stack = list(yaml.safe_load(path.read_text(encoding="utf-8")) or [])
    while stack:
        task = stack.pop()
        found.append(task)
        for key in ("block", "rescue", "always"):
            stack.extend(task.get(key, []))
    return found


# Run as a handler (the bot's rolling restart): Ansible refuses include_role there.
HANDLER_TASKS = {"chatbot/tasks/restart.yml"}


def test_no_role_polls_the_health_state_itself() -> None:
    copies = [
        str(path.relative_to(ROLES))
        for path in sorted(ROLES.glob("*/tasks/*.yml"))
        if path.parent.parent.name != "common" and "State.Health" in path.read_text(encoding="utf-8")
    ]
    # The bot's restart handler, which cannot include roles/common, runs the bot's readiness command.
    assert not copies, "wait through roles/common (tasks_from: wait_healthy) instead"


def test_no_handler_includes_a_role() -> None:
    """Ansible refuses include_role/import_role in a handler, also in task files a handler includes."""
    roles = {"ansible.builtin.include_role", "ansible.builtin.import_role"}
    for name in HANDLER_TASKS:
        for task in tasks(ROLES / name):
            assert not roles & set(task), task["name"]


def test_every_container_with_a_health_check_is_waited_for_through_common() -> None:
    waits: dict[str, list[dict]] = {}
    checked: set[str] = set()
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        role = path.parent.parent.name
        for task in tasks(path):
            run = task.get("community.docker.docker_container") or {}
            if isinstance(run, dict) and run.get("healthcheck"):
                checked.add(role)
            include = task.get("ansible.builtin.include_role") or {}
            if include.get("name") == "common" and include.get("tasks_from") == "wait_healthy":
                waits.setdefault(role, []).append(task)
    assert checked, "no container with a health check found"
    assert checked <= set(waits), f"no wait_healthy in {sorted(checked - set(waits))}"
    for role, calls in waits.items():
        for call in calls:
            assert {"common_container", "common_timeout"} <= set(call.get("vars", {})), (role, call["name"])


def test_the_argument_specs_document_the_defaults_literally() -> None:
    defaults = yaml.safe_load((ROLES / "common/defaults/main.yml").read_text(encoding="utf-8"))
    specs = yaml.safe_load((ROLES / "common/meta/argument_specs.yml").read_text(encoding="utf-8"))
    entries = {"wait_healthy", "tls_certificate", "cron_daemon", "cron_daemon_stop"}
    assert set(specs["argument_specs"]) == entries
    options = {
        name: spec for entry in specs["argument_specs"].values() for name, spec in entry["options"].items()
    }
    required = {name for name, spec in options.items() if spec.get("required")}
    assert "common_container" in required
    assert "common_tls_changed_fact" in required
    assert set(options) - required == set(defaults)
    for name, value in defaults.items():
        assert options[name]["default"] == value, name
        assert "{{" not in str(value), name
        assert options[name]["description"], name


def test_only_the_ca_role_and_common_make_keys_and_sign() -> None:
    """One mechanism for every internal certificate (roles/common, tls_certificate): the proxy role makes
    the internal CA itself; no other role makes a key or signs on its own."""
    signing = {"community.crypto.openssl_privatekey", "community.crypto.x509_certificate_pipe",
               "community.crypto.x509_certificate"}  # fmt: skip
    found = set()
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        for task in tasks(path):
            if signing & set(task):
                found.add(str(path.relative_to(ROLES)))
    assert found == {
        "common/tasks/tls_certificate.yml",
        "tls_proxy/tasks/ca.yml",
        "tls_proxy/tasks/cert_selfsigned.yml",
    }, found


def test_every_role_that_needs_cron_starts_this_machines_own_through_the_entry_point() -> None:
    """`pidof cron` also sees a container's cron on a Docker host (the lab hosts' in CI), which left this
    machine's cron unstarted: the roles that write cron entries call the common entry point cron_daemon,
    which counts only a cron in this machine's own PID namespace."""
    callers = set()
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        for task in tasks(path):
            for module in ("ansible.builtin.command", "ansible.builtin.shell"):
                assert "pidof" not in str(task.get(module, "")), (path, task.get("name"))
            # Under systemd too, the entry point starts cron: no role keeps a copy of that branch.
            service = task.get("ansible.builtin.systemd_service") or {}
            if service.get("name") == "cron":
                assert path.parent.parent.name == "common", (path, task.get("name"))
            include = task.get("ansible.builtin.include_role") or {}
            if include.get("name") == "common" and include.get("tasks_from") == "cron_daemon":
                callers.add(path.parent.parent.name)
    assert callers == {"backup", "monitoring", "tls_proxy"}
    daemon = (ROLES / "common/tasks/cron_daemon.yml").read_text(encoding="utf-8")
    assert "pgrep --exact --ns $$ --nslist pid cron" in daemon
    assert "/run/systemd/system" in daemon
