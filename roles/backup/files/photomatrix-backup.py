#!/usr/bin/python3
# ruff: noqa: S603, S607  (runs fixed docker/openssl/pg_dump argv on the host, never a shell)
"""photomatrix-backup: encrypted, verified backups of the deployed Photomatrix stack, and their restore.

Runs on the Docker host as root, Python 3 standard library only (plus the docker and openssl commands).
Settings come from the JSON file the Ansible role `backup` writes (default
/etc/photomatrix-backup/config.json). One run of `create` writes ONE archive:

    photomatrix-<UTC time>.pmbackup = MAGIC | openssl enc (AES-256-CBC, PBKDF2) of a tar.gz | HMAC-SHA256

The tar.gz holds manifest.json and one file per part: the ERP database (SQLite online backup, or
pg_dump -Fc), Rocket.Chat (mongodump --oplog, or the simulator's state file), the bot's state (its SQLite
file, or, when its replicas share Redis, a point-in-time RDB snapshot of photomatrix-redis) and a tar
of the deployment's secrets and PKI. The HMAC (encrypt-then-MAC, its own key derived from the key
file) is checked before anything is decrypted, so a modified archive is refused as a whole.

Off-host copies (when `remote_repository` is set): each new archive is shipped to a restic repository
(sftp to another host, a directory, or any restic URL) as one snapshot tagged `photomatrix`. restic's own
password is read from `remote_password_file` (0600, apart from the archives and from the archive key):
only its path is ever on a command line, never the password itself. `prune` also runs `restic forget
--prune` with the remote retention, `verify` also runs `restic check`, `restore --from-remote` fetches an
archive back from the repository before restoring it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import io
import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import subprocess  # nosec B404
import sys
import tarfile
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

TOOL_VERSION = "1"
MAGIC = b"PMXBAK1\n"
TAG_SIZE = 32
SUFFIX = ".pmbackup"
NAME_RE = re.compile(r"^photomatrix-(\d{8}T\d{6}Z)(?:-[a-z0-9-]+)?\.pmbackup$")
DEFAULT_CONFIG = "/etc/photomatrix-backup/config.json"
COMPONENTS = ("secrets", "erp", "rocketchat", "bot")
CHUNK = 1 << 20
DEFAULT_REDIS_CONTAINER = "photomatrix-redis"
REDIS_CONF = "/etc/redis/redis.conf"

log = logging.getLogger("photomatrix-backup")

# Runs inside the ERP or bot container (its own Python): a consistent copy through SQLite's online
# backup API, written next to the database (the container's root file system is read-only), streamed
# to stdout, then removed.
SQLITE_DUMP = """
import os, shutil, sqlite3, sys, tempfile
path = sys.argv[1]
fd, tmp = tempfile.mkstemp(prefix=".backup-", dir=os.path.dirname(path))
os.close(fd)
try:
    src = sqlite3.connect(path, timeout=30)
    dst = sqlite3.connect(tmp)
    src.backup(dst)
    dst.close()
    src.close()
    with open(tmp, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
finally:
    os.unlink(tmp)
"""

# Runs in a throw-away container of the service's own image with the service's volume mounted (the
# service itself is stopped): replace one file atomically from stdin and drop stale SQLite WAL files.
VOLUME_WRITE = """
import os, shutil, sys, tempfile
path = sys.argv[1]
fd, tmp = tempfile.mkstemp(prefix=".restore-", dir=os.path.dirname(path))
with os.fdopen(fd, "wb") as f:
    shutil.copyfileobj(sys.stdin.buffer, f)
    f.flush()
    os.fsync(f.fileno())
os.chmod(tmp, 0o600)
os.replace(tmp, path)
for stale in (path + "-wal", path + "-shm", path + "-journal"):
    if os.path.exists(stale):
        os.unlink(stale)
"""

# Runs inside the Redis container (sh, its own redis-cli, as its user): a point-in-time snapshot over the
# replication protocol (redis-cli --rdb, a fork of the server: no pause for the bots), written to a file
# in Redis' data directory (redis-cli only cuts the end-of-transfer mark off a file, never off stdout;
# the root file system is read-only), streamed to stdout, then removed. The password goes from the
# mounted configuration straight into redis-cli's stdin (--askpass): never in an argv, an environment
# or docker inspect. redis-cli gets its own time limit inside the container (coreutils' timeout), so a
# hung transfer ends there too and its file is removed.
REDIS_DUMP = r"""
set -eu
conf="$1" out="$2" port="$3" limit="$4"
rm -f "$out"
trap 'rm -f "$out"' EXIT
if grep -q '^requirepass[[:space:]]' "$conf"; then
    sed -n 's/^requirepass[[:space:]]\{1,\}//p' "$conf" |
        timeout "$limit" redis-cli -p "$port" --askpass --rdb "$out" >&2
else
    timeout "$limit" redis-cli -p "$port" --rdb "$out" </dev/null >&2
fi
cat "$out"
"""

# Runs in a throw-away container of Redis' own image, as its user, with its volume mounted (Redis is
# stopped): the snapshot from stdin becomes both the RDB file and the append-only file's only part (its
# base, with a manifest naming just it). Redis loads the AOF, not dump.rdb, when appendonly is on.
REDIS_RESTORE = r"""
set -eu
dir="$1" db="$2" aofdir="$3" aof="$4"
umask 077
cd "$dir"
rm -rf .restore-new .restore-old
mkdir -p .restore-new/aof
cat > .restore-new/rdb
cp .restore-new/rdb ".restore-new/aof/$aof.1.base.rdb"
printf 'file %s seq 1 type b\n' "$aof.1.base.rdb" > ".restore-new/aof/$aof.manifest"
sync
if [ -e "$aofdir" ]; then mv "$aofdir" .restore-old; fi
mv .restore-new/aof "$aofdir"
mv .restore-new/rdb "$db"
rm -rf .restore-new .restore-old
sync
"""

# The root password reaches mongodump/mongorestore through a --config file (MongoDB Database Tools 100.3+,
# YAML `password:`), never a command line: the host's `ps` lists a container's processes and their
# arguments. The shell writes it 0600 into the container's /tmp with its own builtin printf (no process
# sees the password as an argument) and removes it when the tool exits, fails or is interrupted. Expanded
# in the container's shell; the password is a YAML single-quoted scalar (a quote doubled).
MONGO_CONFIG = (
    "umask 077 && cfg=\"$(mktemp)\" || exit 1; trap 'rm -f \"$cfg\"' EXIT; trap 'exit 143' HUP INT TERM; "
    'pw="$(cat "$MONGO_INITDB_ROOT_PASSWORD_FILE")" || exit 1; '
    'printf "password: \'%s\'\\n" "$(printf \'%s\' "$pw" | sed "s/\'/\'\'/g")" > "$cfg" || exit 1; unset pw; '
)
MONGO_AUTH = '--config "$cfg" --username "$MONGO_INITDB_ROOT_USERNAME" --authenticationDatabase admin --quiet'
# TLS to mongod where the mongodb role serves it (roles/mongodb, mongodb_tls): the container names its CA
# file in MONGODB_TLS_CA_FILE, and the tools verify the member against it (the name localhost, or the
# members' addresses of the set's URI, are on its certificate). Expanded in the container's shell.
MONGO_TLS = '${MONGODB_TLS_CA_FILE:+--ssl --sslCAFile "$MONGODB_TLS_CA_FILE"}'


class BackupError(Exception):
    """A failure the operator must see; the message never contains a secret."""


@dataclass
class Config:
    backup_dir: Path
    key_file: Path
    root: Path
    file_paths: list[str]
    containers: dict[str, str]
    components: list[str]
    bot_state_path: str
    start_order: list[str]
    keep_daily: int = 7
    keep_weekly: int = 4
    stack_version: str = ""
    health_timeout: int = 300
    command_timeout: int = 1800
    mongodb_replica_set: str = ""
    mongodb_members: list[str] = field(default_factory=list)
    mongodb_read_preference: str = "secondary"
    remote_repository: str = ""
    remote_password_file: Path | None = None
    remote_keep_daily: int = 14
    remote_keep_weekly: int = 8
    remote_ssh_key: str = ""
    remote_known_hosts: str = ""

    @classmethod
    def load(cls, path: str) -> Config:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise BackupError(f"cannot read the configuration {path}: {exc}") from exc
        try:
            config = cls(
                backup_dir=Path(raw["backup_dir"]),
                key_file=Path(raw["key_file"]),
                root=Path(raw["root"]),
                file_paths=list(raw["file_paths"]),
                containers={"redis": DEFAULT_REDIS_CONTAINER, **dict(raw["containers"])},
                components=[c for c in raw["components"] if c in COMPONENTS],
                bot_state_path=raw["bot_state_path"],
                start_order=list(raw["start_order"]),
                keep_daily=int(raw.get("keep_daily", 7)),
                keep_weekly=int(raw.get("keep_weekly", 4)),
                stack_version=str(raw.get("stack_version", "")),
                health_timeout=int(raw.get("health_timeout", 300)),
                command_timeout=int(raw.get("command_timeout", 1800)),
                mongodb_replica_set=str(raw.get("mongodb_replica_set") or ""),
                mongodb_members=[str(m) for m in raw.get("mongodb_members") or []],
                mongodb_read_preference=str(raw.get("mongodb_read_preference") or "secondary"),
                remote_repository=str(raw.get("remote_repository") or ""),
                remote_password_file=(
                    Path(raw["remote_password_file"]) if raw.get("remote_password_file") else None
                ),
                remote_keep_daily=int(raw.get("remote_keep_daily", 14)),
                remote_keep_weekly=int(raw.get("remote_keep_weekly", 8)),
                remote_ssh_key=str(raw.get("remote_ssh_key") or ""),
                remote_known_hosts=str(raw.get("remote_known_hosts") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"configuration {path} is incomplete or invalid: {exc!r}") from exc
        # Checked before any command runs: a restore stops containers before it reaches MongoDB.
        replica_set_uri(config)
        return config


@dataclass
class Part:
    name: str
    component: str
    kind: str
    file: str
    size: int = 0
    sha256: str = ""
    source: dict = field(default_factory=dict)


# ---------------------------------------------------------------- commands and containers


def run(argv: list[str], *, stdin=None, stdout=None, timeout: float, what: str) -> bytes:
    """Run a command; on failure raise with the tail of its stderr (commands never echo secrets)."""
    try:
        result = subprocess.run(  # nosec B603
            argv,
            stdin=stdin,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what}: timed out after {timeout:.0f} s") from exc
    except OSError as exc:
        raise BackupError(f"{what}: {exc}") from exc
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-800:]
        raise BackupError(f"{what}: exit code {result.returncode}: {tail}")
    return result.stdout or b""


def inspect(name: str) -> dict | None:
    try:
        out = subprocess.run(  # nosec B603 B607
            ["docker", "inspect", "--type", "container", name],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"docker inspect {name}: {exc}") from exc
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)[0]


def require(name: str) -> dict:
    info = inspect(name)
    if info is None:
        raise BackupError(f"container {name} does not exist: is the stack deployed on this host?")
    return info


def container_env(info: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in info["Config"].get("Env") or [] if "=" in item)


def volume_for(info: dict, path: str) -> tuple[str, str]:
    """The named volume holding `path` inside the container, and where it is mounted."""
    best: tuple[str, str] | None = None
    for mount in info.get("Mounts", []):
        dest = mount["Destination"].rstrip("/")
        inside = path == dest or path.startswith(dest + "/")
        if mount["Type"] == "volume" and inside and (best is None or len(dest) > len(best[1])):
            best = (mount["Name"], dest)
    if best is None:
        raise BackupError(f"{info['Name'].lstrip('/')}: no volume holds {path}")
    return best


def image_of(info: dict) -> dict:
    return {"image": info["Config"]["Image"], "image_id": info["Image"]}


# ---------------------------------------------------------------- encryption


def read_key(config: Config) -> bytes:
    try:
        st = config.key_file.stat()
        key = config.key_file.read_bytes().strip()
    except OSError as exc:
        raise BackupError(f"cannot read the backup key {config.key_file}: {exc.strerror}") from exc
    if st.st_mode & 0o077:
        raise BackupError(f"the backup key {config.key_file} is readable by others: chmod 600 it")
    if len(key) < 32:
        raise BackupError(f"the backup key {config.key_file} is too short (32 characters at least)")
    return key


def mac_key(key: bytes) -> bytes:
    return hmac.new(key, b"photomatrix-backup/hmac/v1", hashlib.sha256).digest()


def openssl_argv(config: Config, decrypt: bool) -> list[str]:
    argv = ["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-iter", "100000", "-md", "sha256"]
    argv += ["-d"] if decrypt else ["-salt"]
    return [*argv, "-pass", f"file:{config.key_file}"]


def encrypt(config: Config, plain: Path, out: Path) -> None:
    key = read_key(config)
    with open(plain, "rb") as src, open(out, "wb") as dst:
        dst.write(MAGIC)
        dst.flush()
        run(
            openssl_argv(config, False), stdin=src, stdout=dst, timeout=config.command_timeout, what="openssl"
        )
    tag = hmac.new(mac_key(key), digestmod=hashlib.sha256)
    with open(out, "rb") as f:
        while chunk := f.read(CHUNK):
            tag.update(chunk)
    with open(out, "ab") as f:
        f.write(tag.digest())
        f.flush()
        os.fsync(f.fileno())


def authenticate(config: Config, archive: Path) -> None:
    """Check the archive's HMAC before anything reads its content."""
    key = read_key(config)
    try:
        size = archive.stat().st_size
        with open(archive, "rb") as f:
            if size < len(MAGIC) + TAG_SIZE or f.read(len(MAGIC)) != MAGIC:
                raise BackupError(f"{archive} is not a Photomatrix backup archive (bad header or truncated)")
            tag = hmac.new(mac_key(key), MAGIC, hashlib.sha256)
            remaining = size - len(MAGIC) - TAG_SIZE
            while remaining:
                chunk = f.read(min(CHUNK, remaining))
                if not chunk:
                    raise BackupError(f"{archive} is truncated")
                tag.update(chunk)
                remaining -= len(chunk)
            expected = f.read(TAG_SIZE)
    except OSError as exc:
        raise BackupError(f"cannot read {archive}: {exc.strerror}") from exc
    if not hmac.compare_digest(tag.digest(), expected):
        raise BackupError(
            f"{archive} FAILED authentication: it was modified, damaged, or made with another key; "
            "nothing in it was used"
        )


def decrypt(config: Config, archive: Path, out: Path) -> None:
    size = archive.stat().st_size
    with open(archive, "rb") as src, open(out, "wb") as dst:
        src.seek(len(MAGIC))
        proc = subprocess.Popen(  # nosec B603
            openssl_argv(config, True), stdin=subprocess.PIPE, stdout=dst, stderr=subprocess.PIPE
        )
        remaining = size - len(MAGIC) - TAG_SIZE
        try:
            while remaining:
                chunk = src.read(min(CHUNK, remaining))
                proc.stdin.write(chunk)
                remaining -= len(chunk)
            _, err = proc.communicate(timeout=config.command_timeout)
        except (subprocess.TimeoutExpired, BrokenPipeError) as exc:
            proc.kill()
            raise BackupError(f"decrypting {archive} failed: {exc}") from exc
    if proc.returncode != 0:
        raise BackupError(f"decrypting {archive} failed: {err.decode(errors='replace').strip()[-300:]}")


# ---------------------------------------------------------------- parts: dump


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_sqlite(path: Path) -> None:
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path.name}: not a readable SQLite database: {exc}") from exc
    finally:
        db.close()
    if result != "ok":
        raise BackupError(f"{path.name}: SQLite integrity check failed: {result[:200]}")


