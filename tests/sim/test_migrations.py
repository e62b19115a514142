"""Rocket.Chat's database migrations at startup (apps/meteor/server/lib/migrations.ts) in the simulator:
the state file's `migrations` control document, set, migrated, left alone or refused, as `make upgrade`
and `make rollback` rely on."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from plugins.processes import free_port

from rocketchat_sim.config import SimSettings
from rocketchat_sim.migrations import STARTUP, MigrationError, error_box, migrate_database
from rocketchat_sim.state import State, StateFileError

ROOT = Path(__file__).resolve().parents[2]
# What the upgrade playbooks run in the container (`docker exec <container> python -c ...`) once it is
# healthy: the control version as the running build left it.
READ_VERSION = (
    "import json, os; print(json.load(open(os.environ['SIM_STATE_FILE']))"
    ".get('migrations', {}).get('version', 0))"
)


def _read_version(path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", READ_VERSION],
        env={**os.environ, "SIM_STATE_FILE": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(done.stdout.strip())


def _log(sim, since: int = 0) -> str:
    return sim.process.log_path.read_text(errors="replace")[since:]


def _restart(sim, **env: str) -> int:
    """Restart on the same state file (the admin it holds is the fixture's), with `env` changed, as
    `make upgrade` replaces the container; the log's length before, for `_log(sim, since)`."""
    sim.process.stop()
    since = len(_log(sim))
    sim.process.env.update(env)
    sim.process.start()
    return since


# ---------------------------------------------------------------------------------------------- units


@pytest.mark.unit
def test_default_latest_version_is_a_single_integer():
    assert SimSettings().SIM_MIGRATION_VERSION == 330


@pytest.mark.unit
def test_fresh_database_is_set_to_the_latest_version_without_running_anything(caplog):
    caplog.set_level(logging.INFO, logger="rocketchat_sim.migrations")
    assert migrate_database(None, 330, "8.6.1") == {"_id": "control", "version": 330, "locked": False}
    assert migrate_database({"_id": "control", "version": 0, "locked": False}, 330, "8.6.1")["version"] == 330
    assert caplog.records == []  # Rocket.Chat sets the control silently on a fresh database


@pytest.mark.unit
def test_older_version_is_migrated_and_logged_at_the_startup_level(caplog):
    caplog.set_level(logging.INFO, logger="rocketchat_sim.migrations")
    control = migrate_database({"_id": "control", "version": 328, "locked": False}, 330, "8.7.0")
    assert control == {"_id": "control", "version": 330, "locked": False}
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (STARTUP, "Migrating from version 328 -> 330"),
        (STARTUP, "Running up() on version 329"),
        (STARTUP, "Running up() on version 330"),
        (STARTUP, "Finished migrating."),
    ]
    assert STARTUP > logging.WARNING  # shown at the default SIM_LOG_LEVEL, as Rocket.Chat's `startup`


@pytest.mark.unit
def test_same_version_is_not_migrated(caplog):
    caplog.set_level(logging.INFO, logger="rocketchat_sim.migrations")
    assert (
        migrate_database({"_id": "control", "version": 330, "locked": False}, 330, "8.6.1")["version"] == 330
    )
    assert [r.getMessage() for r in caplog.records] == ["Not migrating, already at version 330"]


@pytest.mark.unit
@pytest.mark.parametrize("stored", [331, -1])
def test_unknown_version_stops_the_server_with_rocket_chats_error_box(stored):
    with pytest.raises(MigrationError, match=f"^Can't find migration version {stored}$") as caught:
        migrate_database({"_id": "control", "version": stored, "locked": False}, 330, "8.6.1")
    lines = caught.value.box.splitlines()
    assert "ERROR! SERVER STOPPED" in lines[1]
    body = [line.strip("| ").rstrip() for line in lines]
    for expected in (
        "Your database migration failed:",
        f"Can't find migration version {stored}",
        "This Rocket.Chat version: 8.6.1",
        f"Database locked at version: {stored}",
        "Database target version: 330",
    ):
        assert expected in body
    assert len({len(line) for line in lines}) == 1  # a closed frame


@pytest.mark.unit
def test_error_box_is_framed_like_show_box():
    assert error_box("T", "ab\nc").splitlines() == [
        "+------+",
        "|   T  |",
        "+------+",
        "|      |",
        "|  ab  |",
        "|  c   |",
        "|      |",
        "+------+",
    ]


@pytest.mark.unit
def test_state_file_without_migrations_loads_as_version_0(tmp_path):
    path = tmp_path / "state.json"
    old = State(path)
    old.save()
    data = json.loads(path.read_text())
    assert "migrations" not in data  # nothing set: the key is left out, as files written before it
    loaded = State(path)
    assert loaded.load()
    assert loaded.migrations is None
    assert migrate_database(loaded.migrations, 330, "8.6.1")["version"] == 330  # version 0: fresh rule
    loaded.migrations = {"_id": "control", "version": 330, "locked": False}
    loaded.save()
    assert json.loads(path.read_text())["migrations"] == {"_id": "control", "version": 330, "locked": False}
    assert _read_version(path) == 330


@pytest.mark.unit
@pytest.mark.parametrize("control", [[], {"_id": "control"}, {"version": "330"}, {"version": True}])
def test_malformed_migrations_control_is_refused(tmp_path, control):
    path = tmp_path / "state.json"
    State(path).save()
    data = json.loads(path.read_text())
    data["migrations"] = control
    path.write_text(json.dumps(data))
    with pytest.raises(StateFileError, match="migrations"):
        State(path).load()


