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
