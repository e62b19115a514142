"""MongoDB cannot run here: the mongodump and mongorestore commands the tool runs in the MongoDB container
are checked as built, and run by sh against stand-ins of the tools. A replica set is dumped through its URI
from a secondary, --oplog consistent, and restored through its URI (into whichever member is the primary);
bad settings fail before anything runs; the password is on no command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
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


SET = {"mongodb_replica_set": "rs0", "mongodb_members": ["mongo1:27017", "mongo2:27017", "mongo3"]}
SET_URI = "mongodb://mongo1:27017,mongo2:27017,mongo3/?replicaSet=rs0"


def test_single_member_dumps_the_local_mongod_with_oplog(tmp_path: Path) -> None:
    argv = _argv_in_the_container(tmp_path, tool.mongodump_shell(config()), {})
    assert argv[0] == "mongodump"
    assert {"--oplog", "--archive", "--gzip"} <= set(argv)
    assert not any(a.startswith(("--uri", "--readPreference")) for a in argv)


def test_replica_set_dumps_from_a_secondary_through_the_set_uri(tmp_path: Path) -> None:
    argv = _argv_in_the_container(tmp_path, tool.mongodump_shell(config(**SET)), {})
    assert argv[argv.index("--uri") + 1] == SET_URI
    assert "--readPreference=secondary" in argv
    assert "--oplog" in argv


def test_single_member_restores_into_the_local_mongod(tmp_path: Path) -> None:
    argv = _argv_in_the_container(tmp_path, tool.mongorestore_shell(config()), {})
    assert argv[0] == "mongorestore"
    assert "--uri" not in argv


def test_replica_set_restores_through_the_set_uri_into_its_primary(tmp_path: Path) -> None:
    """make rollback restores on MongoDB's first member, which after make upgrade's rs.stepDown() may be
    a secondary: a secondary refuses the writes, the set's URI sends them to the primary."""
    argv = _argv_in_the_container(tmp_path, tool.mongorestore_shell(config(**SET)), {})
    assert argv[argv.index("--uri") + 1] == SET_URI
    assert not any(a.startswith("--readPreference") for a in argv)  # writes: the primary
    assert {"--drop", "--oplogReplay", "--archive", "--gzip"} <= set(argv)


@pytest.mark.parametrize("shell", ["mongodump_shell", "mongorestore_shell"])
@pytest.mark.parametrize("password", ["pw", "it's 'quoted': #not a comment", "  spaces  "])
def test_the_password_reaches_the_tool_in_a_private_file_never_its_arguments(
    tmp_path: Path, shell: str, password: str
) -> None:
    """The host's ps lists a container's processes with their arguments: the root password goes through
    the tools' --config file (YAML), 0600, removed once the tool has run."""
    argv = _argv_in_the_container(tmp_path, getattr(tool, shell)(config(**SET)), {}, credential=password)
    assert "--password" not in argv
    assert not any(password in a for a in argv)
    seen = (tmp_path / "config-seen").read_text()
    assert yaml.safe_load(seen) == {"password": password}
    assert (tmp_path / "config-mode").read_text().strip() == "600"
    assert not Path(argv[argv.index("--config") + 1]).exists()
    assert argv[argv.index("--username") + 1] == "root"


def test_a_failing_tool_still_removes_its_password_file(tmp_path: Path) -> None:
    import subprocess

    with pytest.raises(subprocess.CalledProcessError) as failed:
        _argv_in_the_container(tmp_path, tool.mongorestore_shell(config()), {}, exit_code=3)
    assert failed.value.returncode == 3  # the tool's own status reaches the caller
    config_file = (tmp_path / "config-path").read_text().strip()
    assert not Path(config_file).exists()


