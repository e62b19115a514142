"""A real registry for the release tests (Debian's docker-registry on loopback, TLS from a throwaway CA)
and small real images built on the lab's debootstrap base."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from plugins.pki import make_test_pki

from lab import images as lab_images
from release import build, gitinfo, manifest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CERTS_D = Path("/etc/docker/certs.d")


@dataclass(frozen=True)
class TestRegistry:
    address: str
    ca: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("registry")
    pki = make_test_pki(directory)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    config = directory / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {directory / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '{address}', tls: {{certificate: {pki.cert}, key: {pki.key}}}}}\n"
    )
    log = directory / "registry.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)], stdout=handle, stderr=subprocess.STDOUT
        )
    # This machine's Docker Engine trusts the test CA for this registry only (as the lab does).
    trust = CERTS_D / address
    trust.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki.ca, trust / "ca.crt")
    context = ssl.create_default_context(cafile=str(pki.ca))
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(f"https://{address}/v2/", context=context, timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"registry did not start: {log.read_text()[-800:]}") from None
                time.sleep(0.2)
        yield TestRegistry(address, pki.ca, log)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(trust, ignore_errors=True)


def _docker(*args: str, timeout: float = 600) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


@pytest.fixture(scope="session")
def base_image() -> str:
    """The lab's debootstrap base (built once and cached by lab/images.py)."""
    return lab_images.base_image()


@pytest.fixture(scope="session")
def built_images(base_image: str, registry: TestRegistry):
    """Two images (different revisions), tagged and pushed as the role's release step does: key -> ref."""
    run = uuid.uuid4().hex[:8]
    refs = {}
    for key, revision in (("alpha", f"a-{run}"), ("beta", f"b-{run}")):
        ref = f"{registry.address}/photomatrix/release-test-{key}:v-test-{run}"
        _docker(
            "build", "--quiet", "--network", "none", "--build-arg", f"BASE_IMAGE={base_image}",
            "--build-arg", f"REVISION={revision}", "-t", ref, str(HERE / "image"),
        )  # fmt: skip
        _docker("push", "--quiet", ref)
        refs[key] = ref
    yield refs
    for ref in refs.values():
        subprocess.run(
            ["docker", "image", "rm", "--force", ref], capture_output=True, timeout=120, check=False
        )


@pytest.fixture(scope="session")
def released(registry, built_images, tmp_path_factory) -> manifest.Manifest:
    out = tmp_path_factory.mktemp("release") / "v-test"
    commit = gitinfo.commit(ROOT)
    path = build.record(
        out, registry.address, built_images, "v-test", commit, ca=registry.ca, extra_tags=(commit,)
    )
    return manifest.load(path)
