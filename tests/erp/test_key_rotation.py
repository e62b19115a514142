"""Key rotation as a first-class ERP operation, on SQLite and PostgreSQL (erp_backend).

`keys rotate --name N` prints a new secret with N's scopes and networks while the previous one keeps
working (renamed N.<id>) until `keys revoke --previous N`; a revoked key's name can be taken again.
"""

from __future__ import annotations

import itertools
import time

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration

API = "/api/bot/v1"
_names = itertools.count(1)


def fresh_name(prefix: str) -> str:
    return f"{prefix}{int(time.time() * 1000) % 10**8}x{next(_names)}"


def status_with(erp_server, key: str) -> int:
    with erp_server.client(key) as client:
        return client.get(f"{API}/positions").status_code


def after_cache() -> None:
    time.sleep(0.7)  # the key cache TTL in tests is 0.5 s


def rows(erp_server, prefix: str) -> dict[str, dict]:
    """The api_keys rows whose name starts with PREFIX, read from the server's database."""
    engine = sa.create_engine(erp_server.env["ERP_DATABASE_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT * FROM api_keys WHERE name LIKE :p ORDER BY id")
            return {row.name: dict(row._mapping) for row in conn.execute(query, {"p": prefix + "%"})}
    finally:
        engine.dispose()


def listed(erp_server) -> set[str]:
    """The names `keys list` shows."""
    return {line.split()[0] for line in erp_server.cli("keys", "list").stdout.splitlines()[1:]}


def test_rotate_keeps_the_previous_key_until_revoke_previous(erp_server) -> None:
    name = fresh_name("rot")
    old = erp_server.create_key(name, scopes=("bot", "admin"), allow=("127.0.0.0/8",))
    rotated = erp_server.cli("keys", "rotate", "--name", name)
    new = rotated.stdout.strip()
    assert rotated.stdout.count("\n") == 1, "the secret alone on stdout"
    assert new.startswith("erp_")
    assert new != old
    assert new not in rotated.stderr
    assert old not in rotated.stderr
    keys = rows(erp_server, name)
    previous = [n for n in keys if n != name]
    assert previous == [f"{name}.{keys[previous[0]]['id']}"], keys
    assert previous[0] in rotated.stderr
    assert previous[0] in listed(erp_server)
    # Same scopes and networks as before; both secrets work during the switch-over.
    for column in ("scopes", "allowed_networks"):
        assert keys[name][column] == keys[previous[0]][column], column
    assert keys[name]["scopes"] == "admin bot"
    assert keys[name]["allowed_networks"] == "127.0.0.0/8"
    assert keys[previous[0]]["revoked_at"] is None
    after_cache()
    assert status_with(erp_server, old) == 200
    assert status_with(erp_server, new) == 200
    with erp_server.client(new) as client:  # the admin scope came along
        assert client.get(f"{API}/audit").status_code == 200

    revoked = erp_server.cli("keys", "revoke", "--previous", name)
    assert previous[0] in revoked.stdout
    after_cache()
    assert status_with(erp_server, old) == 401
    assert status_with(erp_server, new) == 200
    # Idempotent: nothing left to revoke is not an error (a rerun of the playbook).
    again = erp_server.cli("keys", "revoke", "--previous", name)
    assert "revoked 0 previous" in again.stdout
    assert status_with(erp_server, new) == 200


def test_rotate_with_revoke_previous_cuts_the_old_key_at_once(erp_server) -> None:
    name = fresh_name("cut")
    old = erp_server.create_key(name)
    new = erp_server.cli("keys", "rotate", "--name", name, "--revoke-previous").stdout.strip()
    after_cache()
    assert status_with(erp_server, old) == 401
    assert status_with(erp_server, new) == 200


def test_a_revoked_name_can_be_created_again(erp_server) -> None:
    name = fresh_name("again")
    old = erp_server.create_key(name)
    erp_server.revoke_key(name)
    new = erp_server.create_key(name)  # was: "a key named ... exists already"
    after_cache()
    assert status_with(erp_server, old) == 401
    assert status_with(erp_server, new) == 200
    keys = rows(erp_server, name)
    assert keys[name]["revoked_at"] is None
    (kept,) = (n for n in keys if n != name)
    assert keys[kept]["revoked_at"] is not None, "the revoked key's row is kept (audit trail)"


def test_rotation_refuses_what_it_cannot_do_and_changes_nothing(erp_server) -> None:
    name = fresh_name("miss")
    missing = erp_server.cli("keys", "rotate", "--name", name, check=False)
    assert missing.returncode == 1
    assert f"no active key named {name!r}" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert missing.stdout == "", "nothing a script could install as a key"

    key = erp_server.create_key(name)
    active = erp_server.cli("keys", "create", "--name", name, "--scope", "bot", check=False)
    assert active.returncode == 2
    assert "keys rotate" in active.stderr
    assert active.stdout == ""
    assert status_with(erp_server, key) == 200

    for bad in ("has.dot", "has space", "x" * 49, ""):
        refused = erp_server.cli("keys", "create", "--name", bad, "--scope", "bot", check=False)
        assert refused.returncode == 2, bad
        assert refused.stdout == "", bad


def test_rotation_is_audited(erp_server) -> None:
    name = fresh_name("aud")
    erp_server.create_key(name)
    erp_server.cli("keys", "rotate", "--name", name)
    erp_server.cli("keys", "revoke", "--previous", name)
    engine = sa.create_engine(erp_server.env["ERP_DATABASE_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT action, target FROM audit_events WHERE target LIKE :t ORDER BY id")
            found = conn.execute(query, {"t": f"key:{name}%"}).all()
    finally:
        engine.dispose()
    actions = [(action, target.split(".")[0]) for action, target in found]
    assert actions == [
        ("key.create", f"key:{name}"),
        ("key.rotate", f"key:{name}"),
        ("key.revoke", f"key:{name}"),
    ], found
