"""roles/container_images deploys a release by digest: hosts pull repository@sha256:… references from
the registry, and with container_images_require_digests a tag is refused before anything is pulled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]

PLAY = """
- name: The role's pull step, as a release deployment runs it
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Pull this host's project images (roles/container_images, pull.yml)
      ansible.builtin.include_role:
        name: container_images
        tasks_from: pull
"""


def _play(tmp_path: Path, registry: str, images: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "play.yml").write_text(PLAY)
    host = {
        "ansible_python_interpreter": sys.executable,
        "container_registry": registry,
        "photomatrix_images": images,
        "container_images_host_project_images": sorted(images),
        "container_images_require_digests": True,
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"stagehost": host}}}))
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "play.yml")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


def _digest_of(ref: str, repository: str) -> str:
    digests = json.loads(_docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout)
    return next(d for d in digests if d.startswith(repository + "@")).split("@", 1)[1]


def test_hosts_pull_release_images_by_digest(registry, built_images, tmp_path):
    ref = built_images["alpha"]
    repository = ref.rsplit(":", 1)[0]
    pinned = f"{repository}@{_digest_of(ref, repository)}"
    _docker("image", "rm", "--force", ref)
    assert _docker("image", "inspect", pinned, check=False).returncode != 0  # gone from this engine
    result = _play(tmp_path, registry.address, {"alpha": pinned})
    assert result.returncode == 0, result.stdout[-2000:]
    assert _docker("image", "inspect", pinned, check=False).returncode == 0
    _docker("tag", pinned, ref)  # the other tests' reference again


def test_a_tag_is_refused_when_digests_are_required(registry, built_images, tmp_path):
    result = _play(tmp_path, registry.address, {"beta": built_images["beta"]})
    assert result.returncode != 0
    assert "a release deploys images by digest" in result.stdout
    assert "Pull the project's images this host runs" not in result.stdout
