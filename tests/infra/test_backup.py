"""Checklist 9, backup and restore: photomatrix-backup makes an encrypted archive of the deployed stack,
verifies it, refuses a tampered one, and a restore brings the data of the backup back.

The round trip restores the whole stack (secrets, ERP, Rocket.Chat, bot): it leaves the data as it was
before the test's own changes, every container healthy, so later tests do not depend on the order.
The `unit` tests check the tool's encryption, retention and input checks without a stack, and the
`integration` one its pg_dump / pg_restore path on the CI PostgreSQL (ERP_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from plugins.infra import Stack, container_python, docker_health, docker_inspect

from ops.scripts import load_script

TOOL = Path("/usr/local/sbin/photomatrix-backup")
CONFIG = Path("/etc/photomatrix-backup/config.json")
SOURCE = Path(__file__).resolve().parents[2] / "roles" / "backup" / "files" / "photomatrix-backup.py"


def backup(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=900, check=False)
    if check:
        assert result.returncode == 0, (
            f"photomatrix-backup {args}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def settings(stack: Stack) -> dict:
    if not TOOL.exists() or not CONFIG.exists():
        pytest.fail("photomatrix-backup is not installed: the backup role (playbooks/backup.yml) did not run")
    return json.loads(CONFIG.read_text())


def erp(stack: Stack, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One call to the ERP's bot API through the proxy, from the bot's container (the allowlisted address)."""
    code = f"""
import json, httpx
r = httpx.request({method!r}, {stack.proxy_internal_url + path!r},
                  headers={{"X-API-Key": {key!r}, "Idempotency-Key": {uuid.uuid4().hex!r}}},
                  json={body!r}, verify="/etc/bot/ca.crt", timeout=10)
print(json.dumps({{"status": r.status_code, "body": r.text}}))
"""
    result = json.loads(container_python(stack.bot, code))
    return result["status"], json.loads(result["body"] or "{}")


def bot_redis(stack: Stack, settings: dict) -> str | None:
    """Redis' container when the bot replicas keep their state there (BOT_STATE_URL_FILE), else None."""
    env = docker_inspect(stack.bot)["Config"].get("Env") or []
    if not any(item.startswith("BOT_STATE_URL_FILE=") for item in env):
        return None
    return settings["containers"].get("redis", "photomatrix-redis")


