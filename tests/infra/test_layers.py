"""The documented ways to run the playbooks, on the stack `make up` deployed (run by `make test-infra`),
which together are the second run that must report `changed=0`:

- `ansible-playbook playbooks/site.yml --check --diff` reports no change and no failure: the whole site,
  its plays sharing their facts as in `make up`, would change nothing;
- every layer playbook runs alone (`playbooks/bot.yml` included), for real, and changes nothing: these
  are site.yml's plays one by one, every one of them (the list is read from site.yml's imports);
- `ansible-playbook playbooks/site.yml --tags rocketchat` works (no fact from another play is needed),
  and `--tags certificates` reaches the certificate tasks;
- no secret is in any container's configuration (`docker inspect`).

(A further whole `site.yml` run would repeat the layers' runs: 229-514 s on these machines, once the
slowest step of `make test-infra`.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from plugins.infra import docker_inspect

from ops.ansible_env import json_env

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


def site_layers() -> list[str]:
    """The layer playbooks site.yml imports, in order (its summary play aside)."""
    site = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    imported = [Path(entry["ansible.builtin.import_playbook"]).stem for entry in site]
    return [name for name in imported if name != "summary"]


# Read from site.yml, so a layer added there is run alone here too.
LAYERS = site_layers()


@pytest.fixture(autouse=True)
def _deployed() -> None:
    if os.environ.get("PHOTOMATRIX_IDEMPOTENCE") != "1":
        pytest.skip("runs through `make test-infra` after `make up` (PHOTOMATRIX_IDEMPOTENCE=1)")


def playbook(*args: str) -> tuple[dict, float]:
    env = {
        **json_env("ansible.posix.json"),
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
    }
    started = time.monotonic()
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-6000:]
    return json.loads(run.stdout), elapsed


def changed_tasks(report: dict) -> list[str]:
    return [
        f"{play['play']['name']} / {task['task']['name']}"
        for play in report["plays"]
        for task in play["tasks"]
        if any(result.get("changed") for result in task["hosts"].values())
    ]


def ran_tasks(report: dict) -> set[str]:
    """The names of the tasks that ran, without the "<role> : " prefix the json callback gives role tasks."""
    return {task["task"]["name"].split(" : ", 1)[-1] for play in report["plays"] for task in play["tasks"]}


def assert_quiet(report: dict) -> None:
    assert report["stats"], "no hosts in the report"
    assert all(stats["failures"] == 0 and stats["unreachable"] == 0 for stats in report["stats"].values())
    assert all(stats["changed"] == 0 for stats in report["stats"].values()), changed_tasks(report)


@pytest.mark.timeout(900)
def test_check_diff_on_the_deployed_stack_reports_nothing() -> None:
    report, elapsed = playbook("playbooks/site.yml", "--check", "--diff")
    print(f"site.yml --check --diff: {elapsed:.1f} s")
    assert_quiet(report)


@pytest.mark.timeout(900)
def test_tags_certificates_reaches_the_certificate_tasks() -> None:
    report, _ = playbook("playbooks/site.yml", "--tags", "certificates")
    assert_quiet(report)
    ran = ran_tasks(report)
    assert "Sign the server certificate with the internal CA (renewed before expiry)" in ran


@pytest.mark.timeout(900)
def test_tags_rocketchat_runs_without_the_images_play() -> None:
    report, elapsed = playbook("playbooks/site.yml", "--tags", "rocketchat")
    print(f"site.yml --tags rocketchat: {elapsed:.1f} s")
    assert_quiet(report)
    ran = ran_tasks(report)
    assert "Wait until the container is healthy (/livez)" in ran


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_playbook_runs_alone(layer: str) -> None:
    report, elapsed = playbook(f"playbooks/{layer}.yml")
    print(f"playbooks/{layer}.yml alone: {elapsed:.1f} s")
    assert_quiet(report)


# Files in the secrets directories that name something rather than grant access: a user id is
# configuration (the bot passes its own in its environment), not a secret.
NOT_SECRET_SUFFIXES = ("-user-id",)


def secret_values() -> dict[str, str]:
    """Every secret file of the deployment (host side and the controller-side store)."""
    roots = [Path("/srv/photomatrix/secrets")]
    found = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.name.endswith(NOT_SECRET_SUFFIXES):
                continue
            if path.is_file() and path.stat().st_size < 4096:
                value = path.read_text(errors="replace").strip()
                if len(value) >= 16:
                    found[str(path)] = value
    return found


def test_no_secret_in_any_container_configuration() -> None:
    names = subprocess.run(
        ["docker", "ps", "--filter", "name=photomatrix-", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert names
    secrets = secret_values()
    assert secrets, "no secret files found: is the stack deployed?"
    leaks = []
    for name in names:
        config = json.dumps(docker_inspect(name)["Config"])
        leaks += [f"{name}: {path}" for path, value in secrets.items() if value in config]
    assert not leaks
