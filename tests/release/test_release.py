"""Release, manifest by digest, SBOMs, deploy preflight and deployment by digest, against a real
registry started by the test (conftest.py) and real images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from release import deploy, gitinfo, manifest, page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
ROOT = Path(__file__).resolve().parents[2]


def _repo_digests(ref: str) -> list[str]:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def _inventory(tmp_path: Path, registry: str) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"stagehost": {"container_registry": registry}}}}))
    return path


def test_manifest_records_the_registry_digests(released, built_images, registry):
    assert set(released.images) == {"alpha", "beta"}
    assert released.registry == registry.address
    assert released.commit == gitinfo.commit(ROOT)
    for key, ref in built_images.items():
        image = released.images[key]
        # The digest read back from the registry is the one the engine recorded when it pushed.
        assert f"{image.repository}@{image.digest}" in _repo_digests(ref)
        assert image.ref == f"{ref.rsplit(':', 1)[0]}@{image.digest}"
    assert released.images["alpha"].digest != released.images["beta"].digest
    changelog = (released.directory / "changelog.md").read_text()
    subject = gitinfo.git(ROOT, "log", "-1", "--format=%s")
    assert subject in changelog


def test_sboms_are_valid_cyclonedx_listing_debian_and_python_packages(released):
    for image in released.images.values():
        text = (released.directory / image.sbom).read_text()
        assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
        bom = json.loads(text)
        purls = {c["purl"] for c in bom["components"]}
        assert any(p.startswith("pkg:deb/debian/dpkg@") and "arch=" in p for p in purls), sorted(purls)[:5]
        assert "pkg:pypi/demo-pkg@1.2.3" in purls
        assert bom["metadata"]["component"]["type"] == "container"
        assert image.digest.removeprefix("sha256:") in json.dumps(bom["metadata"]["component"]["hashes"])


def test_a_changed_sbom_or_a_tag_instead_of_a_digest_is_refused(released, tmp_path):
    data = json.loads(released.path.read_text())
    data["images"]["alpha"]["digest"] = "latest"
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps(data))
    (tmp_path / "sbom").mkdir()
    for name in ("alpha", "beta"):
        (tmp_path / "sbom" / f"{name}.cdx.json").write_bytes(
            (released.directory / "sbom" / f"{name}.cdx.json").read_bytes()
        )
    with pytest.raises(manifest.ManifestError, match="not a sha256 digest"):
        manifest.load(bad)
    data["images"]["alpha"]["digest"] = released.images["alpha"].digest
    bad.write_text(json.dumps(data))
    (tmp_path / "sbom" / "beta.cdx.json").write_text("{}")
    with pytest.raises(manifest.ManifestError, match=r"SBOM sbom/beta\.cdx\.json missing or changed"):
        manifest.load(bad)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "release", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_deploy_refuses_digests_the_registry_does_not_hold(released, registry, tmp_path):
    data = json.loads(released.path.read_text())
    data["images"]["beta"]["digest"] = "sha256:" + "0" * 64
    (tmp_path / "sbom").mkdir()
    for name in ("alpha", "beta"):
        (tmp_path / "sbom" / f"{name}.cdx.json").write_bytes(
            (released.directory / "sbom" / f"{name}.cdx.json").read_bytes()
        )
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    inventory = _inventory(tmp_path, registry.address)
    result = _cli(
        "--state", str(tmp_path / "state"), "--registry-ca", str(registry.ca), "deploy", "--env", "staging",
        "--inventory", str(inventory), "--manifest", str(tmp_path / "manifest.json"),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"refused: not in registry {registry.address}: beta" in result.stderr
    assert "alpha" not in result.stderr.split("refused:", 1)[1]
    assert not (tmp_path / "deployments").exists()  # nothing ran
    # Another registry than the inventory's: refused before any pull.
    (tmp_path / "other").mkdir()
    other = _inventory(tmp_path / "other", "127.0.0.1:9")
    result = _cli(
        "--state",
        str(tmp_path / "state"),
        "deploy",
        "--inventory",
        str(other),
        "--manifest",
        str(released.path),
    )
    assert result.returncode == 2
    assert "the inventory pulls from 127.0.0.1:9" in result.stderr


def test_production_takes_only_a_promoted_release(released, registry, tmp_path):
    inventory = _inventory(tmp_path, registry.address)
    result = _cli(
        "deploy", "--env", "production", "--inventory", str(inventory), "--manifest", str(released.path)
    )
    assert result.returncode != 0
    assert "make promote" in result.stderr


DEPLOY_PROBE = """
- name: Stands in for playbooks/site.yml; checks what a release deployment passes
  hosts: all
  connection: local
  gather_facts: false
  vars:
    photomatrix_images_offline: true
    photomatrix_official_images: {rocketchat: official/rocket.chat:8, mongodb: official/mongo:8}
  tasks:
    - name: Write what the deployment sees
      ansible.builtin.copy:
        dest: "{{ probe_out }}"
        content: "{{ {'images': photomatrix_images, 'build': container_images_build} | to_json }}"
        mode: "0600"
"""


def test_deploy_passes_the_images_by_digest_and_records_history(released, registry, tmp_path):
    playbook = tmp_path / "probe.yml"
    playbook.write_text(DEPLOY_PROBE)
    out = tmp_path / "seen.json"
    inventory = tmp_path / "hosts.yml"
    host = {
        "container_registry": registry.address,
        "probe_out": str(out),
        "ansible_python_interpreter": sys.executable,
    }
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"stagehost": host}}}))
    log = deploy.deploy(
        released, "staging", inventory, tmp_path / "state", registry.ca, playbook=str(playbook)
    )
    seen = json.loads(out.read_text())
    assert seen["build"] is False
    for key, image in released.images.items():
        assert seen["images"][key] == image.ref
    assert seen["images"]["mongodb"] == "official/mongo:8"
    assert seen["images"]["rocketchat"] == ""  # offline and no simulator image in this release
    assert log.is_file()
    history = deploy.History(tmp_path / "state", "staging")
    assert history.current()["sha256"] == released.sha256
    assert history.previous() is None


def test_release_page_shows_manifest_sboms_and_changelog(released):
    text = page.render(released).read_text()
    assert f"# Release {released.version}" in text
    for image in released.images.values():
        assert image.ref in text
        assert f"]({image.sbom})" in text
    assert "## Changelog" in text
    assert "deb" in text
    assert "pypi" in text


def _make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False, env=env,
    )  # fmt: skip


def test_the_documented_make_targets(released, registry, tmp_path, monkeypatch):
    """make release-page, and make deploy / make promote refusing what they must refuse."""
    shutil.copytree(released.directory, tmp_path / "r")
    copy = tmp_path / "r" / "manifest.json"
    result = _make("release-page", f"MANIFEST={copy}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "r" / "release.md").is_file()
    data = json.loads(copy.read_text())
    data["images"]["alpha"]["digest"] = "sha256:" + "1" * 64
    copy.write_text(json.dumps(data))
    inventory = _inventory(tmp_path, registry.address)
    result = _make(
        "deploy", "ENV=staging", f"INVENTORY={inventory}", f"MANIFEST={copy}", f"REGISTRY_CA={registry.ca}"
    )
    assert result.returncode != 0
    assert f"refused: not in registry {registry.address}: alpha" in result.stderr
    env = dict(os.environ, RELEASE_GATE_KEY_FILE=str(tmp_path / "gate.key"))
    result = _make(
        "promote", "ENV=production", f"INVENTORY={inventory}", f"MANIFEST={released.path}", env=env
    )
    assert result.returncode != 0
    assert "has no staging gate record" in result.stderr