def redis_cli(container: str, *args: str) -> str:
    """redis-cli in Redis' container, the password from its file into --askpass (as its health check)."""
    script = "sed -n 's/^requirepass //p' /etc/redis/redis.conf | redis-cli --askpass \"$@\""
    out = subprocess.run(
        ["docker", "exec", container, "sh", "-c", script, "sh", *args],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def register_employee(stack: Stack, key: str) -> str:
    status, positions = erp(stack, key, "GET", "/api/bot/v1/positions")
    assert status == 200, positions
    position = next(p for p in positions["items"] if p["erp_access"] and not p["requires_approval"])
    suffix = uuid.uuid4().hex[:8]
    status, created = erp(
        stack,
        key,
        "POST",
        "/api/bot/v1/staff",
        {
            "full_name": "Sidorova Anna",
            "email": f"sidorova.{suffix}@example.com",
            "position_code": position["code"],
            "rocketchat_user_id": f"uid{suffix}",
            "rocketchat_username": f"sidorova{suffix}",
        },
    )
    assert status == 201, created
    return created["staff"]["id"]


def rocketchat_admin(stack: Stack, http: httpx.Client) -> dict[str, str]:
    """Log in as the first admin (Rocket.Chat allows 10 logins a minute per address: wait once on 429)."""
    password = (stack.root / "secrets" / "rocketchat" / "admin_password").read_text().strip()
    for _ in range(2):
        response = http.post("/api/v1/login", json={"user": "admin", "password": password})
        if response.status_code != 429:
            break
        time.sleep(
            min(61.0, max(1.0, int(response.headers.get("x-ratelimit-reset", "0")) / 1000 - time.time()))
        )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return {"X-User-Id": data["userId"], "X-Auth-Token": data["authToken"]}


def rocketchat_user_exists(stack: Stack, username: str) -> bool:
    with httpx.Client(base_url=stack.base_url, verify=stack.ssl_context(), timeout=15) as http:
        headers = rocketchat_admin(stack, http)
        response = http.get("/api/v1/users.info", params={"username": username}, headers=headers)
        return response.status_code == 200 and response.json().get("success") is True


def create_rocketchat_user(stack: Stack, username: str) -> None:
    with httpx.Client(base_url=stack.base_url, verify=stack.ssl_context(), timeout=15) as http:
        headers = rocketchat_admin(stack, http)
        created = http.post(
            "/api/v1/users.create",
            headers=headers,
            json={
                "name": "Backup Probe",
                "email": f"{username}@example.com",
                "password": secrets.token_urlsafe(12) + "aA1",
                "username": username,
                "verified": True,
                "joinDefaultChannels": False,
            },
        )
        assert created.status_code == 200, created.text


def assert_stack_healthy(stack: Stack) -> None:
    for name in stack.containers:
        state = docker_inspect(name)["State"]
        assert state["Running"], f"{name} is not running after the restore"
        assert docker_health(name) in ("healthy", "none"), f"{name}: {state.get('Health')}"


@pytest.mark.infra
def test_archive_directory_key_and_schedule(settings: dict) -> None:
    for path in (Path(settings["backup_dir"]), CONFIG.parent):
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o700, f"{path}: {oct(st.st_mode)}"
        assert st.st_uid == 0, path
    for path in (Path(settings["key_file"]), CONFIG):
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600, f"{path}: {oct(st.st_mode)}"
        assert st.st_uid == 0, path
    cron = Path("/etc/cron.d/photomatrix-backup").read_text()
    assert f"{TOOL} create --prune" in cron, cron
    # This machine's own cron: `pidof` would also count a container's (the lab hosts' beside it in CI).
    own = ["pgrep", "--exact", "--ns", str(os.getpid()), "--nslist", "pid", "cron"]
    assert subprocess.run(own, capture_output=True, timeout=10, check=False).returncode == 0, (
        "this machine's cron daemon does not run (a container's cron does not run its entries)"
    )


@pytest.mark.infra
@pytest.mark.drill
@pytest.mark.timeout(900)
def test_backup_then_restore_brings_the_backed_up_data_back(
    stack: Stack, settings: dict, bot_api_key: str
) -> None:
    kept = register_employee(stack, bot_api_key)
    archive = Path(backup("create").stdout.strip().splitlines()[-1])
    assert archive.parent == Path(settings["backup_dir"]), archive
    assert archive.is_file(), archive
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert not [p for p in archive.parent.iterdir() if p.name.startswith(".staging-")], "staging left behind"
    verified = backup("verify", str(archive))
    assert "OK:" in verified.stderr, verified.stderr
    for part in ("secrets-and-pki", "erp-database", "rocketchat-state", "bot-state"):
        assert part in verified.stderr, verified.stderr
    assert archive.name in backup("list").stdout
    redis = bot_redis(stack, settings)
    # The bot's state is what it uses: Redis' snapshot with several replicas, else its SQLite file.
    bot_line = next(line for line in verified.stderr.splitlines() if "bot-state" in line)
    assert ("redis-rdb" if redis else "sqlite") in bot_line, bot_line
    if redis:
        redis_probe = f"pmx-backup-probe-{secrets.token_hex(4)}"
        redis_cli(redis, "SET", redis_probe, "after the backup")

    # Changes after the backup: a second employee and a Rocket.Chat user.
    lost = register_employee(stack, bot_api_key)
    probe = f"bkprobe{secrets.token_hex(4)}"
    create_rocketchat_user(stack, probe)
    assert rocketchat_user_exists(stack, probe)

    backup("restore", str(archive))

    assert_stack_healthy(stack)
    status, staff = erp(stack, bot_api_key, "GET", f"/api/bot/v1/staff/{kept}")
    assert status == 200, staff
    assert staff["id"] == kept
    status, staff = erp(stack, bot_api_key, "GET", f"/api/bot/v1/staff/{lost}")
    assert status == 404, staff
    assert not rocketchat_user_exists(stack, probe), "the Rocket.Chat user made after the backup survived"
    if redis:
        assert redis_cli(redis, "EXISTS", redis_probe) == "0", "a Redis key set after the backup survived"


@pytest.mark.infra
def test_tampered_or_foreign_archive_is_refused(stack: Stack, settings: dict, tmp_path: Path) -> None:
    archive = Path(backup("create").stdout.strip().splitlines()[-1])
    tampered = tmp_path / archive.name
    shutil.copyfile(archive, tampered)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    started = docker_inspect(stack.erp)["State"]["StartedAt"]

    refused = backup("verify", str(tampered), check=False)
    assert refused.returncode == 1
    assert "FAILED authentication" in refused.stderr, refused.stderr
    refused = backup("restore", str(tampered), check=False)
    assert refused.returncode == 1
    assert "FAILED authentication" in refused.stderr, refused.stderr
    assert docker_inspect(stack.erp)["State"]["StartedAt"] == started, "a refused restore touched the ERP"

    truncated = tmp_path / "truncated.pmbackup"
    truncated.write_bytes(archive.read_bytes()[:100])
    refused = backup("verify", str(truncated), check=False)
    assert refused.returncode == 1
    assert "FAILED authentication" in refused.stderr or "truncated" in refused.stderr, refused.stderr


@pytest.mark.infra
def test_prune_keeps_the_newest_of_each_day_and_week(settings: dict, tmp_path: Path) -> None:
    # Archive names only (prune reads no content), in a directory of their own.
    names = [
        "photomatrix-20260105T023000Z.pmbackup",  # ISO week 2: beyond the 2 weeks kept
        "photomatrix-20260112T023000Z.pmbackup",  # week 3: its newest
        "photomatrix-20260119T023000Z.pmbackup",  # week 4, beyond the 2 days kept
        "photomatrix-20260120T023000Z.pmbackup",
        "photomatrix-20260120T150000Z-pre-restore.pmbackup",  # newest of its day
        "photomatrix-20260121T023000Z.pmbackup",
    ]
    archives = tmp_path / "archives"
    archives.mkdir(mode=0o700)
    for name in names:
        (archives / name).write_bytes(b"x")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({**settings, "backup_dir": str(archives), "keep_daily": 2, "keep_weekly": 2})
    )
    backup("--config", str(config), "prune")
    assert sorted(p.name for p in archives.glob("*.pmbackup")) == [
        "photomatrix-20260112T023000Z.pmbackup",
        "photomatrix-20260120T150000Z-pre-restore.pmbackup",
        "photomatrix-20260121T023000Z.pmbackup",
    ]


