"""The command line: keys are printed once and never listed, bad seed files and settings fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from plugins.erp import run_cli
from plugins.processes import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(tmp_path):
    env = {"ERP_DATABASE_URL": f"sqlite:///{tmp_path / 'erp.sqlite3'}", "ERP_SECRET_KEY": "x" * 40}
    run_cli(env, "migrate")
    return env


def test_key_is_printed_once_alone_and_never_listed(cli_env):
    created = run_cli(cli_env, "keys", "create", "--name", "ops", "--scope", "bot", "--allow", "10.1.0.0/16")
    key = created.stdout.strip()
    assert created.stdout.count("\n") == 1
    assert key.startswith("erp_")
    assert len(key) > 40
    listing = run_cli(cli_env, "keys", "list").stdout
    assert "ops" in listing
    assert "10.1.0.0/16" in listing
    assert key not in listing
    assert run_cli(cli_env, "keys", "revoke", "ops").returncode == 0
    again = run_cli(cli_env, "keys", "revoke", "ops", check=False)
    assert again.returncode == 1
    assert "no active key" in again.stderr


def test_duplicate_key_name_and_bad_scope_are_refused(cli_env):
    run_cli(cli_env, "keys", "create", "--name", "dup", "--scope", "bot")
    dup = run_cli(cli_env, "keys", "create", "--name", "dup", "--scope", "bot", check=False)
    assert dup.returncode == 2
    assert "exists" in dup.stderr
    bad = run_cli(cli_env, "keys", "create", "--name", "x", "--scope", "root", check=False)
    assert bad.returncode == 2
    bad_net = run_cli(
        cli_env, "keys", "create", "--name", "y", "--scope", "bot", "--allow", "10.0.0.300/8", check=False
    )
    assert bad_net.returncode == 2


def test_seed_is_idempotent_and_a_bad_file_is_a_clear_error(cli_env, tmp_path):
    first = run_cli(cli_env, "seed-positions").stdout
    second = run_cli(cli_env, "seed-positions").stdout
    assert "7 created" in first
    assert "0 created, 7 updated" in second
    bad = tmp_path / "bad.yaml"
    bad.write_text("positions:\n  - code: 'has space'\n    name: X\n", encoding="utf-8")
    result = run_cli(cli_env, "seed-positions", str(bad), check=False)
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_to_start_with_the_placeholder_secret(tmp_path):
    env = {
        **os.environ,
        "ERP_ENVIRONMENT": "production",
        "ERP_DATABASE_URL": f"sqlite:///{tmp_path / 'erp.sqlite3'}",
    }
    env.pop("ERP_SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "erp", "serve", "--port", "1"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "ERP_SECRET_KEY" in result.stderr


def test_migrations_run_from_any_directory(tmp_path):
    env = {**os.environ, "ERP_DATABASE_URL": f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"}
    result = subprocess.run(
        [sys.executable, "-m", "erp", "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere.sqlite3").exists()
