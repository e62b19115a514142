"""`make release`: images built once per commit, pushed, their digests and SBOMs recorded.

1. `git archive` of the commit into a scratch directory (the work tree's edits never reach a release);
2. release/playbook.yml there: roles/container_images builds (or finds, by source hash) every project
   image and pushes it as <registry>/photomatrix/<name>:<version>; the commit tag is added and pushed;
3. the digest of each tag is read back from the registry and checked against the local image, each
   image is inventoried into a CycloneDX SBOM, and manifest.json + changelog.md are written.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import subprocess  # nosec B404
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

from release import docker, gitinfo, manifest, sbom
from release.registry import ImageName, Registry

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "photomatrix"
BUILD_TIMEOUT = 3600


GIT = shutil.which("git") or "/usr/bin/git"


class ReleaseError(RuntimeError):
    """The release could not be built or recorded."""


def project_images(root: Path) -> dict[str, str]:
    """key -> repository name of the images roles/container_images builds (its vars/main.yml)."""
    data = yaml.safe_load((root / "roles/container_images/vars/main.yml").read_text())
    return {key: str(item["name"]) for key, item in data["container_images_project"].items()}


def refs_for(registry: str, names: dict[str, str], tag: str) -> dict[str, str]:
    return {key: f"{registry}/{NAMESPACE}/{name}:{tag}" for key, name in names.items()}


def export_commit(root: Path, commit: str, into: Path) -> None:
    archive = subprocess.run(  # noqa: S603  # nosec B603
        [GIT, "-C", str(root), "archive", "--format=tar", commit],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if archive.returncode != 0:
        raise ReleaseError(f"git archive {commit}: {archive.stderr.decode(errors='replace')[-400:]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def build_and_push(source: Path, registry: str, refs: dict[str, str], log: Path) -> None:
    """Run release/playbook.yml from SOURCE (an exported commit); its output goes to LOG."""
    extra = {
        "container_images_registry": registry,
        "photomatrix_images": refs,
        # Its own build contexts: a `make up` of this machine's stack may be copying into the default one.
        "container_images_build_dir": "/var/cache/photomatrix/release-build",
    }
    extra_file = log.parent / "build-vars.json"
    extra_file.write_text(json.dumps(extra))
    program = Path(sys.executable).parent / "ansible-playbook"
    env = dict(os.environ, ANSIBLE_CONFIG=str(source / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    with log.open("w") as handle:
        try:
            result = subprocess.run(  # noqa: S603  # nosec B603
                [str(program), "release/playbook.yml", "-e", f"@{extra_file}"],
                cwd=source,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ReleaseError(
                f"the image build did not finish within {BUILD_TIMEOUT} s (log: {log})"
            ) from exc
    if result.returncode != 0:
        raise ReleaseError(f"the image build failed (exit {result.returncode}); log: {log}")


def add_tag(ref: str, tag: str) -> str:
    """Tag the local image REF also as TAG and push that tag (same digest, no layer is sent again)."""
    name = ImageName.parse(ref)
    other = f"{name.name}:{tag}"
    docker.run(["tag", ref, other])
    docker.run(["push", "--quiet", other], timeout=1800)
    return other


def record(
    out: Path,
    registry: str,
    refs: dict[str, str],
    version: str,
    commit: str,
    root: Path = ROOT,
    ca: Path | None = None,
    extra_tags: tuple[str, ...] = (),
) -> Path:
    """Digest, SBOM and manifest entry of every pushed image REFS (key -> registry/repo:tag)."""
    (out / "sbom").mkdir(parents=True, exist_ok=True)
    images: dict[str, dict] = {}
    with Registry(registry, ca) as reg:
        for key, ref in sorted(refs.items()):
            name = ImageName.parse(ref)
            if name.registry != registry:
                raise ReleaseError(f"{ref} is not in the release registry {registry}")
            digest = reg.digest(name.repository, name.reference)
            # What the SBOM describes is the image that was pushed: the local image must carry that digest.
            if f"{name.name}@{digest}" not in docker.repo_digests(ref):
                raise ReleaseError(f"{ref}: the registry's digest {digest} is not the local image's")
            document = sbom.build(name.name, digest, version, sbom.inventory(ref))
            sbom_path = out / "sbom" / f"{key}.cdx.json"
            sbom_path.write_text(document)
            images[key] = {
                "repository": name.name,
                "digest": digest,
                "tags": [name.reference, *extra_tags],
                "sbom": f"sbom/{key}.cdx.json",
                "sbom_sha256": manifest.sha256_file(sbom_path),
                "components": sbom.summary(document),
            }
    since, lines = gitinfo.changelog(root, commit)
    title = f"Changes since {since}" if since else "Changes (no earlier release tag)"
    (out / "changelog.md").write_text(f"# {title}\n\n" + "".join(f"- {line}\n" for line in lines))
    data = {
        "schema": manifest.SCHEMA,
        "version": version,
        "commit": commit,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "registry": registry,
        "previous_release": since,
        "images": images,
    }
    return manifest.write(out, data)


def release(
    registry: str,
    out_root: Path,
    root: Path = ROOT,
    rev: str = "HEAD",
    version_override: str = "",
    ca: Path | None = None,
) -> Path:
    """The whole `make release`; returns the manifest's path."""
    commit = gitinfo.commit(root, rev)
    version = gitinfo.version(root, rev, version_override)
    out = out_root / version
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="photomatrix-release-") as scratch:
        source = Path(scratch)
        export_commit(root, commit, source)
        refs = refs_for(registry, project_images(source), version)
        print(
            f"release {version} ({commit[:12]}): building and pushing {len(refs)} images to {registry}",
            flush=True,
        )
        build_and_push(source, registry, refs, out / "build.log")
    for ref in refs.values():
        add_tag(ref, commit)
    return record(out, registry, refs, version, commit, root=root, ca=ca, extra_tags=(commit,))
