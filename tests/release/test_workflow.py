"""The delivery workflow (.github/workflows/delivery.yml), read as data: pinned actions, read-only
permissions except the publishing job, timeouts, one deployment at a time per environment, the
production environment (required reviewers), artifacts kept when a step failed, the make targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_full_sha(path):
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)", path.read_text(), flags=re.M)
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), action


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_read_only_by_default_with_timeouts(path):
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 120, name


def test_delivery_stages_environments_and_artifacts():
    workflow = _load(ROOT / ".github" / "workflows" / "delivery.yml")
    jobs = workflow["jobs"]
    writers = {name for name, job in jobs.items() if "permissions" in job}
    assert writers == {"publish"}
    assert jobs["publish"]["permissions"] == {"contents": "write"}
    assert jobs["production"]["environment"] == "production"
    assert jobs["staging"]["environment"] == "staging"
    assert "staging" in jobs["production"]["needs"]
    for env in ("staging", "production"):
        assert jobs[env]["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        uploads = [s for s in jobs[env]["steps"] if "upload-artifact" in s.get("uses", "")]
        assert uploads
        assert all(s.get("if") == "always()" for s in uploads)
    runs = "\n".join(s.get("run", "") for job in jobs.values() for s in job["steps"])
    targets = [
        "make release",
        "make deploy ENV=staging",
        "make gate ENV=staging",
        "make promote ENV=production",
    ]
    for target in [*targets, "make release-page"]:
        assert target in runs
    # The rehearsal against a lab of the runner: make test-delivery, its reports kept even when it failed.
    rehearsal = jobs["rehearsal"]
    assert "make test-delivery" in "\n".join(s.get("run", "") for s in rehearsal["steps"])
    assert [s.get("if") for s in rehearsal["steps"] if "upload-artifact" in s.get("uses", "")] == ["always()"]
    # Promotion deploys the manifest staging gated, never a new build.
    production_runs = "\n".join(s.get("run", "") for s in jobs["production"]["steps"])
    assert "make release " not in production_runs
    assert "needs.release.outputs.manifest" in production_runs