def dump_sqlite(config: Config, container: str, db_path: str, out: Path) -> None:
    with open(out, "wb") as f:
        run(
            ["docker", "exec", "-i", container, "python", "-c", SQLITE_DUMP, db_path],
            stdout=f,
            timeout=config.command_timeout,
            what=f"SQLite backup in {container}",
        )
    check_sqlite(out)


def postgres_target(url: str, passfile: str | None = None) -> tuple[str, dict[str, str]]:
    """A libpq URL without its password, and the environment carrying the password (never argv): from
    the URL, or libpq's password file PASSFILE (the ERP's, when its URL names no password)."""
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.split("+", 1)[0]
    netloc = parsed.hostname or ""
    if parsed.username:
        netloc = f"{urllib.parse.quote(urllib.parse.unquote(parsed.username))}@{netloc}"
    if parsed.port:
        netloc += f":{parsed.port}"
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = urllib.parse.unquote(parsed.password)
    elif passfile:
        env["PGPASSFILE"] = passfile
    return urllib.parse.urlunsplit((scheme, netloc, parsed.path, parsed.query, "")), env


def pgpass_on_host(info: dict) -> str | None:
    """Where on this host the ERP container's libpq password file (PGPASSFILE, a bind mount) is."""
    inside = container_env(info).get("PGPASSFILE")
    if not inside:
        return None
    for mount in info.get("Mounts", []):
        if mount.get("Type") == "bind" and mount.get("Destination") == inside:
            return mount["Source"]
    raise BackupError(f"the ERP container's PGPASSFILE {inside} is not a file mounted from this host")


