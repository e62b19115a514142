"""Session fixtures of the role tests: one real run of what several test modules check."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest
from roles.test_topology_render import LAB_WEBHOOK, ansible_playbook, render, write_inventory

from lab import images as lab_images

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The roles' derived variables per host of the lab shape (test_topology_render's RENDERED), one
    render per session: test_topology_render and test_mongodb_tls read it."""
    tmp = tmp_path_factory.mktemp("lab")
    # The alerts webhook rocketchat_bootstrap writes into the store (its base: the internal URL).
    (tmp / "store").mkdir()
    (tmp / "store" / "erp-alerts-webhook-url").write_text(f"{LAB_WEBHOOK}\n", encoding="utf-8")
    return render(tmp, multi=True)


@dataclass
class MongodbLab:
    """playbooks/mongodb.yml run on the lab shape's members, its hosts' files under `root`."""

    root: Path
    first: subprocess.CompletedProcess[str] = field(repr=False)
    run: Callable[[], subprocess.CompletedProcess[str]] = field(repr=False)

    @cached_property
    def second(self) -> subprocess.CompletedProcess[str]:
        """The same run again (made when first asked for): it must change nothing."""
        return self.run()


@pytest.fixture(scope="session")
def mongodb_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongodbLab]:
    """playbooks/mongodb.yml on three members, up to starting mongod (mongodb_run_mongod=false), once per
    session: test_topology_render checks the keyfile and passwords the members share,
    test_mongodb_tls the certificates from the internal CA and that a second run changes nothing."""
    tmp = tmp_path_factory.mktemp("mongodb-lab")
    inventory = write_inventory(tmp, multi=True)
    volume = f"photomatrix-render-test-{os.getpid()}"
    extra = {
        "mongodb_run_mongod": False,
        "mongodb_data_volume": volume,
        # The hosts' interpreter is this virtualenv, which has cryptography: no apt run per host and
        # playbook (the system Python's install is test_common_tls_certificate's).
        "common_tls_module_packages": [],
        "tls_proxy_module_packages": [],
    }

    def run() -> subprocess.CompletedProcess[str]:
        return ansible_playbook("-i", str(inventory), "playbooks/mongodb.yml", "-e", json.dumps(extra))

    try:
        yield MongodbLab(tmp, run(), run)
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def nats_image() -> str:
    """images/nats built on the lab's debootstrap base (the project's recipe); cached by Docker. make up
    builds it only where several Rocket.Chat instances run: test_nats and test_rocketchat_roll build it."""
    tag = "photomatrix-test/nats:role-test"
    argv = [
        "docker", "build", "--quiet",
        # The host's network, as the roles build (its RUN step only fetches Debian packages).
        "--network", "host", "--build-arg", f"BASE_IMAGE={lab_images.base_image()}",
        "-t", tag, str(ROOT / "images" / "nats"),
    ]  # fmt: skip
    built = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if built.returncode != 0:
        pytest.fail(f"building images/nats: exit {built.returncode}: {built.stderr.strip()[-1500:]}")
    return tag