# ---------------------------------------------------------------- the tool alone (no stack)


@pytest.fixture(scope="module")
def tool():
    """The tool's source, loaded as a module (it is a single stdlib-only script)."""
    yield load_script(SOURCE, "photomatrix_backup")
    del sys.modules["photomatrix_backup"]


@pytest.fixture
def offline_config(tool, tmp_path: Path):
    key = tmp_path / "backup.key"
    key.write_text(secrets.token_urlsafe(48) + "\n")
    key.chmod(0o600)
    return tool.Config(
        backup_dir=tmp_path / "archives",
        key_file=key,
        root=tmp_path / "root",
        file_paths=["secrets", "pki"],
        containers={},
        components=["secrets"],
        bot_state_path="/var/lib/bot/bot.sqlite3",
        start_order=[],
    )


@pytest.mark.unit
def test_encryption_round_trip_and_refusals(tool, offline_config, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(300_000))
    sealed = tmp_path / "sealed.pmbackup"
    tool.encrypt(offline_config, plain, sealed)
    assert plain.read_bytes() not in sealed.read_bytes()
    tool.authenticate(offline_config, sealed)
    opened = tmp_path / "opened"
    tool.decrypt(offline_config, sealed, opened)
    assert opened.read_bytes() == plain.read_bytes()

    for position in (len(tool.MAGIC) + 20, sealed.stat().st_size // 2, sealed.stat().st_size - 1):
        tampered = bytearray(sealed.read_bytes())
        tampered[position] ^= 0x80
        (tmp_path / "tampered").write_bytes(bytes(tampered))
        with pytest.raises(tool.BackupError, match="FAILED authentication"):
            tool.authenticate(offline_config, tmp_path / "tampered")
    (tmp_path / "short").write_bytes(sealed.read_bytes()[:30])
    with pytest.raises(tool.BackupError, match="not a Photomatrix backup archive"):
        tool.authenticate(offline_config, tmp_path / "short")

    offline_config.key_file.write_text(secrets.token_urlsafe(48))
    with pytest.raises(tool.BackupError, match="FAILED authentication"):
        tool.authenticate(offline_config, sealed)
    offline_config.key_file.chmod(0o644)
    with pytest.raises(tool.BackupError, match="readable by others"):
        tool.authenticate(offline_config, sealed)


@pytest.mark.unit
def test_secrets_restore_refuses_paths_out_of_the_tree(tool, offline_config, tmp_path: Path) -> None:
    offline_config.root.mkdir()
    for name, kind in (
        ("../escape", tarfile.REGTYPE),
        ("secrets/link", tarfile.SYMTYPE),
        ("etc/passwd", tarfile.REGTYPE),
    ):
        archive = tmp_path / "secrets.tar"
        with tarfile.open(archive, "w") as tar:
            member = tarfile.TarInfo(name)
            member.type = kind
            member.linkname = "/etc/shadow" if kind == tarfile.SYMTYPE else ""
            tar.addfile(member, None if kind == tarfile.SYMTYPE else io.BytesIO(b""))
        with pytest.raises(tool.BackupError, match="refusing to restore"):
            tool.restore_secrets(offline_config, archive)
    assert not list(offline_config.root.iterdir())


@pytest.mark.unit
def test_retention_and_postgres_password_kept_off_the_command_line(tool) -> None:
    import datetime as dt

    def at(day: int, hour: int = 2) -> tuple[dt.datetime, Path]:
        when = dt.datetime(2026, 1, day, hour, 30, tzinfo=dt.UTC)
        return when, Path(f"photomatrix-{when:%Y%m%dT%H%M%SZ}.pmbackup")

    entries = sorted([at(d) for d in range(1, 32)] + [at(31, 20)], reverse=True)
    keep = {p.name[12:20] + p.name[21:23] for p in tool.to_keep(entries, daily=7, weekly=4)}
    # Jan 25-31 (newest of each day: the 31st at 20:00), and the newest of ISO weeks 4, 3, 2.
    assert keep == {"2026013120", *(f"202601{d}02" for d in range(25, 31)), "2026011802", "2026011102"}
    assert len(tool.to_keep(entries[:1], daily=0, weekly=0)) == 1  # the newest is always kept

    target, env = tool.postgres_target(
        "postgresql+psycopg://erp:s%40cret@db.internal:5433/erp?sslmode=require"
    )
    assert target == "postgresql://erp@db.internal:5433/erp?sslmode=require"
    assert env["PGPASSWORD"] == "s@cret"


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_postgres_dump_and_restore(tool, tmp_path: Path) -> None:
    base = os.environ.get("ERP_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("set ERP_TEST_POSTGRES_URL to run the PostgreSQL backup path")
    import psycopg

    admin_url = base.replace("postgresql+psycopg://", "postgresql://")
    name = f"backup_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, autocommit=True) as db:
            db.execute("CREATE TABLE staff (login text PRIMARY KEY)")
            db.execute("INSERT INTO staff VALUES ('kept')")
        dump = tmp_path / "erp.pgdump"
        tool.dump_postgres(url, dump, 60)
        with psycopg.connect(plain, autocommit=True) as db:
            db.execute("INSERT INTO staff VALUES ('lost')")
            db.execute("CREATE TABLE later (x int)")
        tool.restore_postgres(url, dump, 60)
        with psycopg.connect(plain, autocommit=True) as db:
            assert [r[0] for r in db.execute("SELECT login FROM staff ORDER BY login")] == ["kept"]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_postgres_dump_reads_the_erps_password_file(tool, tmp_path: Path) -> None:
    """An ERP on a db host names no password in ERP_DATABASE_URL: the dump takes libpq's password file
    that the ERP container mounts (PGPASSFILE), from where it is mounted on this host."""
    base = os.environ.get("ERP_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("set ERP_TEST_POSTGRES_URL to run the PostgreSQL backup path")
    import urllib.parse

    parsed = urllib.parse.urlsplit(base)
    without = base.replace(f":{parsed.password}@", "@")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:*:{urllib.parse.unquote(parsed.password)}\n")
    passfile.chmod(0o600)
    info = {
        "Config": {"Env": ["ERP_DATABASE_URL=" + without, "PGPASSFILE=/run/secrets/erp/pgpass"]},
        "Mounts": [{"Type": "bind", "Source": str(passfile), "Destination": "/run/secrets/erp/pgpass"}],
    }
    assert tool.pgpass_on_host(info) == str(passfile)
    target, env = tool.postgres_target(without, tool.pgpass_on_host(info))
    assert "PGPASSWORD" not in env
    assert parsed.password not in target
    dump = tmp_path / "erp.pgdump"
    tool.dump_postgres(without, dump, 60, str(passfile))
    assert dump.stat().st_size > 0
    with pytest.raises(tool.BackupError, match="pg_dump failed"):
        tool.dump_postgres(without, tmp_path / "refused.pgdump", 60, str(tmp_path / "missing"))
    info["Mounts"] = []
    with pytest.raises(tool.BackupError, match="not a file mounted"):
        tool.pgpass_on_host(info)
