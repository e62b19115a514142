"""The bot's state when its replicas share Redis: `create` takes a point-in-time RDB snapshot of
photomatrix-redis (redis-cli --rdb, the password from Redis' own configuration file into redis-cli's
stdin), `verify` checks it (header, EOF opcode, CRC-64), `restore` writes it into Redis' volume as both
dump.rdb and the append-only file's base, with the bot replicas stopped around Redis.

The `unit` tests run the tool's own shell scripts and checks against a redis-server process (Debian's)
started here. The `integration` test runs create, verify and restore against real containers of the
stack's Redis image (photomatrix/redis:current, used only when it exists here: never built by a test);
the bot replicas are stand-ins of that image (sleep) carrying the bot's BOT_STATE_URL_FILE, since only
their environment and their stop and start matter to the tool. No fakes: real docker, real Redis."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from plugins.backup import load_backup_tool

IMAGE = "photomatrix/redis:current"


tool = load_backup_tool("photomatrix_backup_redis")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def role_conf(password: str, data: Path | str, port: int = 6379, appendonly: str = "yes") -> str:
    """Redis' configuration as the chatbot role writes it (roles/chatbot/tasks/redis.yml)."""
    return (
        f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nrequirepass {password}\ndir {data}\n"
        f'appendonly {appendonly}\nappendfsync everysec\nsave ""\nmaxmemory 64mb\n'
        'maxmemory-policy noeviction\nrename-command CONFIG ""\nrename-command DEBUG ""\nlogfile ""\n'
    )


class LocalRedis:
    def __init__(self, root: Path, appendonly: str = "yes") -> None:
        self.password = secrets.token_hex(16)
        self.port = free_port()
        self.data = root / "data"
        self.data.mkdir(exist_ok=True)
        self.conf = root / "redis.conf"
        self.conf.write_text(role_conf(self.password, self.data, self.port, appendonly))
        self.conf.chmod(0o600)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.cli("PING") == "PONG":
                    return
            except AssertionError:
                pass
            time.sleep(0.1)
        raise AssertionError("redis-server did not answer within 20 s")

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), "--askpass", *args],
            input=self.password + "\n", capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result
        assert not result.stdout.startswith(("ERR", "NOAUTH")), result
        return result.stdout.strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def local_redis(tmp_path: Path):
    if not shutil.which("redis-server"):
        pytest.fail("Debian's redis-server is needed (the CI machine has it)")
    server = LocalRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def snapshot(server: LocalRedis, out: Path) -> None:
    """The tool's REDIS_DUMP script, as it runs in Redis' container, here against the local server."""
    tmp = server.data / ".photomatrix-backup.rdb"
    with open(out, "wb") as f:
        subprocess.run(
            ["sh", "-c", tool.REDIS_DUMP, "sh", str(server.conf), str(tmp), str(server.port), "60"],
            stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE, timeout=60, check=True,
        )  # fmt: skip
    assert not tmp.exists(), "the snapshot's temporary file was left in Redis' data directory"


@pytest.mark.unit
def test_crc64_is_redis_checksum() -> None:
    assert tool.crc64(b"123456789") == 0xE9C6D914C4B8D9CA  # Redis' own crc64 test vector