def erp_database(config: Config) -> tuple[str, str, dict]:
    info = require(config.containers["erp"])
    url = container_env(info).get("ERP_DATABASE_URL", "")
    if url.startswith("sqlite:///"):
        return "sqlite", url.removeprefix("sqlite:///"), info
    if url.startswith("postgresql"):
        return "postgresql", url, info
    raise BackupError(
        "the ERP container has no ERP_DATABASE_URL this tool understands (sqlite or postgresql)"
    )


def pg_tool(name: str, url: str, args: list[str], timeout: float, passfile: str | None = None) -> None:
    """pg_dump / pg_restore from the host against the ERP's database; the password only in PGPASSWORD."""
    if shutil.which(name) is None:
        raise BackupError(
            f"the ERP uses PostgreSQL: install Debian's postgresql-client on this host ({name})"
        )
    target, env = postgres_target(url, passfile)
    try:
        result = subprocess.run(  # nosec B603
            [name, *args, f"--dbname={target}"],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{name}: timed out after {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise BackupError(f"{name} failed: {result.stderr.decode(errors='replace').strip()[-500:]}")


def dump_postgres(url: str, out: Path, timeout: float, passfile: str | None = None) -> None:
    pg_tool("pg_dump", url, ["-Fc", "--no-owner", f"--file={out}"], timeout, passfile)


def restore_postgres(url: str, dump: Path, timeout: float, passfile: str | None = None) -> None:
    pg_tool(
        "pg_restore",
        url,
        ["--clean", "--if-exists", "--no-owner", "--single-transaction", str(dump)],
        timeout,
        passfile,
    )


def dump_erp(config: Config, staging: Path) -> list[Part]:
    kind, where, info = erp_database(config)
    name = config.containers["erp"]
    if kind == "sqlite":
        dump_sqlite(config, name, where, staging / "erp.sqlite3")
        return [
            Part("erp-database", "erp", "sqlite", "erp.sqlite3", source={"path": where, **image_of(info)})
        ]
    dump_postgres(where, staging / "erp.pgdump", config.command_timeout, pgpass_on_host(info))
    return [Part("erp-database", "erp", "pg_dump", "erp.pgdump", source=image_of(info))]


def rocketchat_mode(config: Config) -> tuple[str, dict | None]:
    """The simulator persists to SIM_STATE_FILE; the official image keeps its data in MongoDB (and
    uploads on a volume). With several hosts, Rocket.Chat and MongoDB may run on different ones."""
    info = inspect(config.containers["rocketchat"])
    if info is not None and "SIM_STATE_FILE" in container_env(info):
        return "simulator", info
    return "mongodb", info


MEMBER_RE = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")
READ_PREFERENCES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")


def replica_set_uri(config: Config) -> str:
    """The replica set through every member (mongodb_replica_set, mongodb_members), or "" for the local
    member; the settings are checked here, as they go into a shell command."""
    if not config.mongodb_replica_set:
        return ""
    if not config.mongodb_members or not all(MEMBER_RE.match(m) for m in config.mongodb_members):
        raise BackupError("mongodb_members must list the replica set's members as host[:port]")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", config.mongodb_replica_set):
        raise BackupError("mongodb_replica_set is not a valid replica set name")
    if config.mongodb_read_preference not in READ_PREFERENCES:
        raise BackupError(f"mongodb_read_preference must be one of {', '.join(READ_PREFERENCES)}")
    return f"mongodb://{','.join(config.mongodb_members)}/?replicaSet={config.mongodb_replica_set}"


def mongodump_shell(config: Config) -> str:
    """The mongodump command run in the MongoDB container: the local member, or, with a replica set
    configured, the set through its URI reading from a secondary; --oplog either way (a consistent
    point in time); over verified TLS where the container names its CA (MONGO_TLS). The password comes
    from the container's file, inside the container only (MONGO_CONFIG)."""
    command = "mongodump"
    uri = replica_set_uri(config)
    if uri:
        command += f" --uri '{uri}' --readPreference={config.mongodb_read_preference}"
    return f"{MONGO_CONFIG}{command} {MONGO_AUTH} {MONGO_TLS} --oplog --archive --gzip"


def mongorestore_shell(config: Config) -> str:
    """The mongorestore command run in the MongoDB container: the archive from stdin, its collections
    dropped first, the oplog replayed (the dump's point in time). With a replica set, through the set's
    URI: the writes go to whichever member is the PRIMARY now (after `make upgrade`'s rs.stepDown() it
    need not be this one; a secondary refuses them) and the others replicate them. TLS as mongodump's."""
    uri = replica_set_uri(config)
    command = f"mongorestore --uri '{uri}'" if uri else "mongorestore"
    return f"{MONGO_CONFIG}{command} {MONGO_AUTH} {MONGO_TLS} --drop --oplogReplay --archive --gzip"


def dump_rocketchat(config: Config, staging: Path) -> list[Part]:
    mode, info = rocketchat_mode(config)
    name = config.containers["rocketchat"]
    if mode == "simulator":
        state = container_env(info)["SIM_STATE_FILE"]
        out = staging / "rocketchat-sim-state.json"
        if (info.get("State") or {}).get("Running"):
            # The simulator replaces its state file atomically, so one read is a consistent snapshot.
            with open(out, "wb") as f:
                run(
                    ["docker", "exec", name, "cat", state],
                    stdout=f,
                    timeout=600,
                    what="reading the simulator state",
                )
        else:
            # Stopped (make rollback stops Rocket.Chat before the restore's safety backup): docker cp
            # reads its volume without starting it, as a tar stream of the one file.
            copied = run(
                ["docker", "cp", f"{name}:{state}", "-"], timeout=600, what="copying the simulator state"
            )
            with tarfile.open(fileobj=io.BytesIO(copied)) as tar:
                member = next((m for m in tar.getmembers() if m.isfile()), None)
                data = tar.extractfile(member) if member is not None else None
                if data is None:
                    raise BackupError("copying the simulator state: docker cp returned no file")
                out.write_bytes(data.read())
        try:
            json.loads(out.read_bytes())
        except ValueError as exc:
            raise BackupError(f"the simulator's state file is not valid JSON: {exc}") from exc
        return [Part("rocketchat-state", "rocketchat", "simulator-state", out.name, source={"path": state})]
    parts = []
    mongo = config.containers["mongodb"]
    mongo_info = inspect(mongo)
    if mongo_info is not None:
        out = staging / "mongodb.archive.gz"
        with open(out, "wb") as f:
            run(
                [
                    "docker",
                    "exec",
                    mongo,
                    "sh",
                    "-c",
                    mongodump_shell(config),
                ],
                stdout=f,
                timeout=config.command_timeout,
                what="mongodump",
            )
        parts.append(
            Part("rocketchat-mongodb", "rocketchat", "mongodump", out.name, source=image_of(mongo_info))
        )
    if info is not None and any(m["Destination"] == "/app/uploads" for m in info.get("Mounts", [])):
        uploads = staging / "rocketchat-uploads.tar"
        with open(uploads, "wb") as f:
            run(
                ["docker", "cp", f"{name}:/app/uploads", "-"],
                stdout=f,
                timeout=600,
                what="copying the uploads",
            )
        parts.append(Part("rocketchat-uploads", "rocketchat", "tar", uploads.name, source=image_of(info)))
    if not parts:
        raise BackupError(
            f"neither {name} nor {mongo} exists on this host: remove rocketchat from its components"
        )
    return parts


def dump_bot(config: Config, staging: Path) -> list[Part]:
    name = config.containers["bot"]
    kind, redis_info = bot_store(config)
    if kind == "redis":
        out = staging / "bot-redis.rdb"
        settings = dump_redis(config, redis_info, out)
        source = {"container": redis_info["Name"].lstrip("/"), "dir": settings.dir, **image_of(redis_info)}
        return [Part("bot-state", "bot", "redis-rdb", out.name, source=source)]
    dump_sqlite(config, name, config.bot_state_path, staging / "bot.sqlite3")
    return [Part("bot-state", "bot", "sqlite", "bot.sqlite3", source={"path": config.bot_state_path})]


# ---------------------------------------------------------------- the bot's Redis


def bot_store(config: Config) -> tuple[str, dict | None]:
    """Where the bot keeps its state: "sqlite" (its file on the first replica's volume), or "redis" with
    Redis' container, when the replicas read their shared store's URL from BOT_STATE_URL_FILE (the
    chatbot role sets it with chatbot_replicas > 1; it takes precedence over the SQLite path)."""
    info = require(config.containers["bot"])
    if "BOT_STATE_URL_FILE" not in container_env(info):
        return "sqlite", None
    name = config.containers.get("redis", DEFAULT_REDIS_CONTAINER)
    redis_info = inspect(name)
    if redis_info is None:
        raise BackupError(
            f"the bot keeps its state in Redis (BOT_STATE_URL_FILE) but container {name} does not exist "
            "on this host"
        )
    return "redis", redis_info


@dataclass
class RedisSettings:
    dir: str = "/data"
    port: int = 6379
    dbfilename: str = "dump.rdb"
    appenddirname: str = "appendonlydir"
    appendfilename: str = "appendonly.aof"


REDIS_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def redis_conf_path(info: dict) -> str:
    """The configuration file Redis' container was started with (its command), by default REDIS_CONF."""
    command = [*(info["Config"].get("Entrypoint") or []), *(info["Config"].get("Cmd") or [])]
    return next((arg for arg in command if arg.endswith(".conf")), REDIS_CONF)


def redis_settings(info: dict) -> RedisSettings:
    """The non-secret settings the backup needs, read on this host from the configuration file mounted
    into Redis' container (requirepass is skipped: the password stays in the file)."""
    inside = redis_conf_path(info)
    mount = next(
        (m for m in info.get("Mounts", []) if m.get("Type") == "bind" and m.get("Destination") == inside),
        None,
    )
    name = info["Name"].lstrip("/")
    if mount is None:
        raise BackupError(f"{name}: its configuration {inside} is not a file mounted from this host")
    try:
        text = Path(mount["Source"]).read_text()
    except OSError as exc:
        raise BackupError(f"{name}: cannot read its configuration {mount['Source']}: {exc.strerror}") from exc
    return parse_redis_conf(text, name)


def parse_redis_conf(text: str, name: str = "redis") -> RedisSettings:
    settings = RedisSettings()
    for line in text.splitlines():
        words = line.split(None, 1)
        if len(words) != 2 or words[0].lower() not in (
            "dir",
            "port",
            "dbfilename",
            "appenddirname",
            "appendfilename",
        ):
            continue
        key, value = words[0].lower(), words[1].strip().strip('"')
        if key == "port":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise BackupError(f"{name}: port {value!r} is not a TCP port redis-cli can reach")
            settings.port = int(value)
        elif key == "dir":
            if not value.startswith("/") or ".." in value.split("/"):
                raise BackupError(f"{name}: dir {value!r} is not an absolute path")
            settings.dir = value.rstrip("/") or "/"
        else:
            if not REDIS_FILE_RE.match(value):
                raise BackupError(f"{name}: {key} {value!r} is not a plain file name")
            setattr(settings, key, value)
    return settings


def redis_dump_argv(info: dict, settings: RedisSettings, limit: int = 1800) -> list[str]:
    """docker exec of REDIS_DUMP: paths, the port and redis-cli's time limit (s), no password."""
    out = f"{settings.dir}/.photomatrix-backup.rdb"
    name = info["Name"].lstrip("/")
    return [
        "docker",
        "exec",
        name,
        "sh",
        "-c",
        REDIS_DUMP,
        "sh",
        redis_conf_path(info),
        out,
        str(settings.port),
        str(max(limit, 1)),
    ]


def dump_redis(config: Config, info: dict, out: Path) -> RedisSettings:
    name = info["Name"].lstrip("/")
    if not (info.get("State") or {}).get("Running"):
        raise BackupError(f"{name} is not running: the bot's Redis state cannot be snapshotted")
    settings = redis_settings(info)
    with open(out, "wb") as f:
        run(
            # redis-cli's own limit ends before the docker exec's: it cleans up inside the container.
            redis_dump_argv(info, settings, max(config.command_timeout - 30, 30)),
            stdin=subprocess.DEVNULL,
            stdout=f,
            timeout=config.command_timeout,
            what=f"Redis snapshot (redis-cli --rdb) in {name}",
        )
    check_rdb(out)
    return settings


def _crc64_table() -> list[int]:
    """Redis' CRC-64 (Jones polynomial, reflected), the checksum at the end of every RDB file."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x95AC9329AC4BC9B5 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC64_TABLE = _crc64_table()


def crc64(data: bytes, crc: int = 0) -> int:
    table = CRC64_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def check_rdb(path: Path) -> None:
    """An RDB file as Redis writes it: "REDIS" and its version, then the data, the EOF opcode (0xFF) and
    the CRC-64 of everything before it (little-endian; 0 when Redis was told not to checksum). Nothing
    may follow: a copy with trailing bytes (redis-cli's end-of-transfer mark) would not load as an AOF
    base."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
        if size < 18 or head[:5] != b"REDIS" or not head[5:9].isdigit():
            raise BackupError(f"{path.name}: not a Redis RDB snapshot (bad header or empty)")
        f.seek(size - 9)
        tail = f.read(9)
        if tail[0] != 0xFF:
            raise BackupError(f"{path.name}: the Redis snapshot is truncated or has trailing bytes")
        expected = int.from_bytes(tail[1:], "little")
        if expected == 0:
            return
        f.seek(0)
        crc, remaining = 0, size - 8
        while remaining:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                raise BackupError(f"{path.name}: the Redis snapshot is truncated")
            crc = crc64(chunk, crc)
            remaining -= len(chunk)
    if crc != expected:
        raise BackupError(f"{path.name}: the Redis snapshot's CRC-64 does not match: it is damaged")


def restore_redis(config: Config, info: dict, source: Path) -> None:
    """Put the snapshot into the stopped Redis' volume (REDIS_RESTORE, through run_in_volume)."""
    settings = redis_settings(info)
    run_in_volume(
        config,
        info,
        settings.dir,
        source,
        [
            "sh",
            "-c",
            REDIS_RESTORE,
            "sh",
            settings.dir,
            settings.dbfilename,
            settings.appenddirname,
            settings.appendfilename,
        ],
    )


def dump_secrets(config: Config, staging: Path) -> list[Part]:
    out = staging / "secrets.tar"
    with tarfile.open(out, "w") as tar:
        for rel in config.file_paths:
            path = config.root / rel
            if path.exists():
                tar.add(path, arcname=rel)
            else:
                log.warning("%s does not exist: not in the archive", path)
    return [Part("secrets-and-pki", "secrets", "tar", out.name, source={"root": str(config.root)})]


DUMPERS = {"secrets": dump_secrets, "erp": dump_erp, "rocketchat": dump_rocketchat, "bot": dump_bot}


# ---------------------------------------------------------------- create, verify, list, prune


@contextlib.contextmanager
def exclusive(config: Config):
    """One create/restore/prune at a time (cron and an operator may overlap)."""
    ensure_dir(config)
    with open(config.backup_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BackupError(f"another photomatrix-backup run holds {config.backup_dir}/.lock") from exc
        yield


def ensure_dir(config: Config) -> None:
    config.backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(config.backup_dir, 0o700)


@contextlib.contextmanager
def staging_dir(config: Config):
    path = Path(tempfile.mkdtemp(prefix=".staging-", dir=config.backup_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def archive_name(config: Config, now: dt.datetime, label: str) -> Path:
    stem = f"photomatrix-{now:%Y%m%dT%H%M%SZ}" + (f"-{label}" if label else "")
    candidate, n = config.backup_dir / f"{stem}{SUFFIX}", 1
    while candidate.exists():
        candidate = config.backup_dir / f"{stem}-{n}{SUFFIX}"
        n += 1
    return candidate


def create(config: Config, label: str = "") -> Path:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ensure_dir(config)
    read_key(config)
    with staging_dir(config) as staging:
        parts: list[Part] = []
        for component in COMPONENTS:
            if component in config.components:
                log.info("backing up %s", component)
                parts += DUMPERS[component](config, staging)
        for part in parts:
            path = staging / part.file
            part.size, part.sha256 = path.stat().st_size, sha256_of(path)
        images = {}
        for role, name in sorted(config.containers.items()):
            info = inspect(name)
            if info is not None:
                images[role] = {"container": name, **image_of(info)}
        manifest = {
            "format": 1,
            "tool_version": TOOL_VERSION,
            "created": now.isoformat().replace("+00:00", "Z"),
            "host": socket.gethostname(),
            "stack_version": config.stack_version,
            "components": [c for c in COMPONENTS if c in config.components],
            "images": images,
            "parts": [part.__dict__ for part in parts],
        }
        payload = staging / "payload.tar.gz"
        with tarfile.open(payload, "w:gz") as tar:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o600
            tar.addfile(info, io.BytesIO(data))
            for part in parts:
                tar.add(staging / part.file, arcname=part.file)
        final = archive_name(config, now, label)
        # Written under a dot name and renamed at the end: a failed run leaves no partial archive.
        partial = staging / (final.name + ".partial")
        encrypt(config, payload, partial)
        os.chmod(partial, 0o600)
        os.replace(partial, final)
        fd = os.open(config.backup_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    total = final.stat().st_size
    log.info("created %s (%d bytes): %s", final, total, ", ".join(p.name for p in parts))
    return final


def open_archive(config: Config, archive: Path, into: Path) -> dict:
    """Authenticate, decrypt and unpack into `into`; check every part's size and sha256."""
    authenticate(config, archive)
    payload = into / "payload.tar.gz"
    decrypt(config, archive, payload)
    try:
        with tarfile.open(payload, "r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile() or "/" in member.name or member.name.startswith("."):
                    raise BackupError(f"{archive}: unexpected entry {member.name!r} in the payload")
                source = tar.extractfile(member)
                with source, open(into / member.name, "wb") as target:
                    shutil.copyfileobj(source, target, CHUNK)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive}: the payload cannot be read: {exc}") from exc
    finally:
        payload.unlink(missing_ok=True)
    try:
        manifest = json.loads((into / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{archive}: manifest.json missing or unreadable") from exc
    for part in manifest["parts"]:
        path = into / part["file"]
        if not path.is_file():
            raise BackupError(f"{archive}: part {part['name']} ({part['file']}) is missing")
        if path.stat().st_size != part["size"] or sha256_of(path) != part["sha256"]:
            raise BackupError(f"{archive}: part {part['name']} does not match its sha256 in the manifest")
        if part["kind"] == "sqlite":
            check_sqlite(path)
        elif part["kind"] == "redis-rdb":
            check_rdb(path)
    return manifest


def verify(config: Config, archive: Path) -> dict:
    with staging_dir(config) as staging:
        manifest = open_archive(config, archive, staging)
    for part in manifest["parts"]:
        log.info(
            "  %-20s %-16s %10d bytes  sha256 %s  ok",
            part["name"],
            part["kind"],
            part["size"],
            part["sha256"][:16],
        )
    log.info("OK: %s (created %s, stack %s)", archive, manifest["created"], manifest["stack_version"])
    return manifest


def archives(config: Config) -> list[tuple[dt.datetime, Path]]:
    found = []
    if config.backup_dir.is_dir():
        for path in config.backup_dir.iterdir():
            match = NAME_RE.match(path.name)
            if match and path.is_file():
                when = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
                found.append((when, path))
    return sorted(found, reverse=True)


def list_archives(config: Config) -> None:
    entries = archives(config)
    for when, path in entries:
        print(f"{when:%Y-%m-%d %H:%M:%S}Z  {path.stat().st_size:>12}  {path}")
    if not entries:
        print(f"no archives in {config.backup_dir}")


def to_keep(entries: list[tuple[dt.datetime, Path]], daily: int, weekly: int) -> set[Path]:
    """The newest archive of each of the last `daily` days and `weekly` ISO weeks that have one."""
    keep: set[Path] = set()
    days: dict[dt.date, Path] = {}
    weeks: dict[tuple[int, int], Path] = {}
    for when, path in entries:  # newest first: the first seen of a day or week is its newest
        days.setdefault(when.date(), path)
        weeks.setdefault(tuple(when.isocalendar())[:2], path)
    keep.update(list(days.values())[:daily])
    keep.update(list(weeks.values())[:weekly])
    if entries:
        keep.add(entries[0][1])
    return keep


def prune(config: Config) -> list[Path]:
    entries = archives(config)
    keep = to_keep(entries, config.keep_daily, config.keep_weekly)
    removed = [path for _, path in entries if path not in keep]
    for path in removed:
        path.unlink()
        log.info("pruned %s", path)
    for stale in config.backup_dir.glob(".staging-*"):
        if time.time() - stale.stat().st_mtime > 86400:
            shutil.rmtree(stale, ignore_errors=True)
    log.info("kept %d archive(s) (daily %d, weekly %d)", len(keep), config.keep_daily, config.keep_weekly)
    return removed


# ---------------------------------------------------------------- off-host copies (restic)

RESTIC_TAG = "photomatrix"
SFTP_RE = re.compile(r"^sftp:(?://)?(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?[:/]")


def remote_password_file(config: Config) -> Path:
    path = config.remote_password_file
    if path is None:
        raise BackupError("remote_repository is set but remote_password_file is not")
    try:
        st = path.stat()
        size = len(path.read_bytes().strip())
    except OSError as exc:
        raise BackupError(f"cannot read the restic password file {path}: {exc.strerror}") from exc
    if st.st_mode & 0o077:
        raise BackupError(f"the restic password file {path} is readable by others: chmod 600 it")
    if size < 16:
        raise BackupError(f"the restic password file {path} is too short (16 characters at least)")
    if config.key_file.exists() and path.resolve() == config.key_file.resolve():
        raise BackupError("the restic password file must not be the archive key file")
    return path


def sftp_command(config: Config) -> str | None:
    """restic's ssh command for an sftp repository when a key / known_hosts file is configured."""
    match = SFTP_RE.match(config.remote_repository)
    if match is None or not (config.remote_ssh_key or config.remote_known_hosts):
        return None
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=30"]
    if config.remote_ssh_key:
        argv += ["-i", config.remote_ssh_key, "-o", "IdentitiesOnly=yes"]
    if config.remote_known_hosts:
        argv += ["-o", f"UserKnownHostsFile={config.remote_known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    if match.group("port"):
        argv += ["-p", match.group("port")]
    host = match.group("host").strip("[]")
    argv += [f"{match.group('user')}@{host}" if match.group("user") else host, "-s", "sftp"]
    return " ".join(argv)


def restic_argv(config: Config, *args: str) -> list[str]:
    """restic with the repository and the password FILE (the password itself is never in argv or env)."""
    if not config.remote_repository:
        raise BackupError("no remote repository is configured (remote_repository)")
    argv = [
        "restic",
        "--repo",
        config.remote_repository,
        "--password-file",
        str(remote_password_file(config)),
        "--cache-dir",
        str(config.backup_dir / ".restic-cache"),
        "--quiet",
    ]
    command = sftp_command(config)
    if command:
        argv += ["--option", f"sftp.command={command}"]
    return [*argv, *args]


def restic_env() -> dict[str, str]:
    """The caller's environment minus any restic credentials it might carry."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_", "B2_", "AZURE_"))}


def restic(config: Config, *args: str, stdout=None, what: str = "") -> bytes:
    if shutil.which("restic") is None:
        raise BackupError("remote_repository is set: install Debian's restic on this host")
    argv = restic_argv(config, *args)
    try:
        result = subprocess.run(  # nosec B603
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=restic_env(),
            timeout=config.command_timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"restic {what or args[0]}: timed out after {config.command_timeout} s") from exc
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-800:]
        if "wrong password" in tail:
            raise BackupError(
                f"restic {what or args[0]}: the repository refused the password "
                f"in {config.remote_password_file}"
            )
        raise BackupError(f"restic {what or args[0]}: exit code {result.returncode}: {tail}")
    return result.stdout or b""


def remote_ensure(config: Config) -> None:
    """Initialise the repository on first use; an existing one must accept our password."""
    try:
        restic(config, "cat", "config", what="opening the repository")
    except BackupError as exc:
        text = str(exc)
        if "Is there a repository" not in text and "does not exist" not in text:
            raise
        log.info("initialising the restic repository %s", config.remote_repository)
        restic(config, "init", what="init")


def ship(config: Config, archive: Path) -> None:
    remote_ensure(config)
    match = NAME_RE.match(archive.name)
    when = (
        dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if match
        else dt.datetime.now(dt.UTC)
    ).astimezone()  # restic reads --time as local time
    restic(
        config,
        "backup",
        "--tag",
        RESTIC_TAG,
        "--time",
        f"{when:%Y-%m-%d %H:%M:%S}",
        str(archive),
        what="backup",
    )
    log.info("shipped %s to the remote repository", archive.name)


def remote_snapshots(config: Config) -> list[dict]:
    out = restic(config, "snapshots", "--json", "--tag", RESTIC_TAG, what="snapshots")
    try:
        snapshots = json.loads(out or b"[]") or []
    except ValueError as exc:
        raise BackupError(f"restic snapshots: unreadable answer: {exc}") from exc
    return sorted(snapshots, key=lambda s: s["time"], reverse=True)


def remote_prune(config: Config) -> None:
    restic(
        config,
        "forget",
        "--tag",
        RESTIC_TAG,
        "--group-by",  # each snapshot holds another file name: retention across them, per host
        "host,tags",
        "--keep-daily",
        str(config.remote_keep_daily),
        "--keep-weekly",
        str(config.remote_keep_weekly),
        "--keep-last",
        "1",
        "--prune",
        what="forget --prune",
    )
    log.info(
        "remote retention applied (daily %d, weekly %d)", config.remote_keep_daily, config.remote_keep_weekly
    )


def remote_check(config: Config) -> None:
    restic(config, "check", what="check")
    log.info("OK: the remote repository %s passed restic check", config.remote_repository)


def fetch(config: Config, snapshot: str) -> Path:
    """Copy an archive back from the repository into backup_dir (atomically) and return its path."""
    snapshots = remote_snapshots(config)
    if not snapshots:
        raise BackupError("the remote repository holds no photomatrix snapshot")
    if snapshot == "latest":
        chosen = snapshots[0]
    else:
        found = [s for s in snapshots if s["id"].startswith(snapshot) or s.get("short_id") == snapshot]
        if len(found) != 1:
            raise BackupError(f"no single remote snapshot matches {snapshot!r}")
        chosen = found[0]
    paths = [p for p in chosen.get("paths", []) if NAME_RE.match(Path(p).name)]
    if len(paths) != 1:
        raise BackupError(f"remote snapshot {chosen['short_id']} holds no single photomatrix archive")
    remote_path = paths[0]
    ensure_dir(config)
    target = config.backup_dir / Path(remote_path).name
    partial = config.backup_dir / f".{target.name}.fetch"
    try:
        with open(partial, "wb") as f:
            restic(config, "dump", chosen["id"], remote_path, stdout=f, what="dump")
        os.chmod(partial, 0o600)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("fetched %s from remote snapshot %s", target.name, chosen["short_id"])
    return target


def list_remote(config: Config) -> None:
    snapshots = remote_snapshots(config)
    for snap in snapshots:
        names = ", ".join(Path(p).name for p in snap.get("paths", []))
        print(f"{snap['short_id']}  {snap['time'][:19]}  {snap.get('hostname', '')}  {names}")
    if not snapshots:
        print(f"no photomatrix snapshots in {config.remote_repository}")


# ---------------------------------------------------------------- restore


def stop(name: str) -> None:
    log.info("stopping %s", name)
    run(["docker", "stop", "--time", "30", name], timeout=120, what=f"docker stop {name}")


def ready(name: str, info: dict) -> bool:
    """Whether a running container answers its own health check now. Docker's verdict comes one 30 s
    interval after a start; until then ("starting") the check is run here (docker exec, as Docker runs
    it: the container's user and environment), as a deploy's wait does (roles/common, wait_healthy)."""
    state = info.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    if not state.get("Running"):
        return False
    if health in (None, "healthy"):
        return True
    config = info.get("Config") or {}
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if health != "starting" or not test or test[0] not in ("CMD", "CMD-SHELL"):
        return False
    argv = test[1:] if test[0] == "CMD" else [*(config.get("Shell") or ["/bin/sh", "-c"]), test[1]]
    try:
        done = subprocess.run(  # nosec B603 B607
            ["docker", "exec", name, *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def start_all(config: Config, names: list[str]) -> None:
    """Start every container in the stack's order, then wait until each is healthy. One that does not
    come up never keeps the others stopped: a container may need one later in the order (a bot replica
    its Redis), and the stack must not be left down. Raises once, naming every one that failed."""
    problems: list[str] = []
    for name in names:
        log.info("starting %s", name)
        try:
            run(["docker", "start", name], timeout=120, what=f"docker start {name}")
        except BackupError as exc:
            problems.append(str(exc))
    deadline = time.monotonic() + config.health_timeout
    for name in names:
        while True:
            info = inspect(name) or {}
            state = info.get("State") or {}
            health = (state.get("Health") or {}).get("Status")
            if ready(name, info):
                log.info("%s is %s", name, "ready" if health else "running")
                break
            if time.monotonic() > deadline:
                problems.append(
                    f"{name} is not healthy {config.health_timeout} s after the restore "
                    f"({health or state.get('Status', 'missing')})"
                )
                break
            time.sleep(2)
    if problems:
        raise BackupError("; ".join(problems))


def write_into_volume(config: Config, info: dict, path: str, source: Path) -> None:
    """Replace `path` of a stopped container: its own image and user, its volume, no network."""
    run_in_volume(config, info, path, source, ["python", "-c", VOLUME_WRITE, path])


def run_in_volume(config: Config, info: dict, path: str, source: Path, command: list[str]) -> None:
    """Run `command` (its program, then its arguments) with `source` on its stdin in a throw-away
    container of a stopped container's own image and user, with the volume holding `path`, no network."""
    volume, mount = volume_for(info, path)
    argv = ["docker", "run", "--rm", "-i", "--network", "none", "--entrypoint", command[0]]
    if info["Config"].get("User"):
        argv += ["--user", info["Config"]["User"]]
    argv += ["--mount", f"type=volume,source={volume},target={mount}", info["Image"], *command[1:]]
    with open(source, "rb") as f:
        run(argv, stdin=f, timeout=config.command_timeout, what=f"writing {path} into volume {volume}")


def restore_secrets(config: Config, files: Path) -> None:
    with tarfile.open(files) as tar:
        members = tar.getmembers()
        # Only plain files and directories under the configured paths: no absolute paths, no "..",
        # no links or devices. As root, owners and modes come back as they were (numeric_owner): the
        # containers read their secrets as their own users.
        for member in members:
            parts = Path(member.name).parts
            if (
                not parts
                or parts[0] not in config.file_paths
                or ".." in parts
                or member.name.startswith("/")
                or not (member.isfile() or member.isdir())
            ):
                raise BackupError(f"refusing to restore {member.name!r} from the secrets part")
        tar.extractall(config.root, members=members, numeric_owner=True)  # noqa: S202  # nosec B202


def restore_erp(config: Config, unpacked: Path, manifest: dict) -> None:
    kind, where, info = erp_database(config)
    part = next(p for p in manifest["parts"] if p["component"] == "erp")
    if part["kind"] != ("sqlite" if kind == "sqlite" else "pg_dump"):
        raise BackupError(f"the archive holds a {part['kind']} ERP database but the ERP now uses {kind}")
    if kind == "sqlite":
        write_into_volume(config, info, where, unpacked / part["file"])
        return
    restore_postgres(where, unpacked / part["file"], config.command_timeout, pgpass_on_host(info))


def restore_rocketchat(config: Config, unpacked: Path, manifest: dict) -> None:
    mode, info = rocketchat_mode(config)
    parts = {p["kind"]: p for p in manifest["parts"] if p["component"] == "rocketchat"}
    if mode == "simulator":
        if "simulator-state" not in parts:
            raise BackupError("the archive holds MongoDB data but Rocket.Chat is now the simulator")
        state = container_env(info)["SIM_STATE_FILE"]
        write_into_volume(config, info, state, unpacked / parts["simulator-state"]["file"])
        return
    if not parts.keys() & {"mongodump", "tar"}:
        raise BackupError("the archive holds the simulator's state but Rocket.Chat now uses MongoDB")
    if "mongodump" in parts:
        require(config.containers["mongodb"])
        with open(unpacked / parts["mongodump"]["file"], "rb") as f:
            run(
                [
                    "docker",
                    "exec",
                    "-i",
                    config.containers["mongodb"],
                    "sh",
                    "-c",
                    mongorestore_shell(config),
                ],
                stdin=f,
                timeout=config.command_timeout,
                what="mongorestore",
            )
    if "tar" in parts and info is not None:
        with open(unpacked / parts["tar"]["file"], "rb") as f:
            run(
                ["docker", "cp", "-", f"{config.containers['rocketchat']}:/app"],
                stdin=f,
                timeout=config.command_timeout,
                what="restoring the uploads",
            )


def bot_part(config: Config, manifest: dict) -> tuple[dict, dict | None]:
    """The archive's bot part and, when the bot uses Redis, Redis' container; the part must fit the store
    the bot uses now (checked before anything is stopped)."""
    part = next(p for p in manifest["parts"] if p["component"] == "bot")
    kind, redis_info = bot_store(config)
    wanted = "redis-rdb" if kind == "redis" else "sqlite"
    if part["kind"] != wanted:
        held = "a Redis snapshot" if part["kind"] == "redis-rdb" else f"a {part['kind']} file"
        raise BackupError(
            f"the archive holds {held} of the bot's state but the bot now keeps it in {kind} "
            "(chatbot_replicas changed since?): restore it with the replica count it was made with, or "
            "leave the bot out (--only for each other part)"
        )
    return part, redis_info


def restore_bot(config: Config, unpacked: Path, manifest: dict) -> None:
    part, redis_info = bot_part(config, manifest)
    if redis_info is not None:
        restore_redis(config, redis_info, unpacked / part["file"])
        return
    info = require(config.containers["bot"])
    write_into_volume(config, info, config.bot_state_path, unpacked / part["file"])


def affected_containers(config: Config, components: list[str]) -> list[str]:
    names: set[str] = set()
    for component in components:
        if component == "secrets":
            # Every container of the stack that mounts a file from the deployment root.
            listing = run(
                ["docker", "ps", "-a", "--format", "{{.Names}}"], timeout=60, what="docker ps"
            ).decode()
            for name in listing.split():
                info = inspect(name)
                mounts = (info or {}).get("Mounts", [])
                if any(
                    m["Type"] == "bind" and m["Source"].startswith(str(config.root) + "/") for m in mounts
                ):
                    names.add(name)
        elif component in config.containers:
            names.add(config.containers[component])
            if component == "erp":
                # Its replicas (<name>-2, ...: erp_api_replicas) share the database: they stop too.
                names.update(replicas_of(config.containers[component]))
            if component == "bot":
                # Its replicas (chatbot_replicas) and, when they share Redis, Redis itself: stopped bots
                # first (the reverse of the start order), then Redis, whose volume gets the snapshot.
                names.update(replicas_of(config.containers[component]))
                _, redis_info = bot_store(config)
                if redis_info is not None:
                    names.add(redis_info["Name"].lstrip("/"))
    # Only the containers on this host (Rocket.Chat and MongoDB may be on different hosts).
    names = {name for name in names if inspect(name) is not None}
    names.discard(config.containers.get("mongodb", ""))  # mongorestore needs MongoDB up
    order = {name: i for i, name in enumerate(config.start_order)}

    def position(name: str) -> tuple[int, int, str]:
        first, _, number = name.rpartition("-")
        if name not in order and first in order and number.isdigit():
            return (order[first], int(number), name)  # a replica starts right after the first
        return (order.get(name, len(order)), 0, name)

    return sorted(names, key=position)


def replicas_of(name: str) -> list[str]:
    """The containers named <name>-<n> on this host (the replicas past the first)."""
    listing = run(
        ["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name=^{name}-[0-9]+$"],
        timeout=60,
        what="docker ps",
    ).decode()
    return [found for found in listing.split() if re.fullmatch(re.escape(name) + r"-[0-9]+", found)]


def restore(config: Config, archive: Path, only: list[str] | None, safety_backup: bool) -> None:
    with staging_dir(config) as unpacked:
        manifest = open_archive(config, archive, unpacked)
        available = set(manifest["components"])
        chosen = [c for c in COMPONENTS if c in (only or available)]
        missing = [c for c in chosen if c not in available]
        if missing:
            raise BackupError(
                f"{archive} has no {', '.join(missing)} (it holds {', '.join(sorted(available))})"
            )
        log.info("restoring %s from %s (created %s)", ", ".join(chosen), archive, manifest["created"])
        if "bot" in chosen:
            bot_part(config, manifest)  # a part that does not fit the bot's store stops nothing
        if safety_backup:
            log.info("first a safety backup of the current state")
            create(config, label="pre-restore")
        containers = affected_containers(config, chosen)
        for name in reversed(containers):
            stop(name)
        try:
            if "secrets" in chosen:
                restore_secrets(config, unpacked / "secrets.tar")
            if "erp" in chosen:
                restore_erp(config, unpacked, manifest)
            if "rocketchat" in chosen:
                restore_rocketchat(config, unpacked, manifest)
            if "bot" in chosen:
                restore_bot(config, unpacked, manifest)
        finally:
            # Started again in the stack's order even when a step failed: never leave the stack down.
            start_all(config, containers)
    log.info("restored %s from %s", ", ".join(chosen), archive)


# ---------------------------------------------------------------- command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photomatrix-backup", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.environ.get("PHOTOMATRIX_BACKUP_CONFIG", DEFAULT_CONFIG))
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="write one encrypted archive of the whole stack")
    c.add_argument("--prune", action="store_true", help="then apply the retention (like `prune`)")
    c.add_argument("--no-ship", action="store_true", help="do not copy it to the remote repository")
    ls = sub.add_parser("list", help="list the archives")
    ls.add_argument("--remote", action="store_true", help="list the remote repository's snapshots")
    v = sub.add_parser(
        "verify", help="authenticate, decrypt and check every part's sha256; restic check of the remote"
    )
    v.add_argument("archive", type=Path, nargs="?", help="a local archive (optional with --remote)")
    v.add_argument(
        "--remote", action="store_true", help="only the remote: restic check, then its newest archive"
    )
    r = sub.add_parser("restore", help="verify, stop the affected containers, restore, start, wait healthy")
    r.add_argument("archive", type=Path, nargs="?", help="a local archive (or --from-remote)")
    r.add_argument(
        "--from-remote",
        metavar="SNAPSHOT",
        nargs="?",
        const="latest",
        help="fetch the archive from the remote repository first (a snapshot id, default latest)",
    )
    r.add_argument("--only", action="append", choices=COMPONENTS, help="restore only this part (repeatable)")
    r.add_argument(
        "--no-safety-backup", action="store_true", help="skip the backup of the current state first"
    )
    sub.add_parser("prune", help="keep the newest archive of the last N days and M weeks, remove the rest")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s photomatrix-backup %(levelname)s %(message)s")
    os.umask(0o077)
    try:
        config = Config.load(args.config)
        if args.command == "list":
            if args.remote:
                list_remote(config)
            else:
                list_archives(config)
        elif args.command == "verify":
            ensure_dir(config)
            if args.archive is None and not args.remote:
                raise BackupError("verify needs an archive, or --remote")
            if args.archive is not None:
                verify(config, args.archive)
            if config.remote_repository and (args.remote or args.archive is not None):
                remote_check(config)
            if args.remote:
                with exclusive(config):
                    fetched = fetch(config, "latest")
                verify(config, fetched)
        else:
            with exclusive(config):
                if args.command == "create":
                    archive = create(config)
                    print(archive, flush=True)  # the archive's path, for scripts
                    if config.remote_repository and not args.no_ship:
                        ship(config, archive)
                    if args.prune:
                        prune(config)
                        if config.remote_repository:
                            remote_prune(config)
                elif args.command == "prune":
                    prune(config)
                    if config.remote_repository:
                        remote_prune(config)
                elif args.command == "restore":
                    if (args.archive is None) == (args.from_remote is None):
                        raise BackupError("restore needs exactly one of an archive or --from-remote")
                    archive = args.archive or fetch(config, args.from_remote)
                    restore(config, archive, args.only, not args.no_safety_backup)
    except BackupError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
