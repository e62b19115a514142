"""An SBOM per image (CycloneDX 1.6 JSON), from what the image holds.

The image is run once, without network, with a POSIX shell script that lists its Debian packages
(`dpkg-query -W`) and every Python distribution (each `*.dist-info/METADATA`: what importlib.metadata
reads), wherever a virtualenv put it. The CycloneDX document is built here with cyclonedx-python-lib.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from release import docker

# One record per line, tab-separated: os ID VERSION_ID | deb NAME VERSION ARCH | pypi NAME VERSION PATH.
PROBE = r"""
set -u
if [ -r /etc/os-release ]; then . /etc/os-release; printf 'os\t%s\t%s\n' "${ID:-}" "${VERSION_ID:-}"; fi
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='deb\t${Package}\t${Version}\t${Architecture}\n'
fi
find / -xdev \( -path /proc -o -path /sys -o -path /dev \) -prune -o -type f -name METADATA \
  -path '*.dist-info/METADATA' -print 2>/dev/null | while IFS= read -r f; do
  n=$(grep -m1 '^Name: ' "$f" | cut -c7- | tr -d '\r')
  v=$(grep -m1 '^Version: ' "$f" | cut -c10- | tr -d '\r')
  printf 'pypi\t%s\t%s\t%s\n' "$n" "$v" "$f"
done
"""


class SbomError(RuntimeError):
    """The image could not be inventoried or the document is invalid."""


@dataclass
class Inventory:
    os_id: str = ""
    os_version: str = ""
    debs: set[tuple[str, str, str]] = field(default_factory=set)
    pypi: set[tuple[str, str]] = field(default_factory=set)


def inventory(image: str) -> Inventory:
    """Run IMAGE once (no network, no capabilities) and parse what the probe lists."""
    out = docker.run(
        [
            "run",
            "--rm",
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
            PROBE,
        ],
        timeout=300,
    )
    return parse(out)


def parse(text: str) -> Inventory:
    found = Inventory()
    for line in text.splitlines():
        parts = line.split("\t")
        if parts[0] == "os" and len(parts) == 3:
            found.os_id, found.os_version = parts[1], parts[2]
        elif parts[0] == "deb" and len(parts) == 4 and parts[1] and parts[2]:
            found.debs.add((parts[1], parts[2], parts[3]))
        elif parts[0] == "pypi" and len(parts) >= 3 and parts[1] and parts[2]:
            found.pypi.add((parts[1], parts[2]))
    if not found.debs and not found.pypi:
        raise SbomError("the image lists neither Debian packages nor Python distributions")
    return found


def _pypi_name(name: str) -> str:
    # PEP 503 normalisation, as the purl spec asks for pypi names.
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)


def build(repository: str, digest: str, version: str, found: Inventory) -> str:
    """The CycloneDX 1.6 JSON document of one image (validated against the schema)."""
    bom = Bom()
    name = repository.rsplit("/", 1)[-1]
    image_purl = PackageURL(
        "oci", name=name, version=digest, qualifiers={"repository_url": repository, "tag": version}
    )
    bom.metadata.component = root = Component(
        type=ComponentType.CONTAINER,
        name=repository,
        version=version,
        purl=image_purl,
        bom_ref=image_purl.to_string(),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest.removeprefix("sha256:"))],
    )
    distro = f"{found.os_id}-{found.os_version}" if found.os_id else None
    components = []
    for pkg, ver, arch in sorted(found.debs):
        qualifiers = {"arch": arch} | ({"distro": distro} if distro else {})
        purl = PackageURL(
            "deb", namespace=found.os_id or "debian", name=pkg, version=ver, qualifiers=qualifiers
        )
        components.append(
            Component(type=ComponentType.LIBRARY, name=pkg, version=ver, purl=purl, bom_ref=purl.to_string())
        )
    for pkg, ver in sorted(found.pypi):
        purl = PackageURL("pypi", name=_pypi_name(pkg), version=ver)
        if any(c.bom_ref.value == purl.to_string() for c in components):
            continue
        components.append(
            Component(type=ComponentType.LIBRARY, name=pkg, version=ver, purl=purl, bom_ref=purl.to_string())
        )
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    validate(text)
    return text


def validate(text: str) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise SbomError(f"CycloneDX 1.6 schema: {error}")


def summary(text: str) -> dict[str, int]:
    """Counts by package type (deb, pypi, …) of a CycloneDX JSON document."""
    counts: dict[str, int] = {}
    for component in json.loads(text).get("components", []):
        kind = str(component.get("purl", "pkg:other/")).split(":", 1)[1].split("/", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return counts