@pytest.mark.unit
def test_snapshot_is_a_checked_rdb_and_damage_is_refused(local_redis: LocalRedis, tmp_path: Path) -> None:
    local_redis.cli("SET", "rcbot:dialog:u1", '{"step": "name"}')
    local_redis.cli("HSET", "rcbot:claims", "m1", "replica-1")
    rdb = tmp_path / "bot-redis.rdb"
    snapshot(local_redis, rdb)
    tool.check_rdb(rdb)
    checked = subprocess.run(["redis-check-rdb", str(rdb)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout
    assert "2 keys read" in checked.stdout, checked.stdout
    assert local_redis.password.encode() not in rdb.read_bytes()

    data = rdb.read_bytes()
    cases = {
        "trailing": data + b"0" * 40,  # what redis-cli --rdb - leaves on stdout: its end-of-transfer mark
        "truncated": data[:-20],
        "flipped": data[:30] + bytes([data[30] ^ 1]) + data[31:],
        "foreign": b"SQLite format 3\x00" + data[16:],
        "empty": b"",
    }
    for label, content in cases.items():
        bad = tmp_path / f"{label}.rdb"
        bad.write_bytes(content)
        with pytest.raises(tool.BackupError, match="Redis"):
            tool.check_rdb(bad)


@pytest.mark.unit
def test_snapshot_has_its_own_time_limit_and_cleans_up(local_redis: LocalRedis) -> None:
    """redis-cli --rdb waits for Redis' diskless replication delay (5 s): a 1 s limit ends it inside the
    script, which fails and leaves no temporary file (the tool's docker exec has a longer timeout)."""
    tmp = local_redis.data / ".photomatrix-backup.rdb"
    started = time.monotonic()
    result = subprocess.run(
        ["sh", "-c", tool.REDIS_DUMP, "sh", str(local_redis.conf), str(tmp), str(local_redis.port), "1"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 124, result.stderr
    assert time.monotonic() - started < 4
    assert result.stdout == b""
    assert not tmp.exists()


@pytest.mark.unit
@pytest.mark.parametrize("appendonly", ["yes", "no"])
def test_restore_script_brings_the_snapshot_back(tmp_path: Path, appendonly: str) -> None:
    """REDIS_RESTORE into a data directory that has moved on: Redis starts again with the snapshot's
    keys (and their TTLs) and none of the later ones, whether it loads its AOF or dump.rdb."""
    server = LocalRedis(tmp_path, appendonly)
    server.start()
    try:
        server.cli("SET", "rcbot:dialog:u1", '{"step": "name"}')
        server.cli("SET", "rcbot:seen:m1", "1", "EX", "3600")
        server.cli("ZADD", "rcbot:dialog-expiry", "1700000000", "u1")
        rdb = tmp_path / "snapshot.rdb"
        snapshot(server, rdb)
        server.cli("DEL", "rcbot:dialog:u1")
        server.cli("SET", "rcbot:dialog:u2", "later")
        if appendonly == "no":  # a dump.rdb of the later state the restore must replace
            deadline = time.monotonic() + 30
            while "rdb_bgsave_in_progress:1" in server.cli("INFO", "persistence"):
                assert time.monotonic() < deadline, "the snapshot's fork does not end"
                time.sleep(0.2)
            server.cli("SAVE")
            assert (server.data / "dump.rdb").exists()
    finally:
        server.stop()
    settings = tool.parse_redis_conf(server.conf.read_text())
    with open(rdb, "rb") as f:
        subprocess.run(
            ["sh", "-c", tool.REDIS_RESTORE, "sh", settings.dir, settings.dbfilename,
             settings.appenddirname, settings.appendfilename],
            stdin=f, capture_output=True, timeout=60, check=True,
        )  # fmt: skip
    assert not [p for p in server.data.iterdir() if p.name.startswith(".restore")]
    manifest = (server.data / "appendonlydir" / "appendonly.aof.manifest").read_text()
    assert manifest == "file appendonly.aof.1.base.rdb seq 1 type b\n"
    server.start()
    try:
        assert server.cli("GET", "rcbot:dialog:u1") == '{"step": "name"}'
        assert server.cli("EXISTS", "rcbot:dialog:u2") == "0"
        assert 0 < int(server.cli("TTL", "rcbot:seen:m1")) <= 3600
        assert server.cli("ZSCORE", "rcbot:dialog-expiry", "u1") == "1700000000"
        server.cli("SET", "after", "restore")  # and it keeps working (a new AOF increment)
    finally:
        server.stop()


@pytest.mark.unit
def test_redis_configuration_is_read_without_the_password(tmp_path: Path) -> None:
    conf = tmp_path / "redis.conf"
    password = secrets.token_hex(20)
    conf.write_text(role_conf(password, "/data"))
    info = {
        "Name": "/photomatrix-redis",
        "Config": {"Entrypoint": ["/usr/bin/tini", "--"], "Cmd": ["redis-server", "/etc/redis/redis.conf"]},
        "Mounts": [{"Type": "bind", "Source": str(conf), "Destination": "/etc/redis/redis.conf"}],
    }
    settings = tool.redis_settings(info)
    assert (settings.dir, settings.port, settings.dbfilename) == ("/data", 6379, "dump.rdb")
    assert (settings.appenddirname, settings.appendfilename) == ("appendonlydir", "appendonly.aof")
    argv = tool.redis_dump_argv(info, settings)
    assert argv[:3] == ["docker", "exec", "photomatrix-redis"]
    assert password not in json.dumps(argv)
    for bad, message in [
        ("port 0\n", "port"),
        ("dir data\n", "absolute"),
        ("dbfilename ../x.rdb\n", "plain file name"),
        ("appenddirname a/b\n", "plain file name"),
    ]:
        with pytest.raises(tool.BackupError, match=message):
            tool.parse_redis_conf(bad)
    with pytest.raises(tool.BackupError, match="not a file mounted"):
        tool.redis_settings({**info, "Mounts": []})


# ---------------------------------------------------------------- real containers


def docker(*args: str, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert result.returncode == 0, f"docker {args[:3]}: {result.stderr[-1000:]}"
    return result.stdout


def state(name: str) -> dict:
    return json.loads(docker("inspect", "--type", "container", name))[0]["State"]


def rcli(name: str, *args: str) -> str:
    """redis-cli in the Redis container with the password from its file (as its health check does)."""
    script = "sed -n 's/^requirepass //p' /etc/redis/redis.conf | redis-cli --askpass \"$@\""
    return docker("exec", name, "sh", "-c", script, "sh", *args).strip()


def wait_healthy(name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (state(name).get("Health") or {}).get("Status") != "healthy":
        assert time.monotonic() < deadline, f"{name} is not healthy: {state(name).get('Health')}"
        time.sleep(1)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_bot_redis_state_round_trip_with_real_containers(tmp_path: Path, monkeypatch) -> None:
    if not shutil.which("docker"):
        pytest.fail("docker is needed (the CI machine has it)")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=60).returncode:
        pytest.skip(f"{IMAGE} is not on this machine (make up builds it; a test never does)")
    tag = secrets.token_hex(4)
    redis, bot, volume = f"pmxtest-redis-{tag}", f"pmxtest-bot-{tag}", f"pmxtest-redis-data-{tag}"
    sqlite_bot = f"pmxtest-sqlbot-{tag}"
    password = secrets.token_hex(20)
    conf = tmp_path / "redis.conf"
    conf.write_text(role_conf(password, "/data").replace("bind 127.0.0.1", "bind 0.0.0.0"))
    os.chown(conf, 991, 991)
    conf.chmod(0o600)
    root = tmp_path / "root"
    root.mkdir()
    key = tmp_path / "backup.key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    config = tool.Config(
        backup_dir=tmp_path / "backups",
        key_file=key,
        root=root,
        file_paths=[],
        containers={"bot": bot, "redis": redis},
        components=["bot"],
        bot_state_path="/var/lib/bot/bot.sqlite3",
        start_order=[redis, bot],
        health_timeout=120,
        command_timeout=300,
    )
    calls: list[list[str]] = []
    real_run = tool.run

    def recorded(argv, **kwargs):
        calls.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(tool, "run", recorded)
    # --init: a stand-in's sleep is not PID 1, so it ends on the tool's SIGTERM as the bot does, instead of
    # being killed when docker stop's 30 s grace runs out (a minute per restore for two replicas).
    stand_in = ["--network", "none", "--no-healthcheck", "--init", "--entrypoint", "sleep"]
    try:
        docker("run", "-d", "--name", redis, "--network", "none", "--read-only", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges:true",
               "--mount", f"type=volume,source={volume},target=/data",
               "--mount", f"type=bind,source={conf},target=/etc/redis/redis.conf,readonly",
               IMAGE)  # fmt: skip
        for name in (bot, f"{bot}-2"):
            docker("run", "-d", "--name", name, "-e", "BOT_STATE_URL_FILE=/run/secrets/bot/state_url",
                   *stand_in, IMAGE, "infinity")  # fmt: skip
        docker("run", "-d", "--name", sqlite_bot, *stand_in, IMAGE, "infinity")
        # Up when it answers its own health check (run now, as the tool's restore and a deploy's wait do),
        # not at Docker's first verdict one 30 s interval later.
        deadline = time.monotonic() + 90
        while not tool.ready(redis, tool.inspect(redis) or {}):
            assert time.monotonic() < deadline, f"{redis} does not answer: {state(redis).get('Health')}"
            time.sleep(0.5)
        rcli(redis, "SET", "rcbot:dialog:u1", '{"step": "name"}')
        rcli(redis, "SET", "rcbot:seen:m1", "1", "EX", "3600")
        rcli(redis, "HSET", "rcbot:claims", "m1", "replica-1")

        archive = tool.create(config)
        manifest = tool.verify(config, archive)
        (part,) = manifest["parts"]
        assert (part["name"], part["kind"], part["component"]) == ("bot-state", "redis-rdb", "bot")
        assert part["source"]["container"] == redis
        assert manifest["images"]["redis"]["container"] == redis
        assert docker("exec", redis, "ls", "-A", "/data").split() == ["appendonlydir"], "temporary left"

        # Changes after the backup, then the restore (with its safety backup of the current state).
        rcli(redis, "DEL", "rcbot:dialog:u1")
        rcli(redis, "SET", "rcbot:dialog:u2", "later")
        before = {name: state(name)["StartedAt"] for name in (redis, bot, f"{bot}-2")}
        tool.restore(config, archive, ["bot"], safety_backup=True)

        assert rcli(redis, "GET", "rcbot:dialog:u1") == '{"step": "name"}'
        assert rcli(redis, "EXISTS", "rcbot:dialog:u2") == "0"
        assert rcli(redis, "HGET", "rcbot:claims", "m1") == "replica-1"
        assert 0 < int(rcli(redis, "TTL", "rcbot:seen:m1")) <= 3600
        after = {name: state(name) for name in before}
        for name, was in before.items():
            assert after[name]["Running"], f"{name} was left stopped"
            assert after[name]["StartedAt"] != was, f"{name} was not stopped for the restore"
        assert after[bot]["StartedAt"] > after[redis]["StartedAt"], "the bot started before its Redis"
        assert len(list(config.backup_dir.glob("*-pre-restore.pmbackup"))) == 1

        # The password was on no command line, and Redis' container shows it nowhere.
        assert calls
        assert not [argv for argv in calls if password in " ".join(argv)]
        for name in (redis, bot):
            assert password not in docker("inspect", name)

        # A bot on SQLite now: the Redis snapshot is refused before anything is stopped.
        started = state(redis)["StartedAt"]
        sqlite_config = tool.Config(**{**config.__dict__, "containers": {"bot": sqlite_bot, "redis": redis}})
        with pytest.raises(tool.BackupError, match="holds a Redis snapshot of the bot's state but the bot"):
            tool.restore(sqlite_config, archive, ["bot"], safety_backup=False)
        assert state(redis)["StartedAt"] == started
        assert state(sqlite_bot)["Running"]
        # Ready when the bots started (the tool ran its check); Docker's own verdict follows within 30 s
        # (last: the checks above run while it comes).
        wait_healthy(redis, timeout=60)
    finally:
        docker("rm", "-f", redis, bot, f"{bot}-2", sqlite_bot, check=False)
        docker("volume", "rm", "-f", volume, check=False)
