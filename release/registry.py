"""A small client of the Docker Registry HTTP API v2: the digest behind a tag, whether a digest exists.

The registry is trusted the way this machine's Docker Engine trusts it: its CA in
/etc/docker/certs.d/<registry>/ca.crt (the lab writes it there), else the system store.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

CERTS_D = Path("/etc/docker/certs.d")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# What `docker push` uploads (schema 2 / OCI), and the lists a multi-platform image has.
ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


class RegistryError(RuntimeError):
    """The registry did not answer as expected."""


@dataclass(frozen=True)
class ImageName:
    registry: str
    repository: str
    reference: str  # a tag or a digest

    @classmethod
    def parse(cls, ref: str) -> ImageName:
        if "@" in ref:
            name, reference = ref.split("@", 1)
        else:
            name, _, reference = ref.rpartition(":")
            if not name or "/" in reference:
                name, reference = ref, "latest"
        registry, _, repository = name.partition("/")
        if not repository or ("." not in registry and ":" not in registry and registry != "localhost"):
            raise RegistryError(f"{ref!r} names no registry (expected host:port/repository:tag)")
        return cls(registry, repository, reference)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"


def ca_file(registry: str, override: Path | None = None) -> Path | None:
    if override:
        return override
    candidate = CERTS_D / registry / "ca.crt"
    return candidate if candidate.is_file() else None


class Registry:
    def __init__(self, registry: str, ca: Path | None = None, timeout: float = 15.0) -> None:
        self.registry = registry
        cafile = ca_file(registry, ca)
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        self._client = httpx.Client(
            base_url=f"https://{registry}", verify=context, timeout=timeout, follow_redirects=False
        )

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _head(self, repository: str, reference: str) -> httpx.Response:
        try:
            return self._client.head(f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT})
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry {self.registry} unreachable: {type(exc).__name__}: {exc}") from exc

    def digest(self, repository: str, tag: str) -> str:
        """The digest `docker pull repository:tag` resolves to now."""
        response = self._head(repository, tag)
        if response.status_code != 200:
            raise RegistryError(f"{self.registry}/{repository}:{tag}: HTTP {response.status_code}")
        digest = response.headers.get("Docker-Content-Digest", "")
        if not DIGEST.match(digest):
            raise RegistryError(f"{self.registry}/{repository}:{tag}: no sha256 digest in the answer")
        return digest

    def has(self, repository: str, digest: str) -> bool:
        if not DIGEST.match(digest):
            raise RegistryError(f"{digest!r} is not a sha256 digest")
        status = self._head(repository, digest).status_code
        if status in (200, 404):
            return status == 200
        raise RegistryError(f"{self.registry}/{repository}@{digest}: HTTP {status}")
