"""Every module's documentation renders with ansible-doc; secret files are written with mode 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.common import (
    read_secret_file,
    write_secret_file,
)
from plugins.collection import COLLECTIONS, MODULES, ROOT

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_the_module(module):
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), f"photomatrix.rocketchat.rocketchat_{module}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"photomatrix.rocketchat.rocketchat_{module}" in proc.stdout
    assert "server_url" in proc.stdout  # the shared connection fragment is merged in
    assert "EXAMPLES" in proc.stdout


def test_write_secret_file_creates_0600_and_is_idempotent(tmp_path):
    module = SimpleNamespace(check_mode=False)
    path = tmp_path / "secrets" / "token"
    assert write_secret_file(module, str(path), "abc") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_secret_file(str(path)) == "abc"
    assert write_secret_file(module, str(path), "abc") is False
    path.chmod(0o644)
    assert write_secret_file(module, str(path), "abc") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_secret_file_in_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "token"
    assert write_secret_file(SimpleNamespace(check_mode=True), str(path), "abc") is True
    assert not path.exists()
    assert read_secret_file(str(path)) is None
