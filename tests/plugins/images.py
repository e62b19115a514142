"""Tiny container images made here (nothing is pulled): a few host binaries and their libraries."""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path


def tiny_image(tmp: Path, reference: str, binaries: tuple[str, ...] = ("/bin/false", "/bin/sleep")) -> None:
    """`docker import` an image `reference` holding `binaries` and the libraries ldd names for them."""
    files = set(binaries)
    for binary in binaries:
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30, check=True).stdout
        files |= set(re.findall(r"(/\S+\.so[.\d]*)", ldd))
    archive = tmp / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(files):
            tar.add(Path(path).resolve(), arcname=path.lstrip("/"))
    out = subprocess.run(
        ["docker", "import", str(archive), reference], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
