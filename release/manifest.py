"""The release manifest: which image digests a release is, and where its SBOMs are.

Layout of a release directory (default .state/release/<version>/):
    manifest.json            this file's content (schema photomatrix-release/1)
    sbom/<key>.cdx.json      one CycloneDX document per image
    changelog.md             commits since the previous release tag
    gate-<env>.json          the recorded gate result (release.gate), gate-<env>/ its logs and reports
    release.md               the release page (release.page)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.registry import DIGEST

SCHEMA = "photomatrix-release/1"
KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class ManifestError(ValueError):
    """The file is not a release manifest this tool accepts."""


@dataclass(frozen=True)
class Image:
    key: str
    repository: str  # registry/namespace/name
    digest: str
    tags: tuple[str, ...]
    sbom: str  # path relative to the manifest's directory
    sbom_sha256: str

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def registry(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def path(self) -> str:
        return self.repository.split("/", 1)[1]


@dataclass(frozen=True)
class Manifest:
    path: Path
    version: str
    commit: str
    created: str
    registry: str
    images: dict[str, Image]
    sha256: str

    @property
    def directory(self) -> Path:
        return self.path.parent

    def refs(self) -> dict[str, str]:
        return {key: image.ref for key, image in self.images.items()}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(directory: Path, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "manifest.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def load(path: Path) -> Manifest:
    """Read and check a manifest: schema, digests, and that each SBOM is the one recorded."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ManifestError(f"{path}: not a release manifest (schema {SCHEMA} expected)")
    images: dict[str, Image] = {}
    registry = str(data.get("registry", ""))
    for key, item in dict(data.get("images") or {}).items():
        if not KEY.match(key) or not isinstance(item, dict):
            raise ManifestError(f"{path}: bad image entry {key!r}")
        image = Image(
            key=key,
            repository=str(item.get("repository", "")),
            digest=str(item.get("digest", "")),
            tags=tuple(item.get("tags", ())),
            sbom=str(item.get("sbom", "")),
            sbom_sha256=str(item.get("sbom_sha256", "")),
        )
        if not DIGEST.match(image.digest):
            raise ManifestError(f"{path}: image {key}: {image.digest!r} is not a sha256 digest")
        if image.registry != registry:
            raise ManifestError(f"{path}: image {key} is not in the manifest's registry {registry}")
        sbom = path.parent / image.sbom
        if not sbom.is_file() or sha256_file(sbom) != image.sbom_sha256:
            raise ManifestError(
                f"{path}: image {key}: SBOM {image.sbom} missing or changed since the release"
            )
        images[key] = image
    if not images:
        raise ManifestError(f"{path}: no images")
    return Manifest(
        path=path.resolve(),
        version=str(data.get("version", "")),
        commit=str(data.get("commit", "")),
        created=str(data.get("created", "")),
        registry=registry,
        images=images,
        sha256=sha256_file(path),
    )
