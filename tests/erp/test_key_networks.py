"""`keys allow`: a deployment widens the networks of an existing key (a second bot replica) in place."""

from __future__ import annotations

import pytest
from plugins.erp import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(tmp_path):
    env = {"ERP_DATABASE_URL": f"sqlite:///{tmp_path / 'erp.sqlite3'}", "ERP_SECRET_KEY": "x" * 40}
    run_cli(env, "migrate")
    return env


def test_allow_replaces_the_networks_and_keeps_the_secret(cli_env):
    key = run_cli(cli_env, "keys", "create", "--name", "bot", "--scope", "bot", "--allow", "10.250.0.20/32")
    secret = key.stdout.strip()
    args = ("keys", "allow", "--name", "bot", "--allow", "10.250.0.20/32", "--allow", "10.250.0.21")
    changed = run_cli(cli_env, *args)
    assert changed.stdout.strip() == "changed"
    assert secret not in changed.stdout + changed.stderr
    listing = run_cli(cli_env, "keys", "list").stdout
    assert "10.250.0.20/32 10.250.0.21/32" in listing
    # Idempotent: a second run changes nothing (Ansible reports ok).
    assert run_cli(cli_env, *args).stdout.strip() == "unchanged"
    # Still one active key named bot: the secret was not replaced.
    assert listing.count("\nbot ") == 1


def test_allow_refuses_an_unknown_key_and_a_bad_network(cli_env):
    missing = run_cli(cli_env, "keys", "allow", "--name", "nobody", "--allow", "10.0.0.1", check=False)
    assert missing.returncode == 1
    assert "no active key" in missing.stderr
    run_cli(cli_env, "keys", "create", "--name", "ops", "--scope", "bot", "--allow", "10.1.0.0/16")
    bad = run_cli(cli_env, "keys", "allow", "--name", "ops", "--allow", "10.0.0.300/8", check=False)
    assert bad.returncode == 2
    assert "10.1.0.0/16" in run_cli(cli_env, "keys", "list").stdout
