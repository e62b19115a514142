"""The lab's images, built once on this machine and cached: the debootstrap base, the host, the registry.
Also the wheelhouse of `make setup`, so a lab host installs the pinned tools without PyPI.

Tags are content hashes, so a second `lab up` finds them and builds nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess  # nosec B404
import sys
import tempfile
from pathlib import Path

from lab import docker
from lab.topology import LABEL, ROOT

CACHE_DIR = Path("/var/cache/photomatrix-lab")
SUITE = "bookworm"
RECIPES = Path(__file__).resolve().parent / "images"
REPOSITORY = "pmlab"
CACHE_LABEL = f"{LABEL}.cache=1"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _exists(ref: str) -> bool:
    return docker.inspect("image", ref) is not None


def base_image() -> str:
    """The Debian base from the project's debootstrap recipe (images/base/build-rootfs.sh)."""
    tarball = CACHE_DIR / f"debian-{SUITE}-rootfs.tar"
    if not tarball.exists():
        CACHE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        print(f"lab: debootstrap {SUITE} into {tarball} (minutes, once)", flush=True)
        try:
            subprocess.run(  # noqa: S603  # nosec B603
                ["/bin/bash", str(ROOT / "images" / "base" / "build-rootfs.sh"), str(tarball)],
                check=True,
                timeout=1800,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise docker.DockerError(f"debootstrap failed: {exc}") from exc
    ref = f"{REPOSITORY}/debian-base:{SUITE}-{_sha256_file(tarball)[:12]}"
    if not _exists(ref):
        print(f"lab: import {ref}", flush=True)
        docker.run(
            [
                "import",
                "--change",
                f"LABEL {CACHE_LABEL}",
                "--change",
                'CMD ["/bin/bash"]',
                str(tarball),
                ref,
            ],
            timeout=600,
        )
    return ref


def _recipe_hash(recipe: Path, base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for path in sorted(p for p in recipe.rglob("*") if p.is_file()):
        digest.update(path.relative_to(recipe).as_posix().encode())
        digest.update(oct(path.stat().st_mode & 0o777).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def recipe_image(name: str, base: str) -> str:
    """Build lab/images/NAME on BASE unless an image with the same content hash exists."""
    recipe = RECIPES / name
    ref = f"{REPOSITORY}/{name}:{_recipe_hash(recipe, base)}"
    if not _exists(ref):
        print(f"lab: build {ref}", flush=True)
        docker.stream(
            [
                "build",
                "--quiet",
                # The RUN steps only fetch Debian packages; the host network does not depend on docker0.
                "--network",
                "host",
                "--build-arg",
                f"BASE_IMAGE={base}",
                "--label",
                CACHE_LABEL,
                "-t",
                ref,
                str(recipe),
            ],
            timeout=1800,
        )
        # Older builds of the same recipe go (those a container still runs stay).
        old = docker.run(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{REPOSITORY}/{name}"])
        for tag in old.split():
            if tag != ref:
                docker.run(["image", "rm", tag], check=False)
    return ref


def remove_cached() -> None:
    """Remove every cached lab image (the debootstrap tarball stays)."""
    refs = docker.run(
        ["image", "ls", "--filter", f"label={CACHE_LABEL}", "--format", "{{.Repository}}:{{.Tag}}"]
    )
    for ref in refs.split():
        if ref.startswith(f"{REPOSITORY}/"):
            docker.run(["image", "rm", ref], check=False)


# What `make setup` installs besides requirements.txt: its own upgrade step and the build backend of
# the editable install (pyproject.toml's build-system).
SETUP_EXTRAS = ["pip", "setuptools", "wheel"]
# Dependencies whose markers hold for a lab host's Python (Debian 12's 3.11.2) but not for this
# machine's: redis needs async-timeout below 3.11.3 (the container_images role pins the same wheel).
HOST_PYTHON_EXTRAS = ["async-timeout==5.0.1"]
# Pin sets a lab host installs with pip besides requirements.txt, each resolved on its own: the sslyze
# tool venv of make verify's security report (security/sslyze_check.py; sslyze needs an older
# cryptography than requirements.txt pins).
TOOL_REQUIREMENTS = [ROOT / "security" / "sslyze-requirements.txt"]


def _pins(requirements: Path) -> list[str]:
    return [
        line.strip()
        for line in requirements.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    ]


def wheelhouse() -> Path:
    """Wheels of every pin in requirements.txt and TOOL_REQUIREMENTS (and pip/setuptools/wheel), built
    here once per content of those pins and cached in CACHE_DIR/wheels/<hash>; older wheelhouses are
    removed."""
    pins = _pins(ROOT / "requirements.txt")
    tools = [_pins(path) for path in TOOL_REQUIREMENTS]
    everything = [*pins, *SETUP_EXTRAS, *HOST_PYTHON_EXTRAS, *(pin for tool in tools for pin in tool)]
    key = hashlib.sha256("\n".join(everything).encode()).hexdigest()[:12]
    root = CACHE_DIR / "wheels"
    target = root / key
    if target.is_dir():
        return target
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    print(f"lab: wheels of requirements.txt into {target} (once per change of the pins)", flush=True)
    with tempfile.TemporaryDirectory(dir=root, prefix="partial-") as tmp:
        pin_sets = []
        for number, pin_set in enumerate([pins, *tools]):
            pin_file = Path(tmp) / f"pins-{number}.txt"
            pin_file.write_text("\n".join(pin_set) + "\n")
            pin_sets.append(["-r", str(pin_file)])
        wheels = Path(tmp) / "wheels"
        for args in (*pin_sets, SETUP_EXTRAS, ["--no-deps", *HOST_PYTHON_EXTRAS]):
            try:
                subprocess.run(  # noqa: S603  # nosec B603
                    [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                     "--wheel-dir", str(wheels), *args],
                    check=True,
                    timeout=1800,
                )  # fmt: skip
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise docker.DockerError(f"building the wheelhouse failed: {exc}") from exc
        wheels.rename(target)
    for old in root.iterdir():
        if old != target and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return target
