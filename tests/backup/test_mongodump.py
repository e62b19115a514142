"""MongoDB cannot run here: the mongodump command the tool runs in the MongoDB container is checked as
built. A replica set is dumped through its URI from a secondary, --oplog consistent; bad settings fail."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from plugins.backup import load_backup_tool

pytestmark = pytest.mark.unit


tool = load_backup_tool("photomatrix_backup_mongodump")


def config(**extra):
    base = {
        "backup_dir": "/var/backups/photomatrix",
        "key_file": "/etc/photomatrix-backup/backup.key",
        "root": "/srv/photomatrix",
        "file_paths": ["secrets"],
        "components": ["rocketchat"],
        "containers": {"mongodb": "photomatrix-mongodb"},
        "start_order": [],
        "bot_state_path": "/var/lib/bot/bot.sqlite3",
    }
    return tool.Config(
        **{
            k: (Path(v) if k in ("backup_dir", "key_file", "root") else v)
            for k, v in {**base, **extra}.items()
        }
    )


def test_single_member_dumps_the_local_mongod_with_oplog() -> None:
    argv = shlex.split(tool.mongodump_shell(config()))
    assert argv[:2] == ["exec", "mongodump"]
    assert {"--oplog", "--archive", "--gzip"} <= set(argv)
    assert not any(a.startswith(("--uri", "--readPreference")) for a in argv)


def test_replica_set_dumps_from_a_secondary_through_the_set_uri() -> None:
    built = tool.mongodump_shell(
        config(mongodb_replica_set="rs0", mongodb_members=["mongo1:27017", "mongo2:27017", "mongo3"])
    )
    argv = shlex.split(built)
    assert "--uri" in argv
    assert argv[argv.index("--uri") + 1] == "mongodb://mongo1:27017,mongo2:27017,mongo3/?replicaSet=rs0"
    assert "--readPreference=secondary" in argv
    assert "--oplog" in argv
    # The password stays a reference to the container's file: no secret in the command.
    assert '"$(cat "$MONGO_INITDB_ROOT_PASSWORD_FILE")"' in built


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mongodb_replica_set": "rs0"}, "members"),
        ({"mongodb_replica_set": "rs0", "mongodb_members": ["a;rm -rf /"]}, "members"),
        ({"mongodb_replica_set": "rs 0", "mongodb_members": ["a"]}, "replica set name"),
        ({"mongodb_replica_set": "rs0", "mongodb_members": ["a"], "mongodb_read_preference": "x"}, "one of"),
    ],
)
def test_bad_replica_set_settings_are_clear_errors(extra: dict, message: str) -> None:
    with pytest.raises(tool.BackupError, match=message):
        tool.mongodump_shell(config(**extra))


def _argv_in_the_container(tmp_path: Path, command: str, env: dict[str, str]) -> list[str]:
    """COMMAND run by sh as the tool runs it in the MongoDB container, with a stand-in mongodump on PATH
    (MongoDB's tools cannot run here) that prints the arguments it got, one per line."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("mongodump", "mongorestore"):
        stand_in = bin_dir / name
        stand_in.write_text('#!/bin/sh\nfor a in "$0" "$@"; do printf "%s\\n" "$a"; done\n')
        stand_in.chmod(0o755)
    (tmp_path / "root_password").write_text("pw")
    run_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MONGO_INITDB_ROOT_USERNAME": "root",
        "MONGO_INITDB_ROOT_PASSWORD_FILE": str(tmp_path / "root_password"),
        **env,
    }
    out = subprocess.run(
        ["sh", "-c", command], env=run_env, capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.splitlines()[1:]


@pytest.mark.parametrize("replica_set", [False, True])
def test_the_dump_verifies_tls_where_the_container_names_its_ca(tmp_path: Path, replica_set: bool) -> None:
    extra = {"mongodb_replica_set": "rs0", "mongodb_members": ["10.0.0.1:27017"]} if replica_set else {}
    command = tool.mongodump_shell(config(**extra))
    ca = "/run/secrets/mongodb/tls/ca.crt"
    argv = _argv_in_the_container(tmp_path, command, {"MONGODB_TLS_CA_FILE": ca})
    assert argv[argv.index("--sslCAFile") + 1] == ca
    assert "--ssl" in argv
    assert argv[argv.index("--password") + 1] == "pw"
    plain = _argv_in_the_container(tmp_path, command, {})
    assert not {"--ssl", "--sslCAFile"} & set(plain)
    assert {"--oplog", "--archive", "--gzip"} <= set(plain)


def test_the_restore_verifies_tls_where_the_container_names_its_ca(tmp_path: Path) -> None:
    argv = _argv_in_the_container(tmp_path, tool.mongorestore_shell(), {"MONGODB_TLS_CA_FILE": "/ca.crt"})
    assert argv[argv.index("--sslCAFile") + 1] == "/ca.crt"
    assert {"--drop", "--oplogReplay", "--archive", "--gzip"} <= set(argv)
    plain = _argv_in_the_container(tmp_path, tool.mongorestore_shell(), {})
    assert "--ssl" not in plain