# ------------------------------------------------------------------------- the process, start to start


@pytest.mark.integration
def test_fresh_start_writes_the_latest_version_before_serving(rocketchat_sim, tmp_path):
    path = tmp_path / "state.json"
    sim = rocketchat_sim({"SIM_MIGRATION_VERSION": "330"}, state_file=path)
    # read while the process runs (no shutdown save yet): written at startup, as the playbooks read it
    assert _read_version(path) == 330
    assert json.loads(path.read_text())["migrations"] == {"_id": "control", "version": 330, "locked": False}
    assert "Migrating from" not in _log(sim)
    assert "Not migrating" not in _log(sim)


@pytest.mark.integration
def test_same_version_restart_is_not_migrated(rocketchat_sim, tmp_path):
    path = tmp_path / "state.json"
    sim = rocketchat_sim({"SIM_MIGRATION_VERSION": "330"}, state_file=path)
    since = _restart(sim)
    assert "Not migrating, already at version 330" in _log(sim, since)
    assert "Migrating from" not in _log(sim, since)
    assert _read_version(path) == 330


@pytest.mark.integration
def test_newer_build_migrates_an_older_database_and_keeps_its_data(rocketchat_sim, tmp_path):
    path = tmp_path / "state.json"
    sim = rocketchat_sim({"SIM_MIGRATION_VERSION": "330"}, state_file=path)
    user = sim.create_user()
    rid = sim.api("POST", "channels.create", headers=user.headers, json={"name": "before-upgrade"}).json()[
        "channel"
    ]["_id"]
    sim.api("POST", "chat.postMessage", headers=user.headers, json={"roomId": rid, "text": "kept"})
    sim.process.stop()
    before = json.loads(path.read_text())
    assert before["migrations"]["version"] == 330

    since = _restart(sim, SIM_MIGRATION_VERSION="331", SIM_VERSION="8.7.0")
    log = _log(sim, since)
    assert "STARTUP rocketchat_sim.migrations: Migrating from version 330 -> 331" in log
    assert "Running up() on version 331" in log
    assert log.index("Migrating from version 330 -> 331") < log.index("Finished migrating.")
    assert _read_version(path) == 331  # persisted at startup, before the shutdown save
    # What make upgrade / make rollback read (roles/rocketchat/tasks/migration.yml): the statistics'
    # `migration`, Rocket.Chat's control record (statistics.ts: statistics.migration = getControl()).
    stats = sim.api("GET", "statistics", headers=sim.admin_headers, params={"refresh": "true"}).json()
    assert stats["migration"]["_id"] == "control"
    assert stats["migration"]["version"] == 331
    after = json.loads(path.read_text())
    assert {u["_id"] for u in after["users"]} == {u["_id"] for u in before["users"]}
    assert {r["_id"] for r in after["rooms"]} == {r["_id"] for r in before["rooms"]}
    assert sim.api("GET", "me", headers=user.headers).json()["username"] == user.username
    history = sim.api("GET", "channels.history", headers=user.headers, params={"roomId": rid}).json()
    assert [m["msg"] for m in history["messages"] if not m.get("t")] == ["kept"]


@pytest.mark.integration
def test_state_file_without_migrations_is_set_to_latest_not_migrated(rocketchat_sim, tmp_path):
    path = tmp_path / "state.json"
    sim = rocketchat_sim({"SIM_MIGRATION_VERSION": "330"}, state_file=path)
    user = sim.create_user()
    sim.process.stop()
    data = json.loads(path.read_text())
    del data["migrations"]  # a file written before the control document existed
    path.write_text(json.dumps(data))
    assert _read_version(path) == 0
    sim.process.env["SIM_MIGRATION_VERSION"] = "331"
    since = len(_log(sim))
    sim.process.start()
    assert _read_version(path) == 331
    assert "Migrating from" not in _log(sim, since)
    assert sim.api("GET", "me", headers=user.headers).json()["username"] == user.username


@pytest.mark.integration
def test_older_build_on_a_newer_database_exits_1_and_leaves_the_file_untouched(rocketchat_sim, tmp_path):
    path = tmp_path / "state.json"
    newer = rocketchat_sim({"SIM_MIGRATION_VERSION": "331", "SIM_VERSION": "8.7.0"}, state_file=path)
    newer.create_user()
    newer.process.stop()
    # laid out unlike the simulator's own compact JSON: any save, even of the same data, changes it
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2))
    before, inode = path.read_bytes(), path.stat().st_ino
    assert json.loads(before)["migrations"]["version"] == 331
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PORT": str(port),
        "BIND_IP": "127.0.0.1",
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASS": "unused-Pass-1",
        "ADMIN_EMAIL": "admin@example.test",
        "SIM_STATE_FILE": str(path),
        "SIM_MIGRATION_VERSION": "330",
        "SIM_VERSION": "8.6.1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rocketchat_sim"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    for expected in (
        "ERROR! SERVER STOPPED",
        "Your database migration failed:",
        "Can't find migration version 331",
        "This Rocket.Chat version: 8.6.1",
        "Database locked at version: 331",
        "Database target version: 330",
    ):
        assert expected in done.stderr, done.stderr
    assert path.read_bytes() == before  # the newer build's data exactly as it left it
    assert path.stat().st_ino == inode  # not even replaced by an identical copy
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".state-")) == []
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)  # nothing was ever served


@pytest.mark.unit
def test_docs_show_the_command_tested_here():
    assert f'python -c "{READ_VERSION}"' in (ROOT / "docs" / "simulator.md").read_text()
