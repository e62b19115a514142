"""The delivery workflow (.github/workflows/delivery.yml), read as data: pinned actions, read-only
permissions except the publishing job, timeouts, one deployment at a time per environment, the
production environment (required reviewers), artifacts kept when a step failed, the make targets."""

from __future__ import annotations

import re
import shutil
import subprocess
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


LINT = Path(__file__).resolve().parent / "workflow_lint"


@pytest.fixture(scope="module")
def action_validator() -> Path:
    """action-validator (npm, pinned in workflow_lint/package-lock.json): GitHub's workflow schema."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to check the workflows against GitHub's schema")
    tool = LINT / "node_modules" / ".bin" / "action-validator"
    stamp = LINT / "node_modules" / ".package-lock.json.src"
    lock = (LINT / "package-lock.json").read_bytes()
    if not tool.exists() or not stamp.exists() or stamp.read_bytes() != lock:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=LINT, check=True, timeout=300,
        )  # fmt: skip
        stamp.write_bytes(lock)
    return tool


def _validate(tool: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool), str(path)], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.integration
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_is_valid_against_githubs_workflow_schema(action_validator, path):
    result = _validate(action_validator, path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_the_schema_check_refuses_a_misspelt_key(action_validator, tmp_path):
    """The check above can fail: a job whose runs-on is misspelt (what GitHub would reject on push)."""
    bad = tmp_path / "delivery.yml"
    bad.write_text(
        (ROOT / ".github" / "workflows" / "delivery.yml").read_text().replace("runs-on:", "runs_on:")
    )
    result = _validate(action_validator, bad)
    assert result.returncode != 0
    assert "/jobs/" in result.stdout + result.stderr