def test_a_missing_password_file_fails_before_the_tool_runs(tmp_path: Path) -> None:
    import subprocess

    with pytest.raises(subprocess.CalledProcessError):
        _argv_in_the_container(
            tmp_path, tool.mongodump_shell(config()), {"MONGO_INITDB_ROOT_PASSWORD_FILE": "/nonexistent"}
        )
    assert not (tmp_path / "config-seen").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mongodb_replica_set": "rs0"}, "members"),
        ({"mongodb_replica_set": "rs0", "mongodb_members": ["a;rm -rf /"]}, "members"),
        ({"mongodb_replica_set": "rs 0", "mongodb_members": ["a"]}, "replica set name"),
        ({"mongodb_replica_set": "rs0", "mongodb_members": ["a"], "mongodb_read_preference": "x"}, "one of"),
    ],
)
def test_bad_replica_set_settings_are_clear_errors(extra: dict, message: str, tmp_path: Path) -> None:
    for shell in (tool.mongodump_shell, tool.mongorestore_shell):
        with pytest.raises(tool.BackupError, match=message):
            shell(config(**extra))
    # ... and when the configuration is read, before a restore stops anything.
    raw = {
        "backup_dir": "/b",
        "key_file": "/k",
        "root": "/r",
        "file_paths": [],
        "containers": {},
        "components": [],
        "bot_state_path": "/s",
        "start_order": [],
        **extra,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(tool.BackupError, match=message):
        tool.Config.load(str(path))


def _argv_in_the_container(
    tmp_path: Path, command: str, env: dict[str, str], *, credential: str = "pw", exit_code: int = 0
) -> list[str]:
    """COMMAND run by sh as the tool runs it in the MongoDB container, with stand-ins of mongodump and
    mongorestore on PATH (MongoDB's tools cannot run here). Each prints its name and arguments, one per
    line, and keeps what its --config file held (config-seen), the file's mode and its path; it exits
    with EXIT_CODE."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in_text = f"""#!/bin/sh
for a in "$0" "$@"; do printf '%s\\n' "$a"; done
while [ $# -gt 0 ]; do
  if [ "$1" = --config ]; then
    cp "$2" {tmp_path}/config-seen; stat -c %a "$2" > {tmp_path}/config-mode
    echo "$2" > {tmp_path}/config-path
  fi
  shift
done
exit {exit_code}
"""
    for name in ("mongodump", "mongorestore"):
        stand_in = bin_dir / name
        stand_in.write_text(stand_in_text)
        stand_in.chmod(0o755)
    (tmp_path / "root_password").write_text(credential + "\n")
    run_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MONGO_INITDB_ROOT_USERNAME": "root",
        "MONGO_INITDB_ROOT_PASSWORD_FILE": str(tmp_path / "root_password"),
        **env,
    }
    out = subprocess.run(
        ["sh", "-c", command], env=run_env, capture_output=True, text=True, timeout=30, check=True
    )
    return [Path(line).name if i == 0 else line for i, line in enumerate(out.stdout.splitlines())]


@pytest.mark.parametrize("replica_set", [False, True])
def test_the_dump_verifies_tls_where_the_container_names_its_ca(tmp_path: Path, replica_set: bool) -> None:
    extra = {"mongodb_replica_set": "rs0", "mongodb_members": ["10.0.0.1:27017"]} if replica_set else {}
    command = tool.mongodump_shell(config(**extra))
    ca = "/run/secrets/mongodb/tls/ca.crt"
    argv = _argv_in_the_container(tmp_path, command, {"MONGODB_TLS_CA_FILE": ca})
    assert argv[argv.index("--sslCAFile") + 1] == ca
    assert "--ssl" in argv
    plain = _argv_in_the_container(tmp_path, command, {})
    assert not {"--ssl", "--sslCAFile"} & set(plain)
    assert {"--oplog", "--archive", "--gzip"} <= set(plain)


@pytest.mark.parametrize("replica_set", [False, True])
def test_the_restore_verifies_tls_where_the_container_names_its_ca(tmp_path: Path, replica_set: bool) -> None:
    command = tool.mongorestore_shell(config(**(SET if replica_set else {})))
    argv = _argv_in_the_container(tmp_path, command, {"MONGODB_TLS_CA_FILE": "/ca.crt"})
    assert argv[argv.index("--sslCAFile") + 1] == "/ca.crt"
    assert {"--drop", "--oplogReplay", "--archive", "--gzip"} <= set(argv)
    plain = _argv_in_the_container(tmp_path, command, {})
    assert "--ssl" not in plain
