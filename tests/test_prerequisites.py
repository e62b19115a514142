"""README's prerequisites are checked by `make setup` (so by `make up`) before it needs them: on a fresh
Debian without git or python3-venv it names the packages to install instead of failing half-way."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.unit


def setup_with(tmp_path: Path, *, python_ok: bool, git: bool) -> subprocess.CompletedProcess[str]:
    """`make setup` into a new venv with a PATH that has only a stand-in python3 (and maybe git)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!/bin/sh\nexit {0 if python_ok else 1}\n")
    (bin_dir / "python3").chmod(0o755)
    if git:
        (bin_dir / "git").symlink_to(shutil.which("git") or "/bin/true")
    make = shutil.which("make")
    assert make
    return subprocess.run(
        [make, "--no-print-directory", "-C", str(ROOT), "setup", f"VENV={tmp_path / 'venv'}"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_git_and_python3_venv_are_named_with_the_command_to_install_them(tmp_path: Path) -> None:
    done = setup_with(tmp_path, python_ok=False, git=False)
    assert done.returncode != 0
    assert (
        "missing: git python3-venv. Install them first (as root): "
        "apt-get install -y --no-install-recommends git python3-venv"
    ) in done.stderr
    assert not (tmp_path / "venv").exists()


def test_only_what_is_missing_is_named(tmp_path: Path) -> None:
    done = setup_with(tmp_path, python_ok=False, git=True)
    assert "missing: python3-venv." in done.stderr


def test_with_the_prerequisites_setup_goes_on(tmp_path: Path) -> None:
    done = setup_with(tmp_path, python_ok=True, git=True)
    assert "missing:" not in done.stderr  # it got past the check (the stand-in python3 makes no venv)
