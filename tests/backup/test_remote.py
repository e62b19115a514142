"""Checklist 9.3, backups that survive the host: photomatrix-backup ships each archive to a restic
repository (a directory, or sftp to another host), applies retention there too, checks it, and restores
from it after the local archives are gone.

Real restic (Debian's) and a real sshd this module starts on a loopback port with generated keys; the
tool runs as a separate process, as cron runs it. Only the `secrets` part is backed up here (no stack
needed); the stack round trip is tests/infra/test_backup.py.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from plugins.backup import SOURCE, load_backup_tool

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is in .ci/apt-packages.txt")


tool = load_backup_tool("photomatrix_backup_remote")


def write_secret(path: Path, text: str) -> None:
    path.write_text(text + "\n")
    os.chmod(path, 0o600)


class Site:
    """A host's backup configuration: archives, key, restic password, a `secrets` directory to protect."""

    def __init__(self, base: Path, repository: str, **extra: str) -> None:
        self.base = base
        self.archives = base / "archives"
        self.root = base / "srv"
        (self.root / "secrets").mkdir(parents=True)
        self.data = self.root / "secrets" / "erp.env"
        self.data.write_text("ERP_SECRET=first\n")
        self.key = base / "backup.key"
        write_secret(self.key, secrets.token_hex(32))
        self.password = secrets.token_hex(24)
        self.password_file = base / "restic.password"
        write_secret(self.password_file, self.password)
        self.config = base / "config.json"
        self.settings = {
            "backup_dir": str(self.archives),
            "key_file": str(self.key),
            "root": str(self.root),
            "file_paths": ["secrets"],
            "components": ["secrets"],
            "containers": {},
            "start_order": [],
            "bot_state_path": "/var/lib/bot/bot.sqlite3",
            "command_timeout": 120,
            "remote_repository": repository,
            "remote_password_file": str(self.password_file),
            "remote_keep_daily": 2,
            "remote_keep_weekly": 1,
            **extra,
        }
        self.save()

    def save(self) -> None:
        self.config.write_text(json.dumps(self.settings))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, str(SOURCE), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")},
        )
        if check:
            assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
        assert self.password not in result.stdout + result.stderr, "the restic password reached the log"
        return result

    def loaded(self):
        return tool.Config.load(str(self.config))


def cycle(site: Site) -> None:
    """create + ship, lose the host's archives, change the data, restore from the remote."""
    created = site.run("create").stdout.strip().splitlines()[-1]
    archive = Path(created)
    assert archive.is_file()
    listing = site.run("list", "--remote").stdout
    assert archive.name in listing, listing
    site.run("verify", "--remote")

    # The host loses its archives and its data changes: the remote copy brings them back.
    shutil.rmtree(site.archives)
    site.data.write_text("ERP_SECRET=changed after the backup\n")
    site.run("restore", "--from-remote", "--only", "secrets", "--no-safety-backup")
    assert site.data.read_text() == "ERP_SECRET=first\n"
    assert (site.archives / archive.name).is_file(), "the fetched archive is kept locally"
    assert oct((site.archives / archive.name).stat().st_mode & 0o777) == "0o600"


@pytest.mark.integration
def test_directory_repository_cycle_tamper_and_wrong_password(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    site = Site(tmp_path / "host", str(repo))
    cycle(site)

    # Another password for the same repository is refused, with a clear message, and nothing is re-made.
    config_before = (repo / "config").read_bytes()
    write_secret(site.password_file, secrets.token_hex(24))
    refused = site.run("create", check=False)
    assert refused.returncode == 1
    assert "refused the password" in refused.stderr, refused.stderr
    assert (repo / "config").read_bytes() == config_before
    write_secret(site.password_file, site.password)

    # Tampering with the repository's data is found by verify --remote (and nothing is restored from it).
    for pack in (repo / "data").rglob("*"):
        if pack.is_file():
            os.chmod(pack, 0o600)
            raw = bytearray(pack.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            pack.write_bytes(bytes(raw))
    shutil.rmtree(site.archives)
    bad = site.run("verify", "--remote", check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    restore = site.run("restore", "--from-remote", "--only", "secrets", "--no-safety-backup", check=False)
    assert restore.returncode == 1
    assert not list(site.archives.glob("*.pmbackup")), "a damaged archive was left in backup_dir"


@pytest.mark.integration
def test_password_never_in_process_arguments_or_environment(tmp_path: Path) -> None:
    site = Site(tmp_path / "host", str(tmp_path / "repo"))
    needle = site.password.encode()
    seen: list[str] = []
    stop = threading.Event()
    checked = {"n": 0}

    def watch() -> None:
        while not stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                for name in ("cmdline", "environ"):
                    try:
                        data = (proc / name).read_bytes()
                    except OSError:
                        continue
                    if b"restic" in data or b"photomatrix-backup" in data:
                        checked["n"] += 1
                    if needle in data:
                        seen.append(f"{proc.name}/{name}")
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for _ in range(2):
            site.run("create", "--prune")
        site.run("verify", "--remote")
    finally:
        stop.set()
        watcher.join(10)
    assert checked["n"] > 0, "the watcher never saw a restic or photomatrix-backup process"
    assert not seen, f"the restic password is visible in {seen}"


@pytest.mark.integration
def test_remote_retention_keeps_daily_and_weekly(tmp_path: Path) -> None:
    site = Site(tmp_path / "host", str(tmp_path / "repo"))
    archive = Path(site.run("create", "--no-ship").stdout.strip().splitlines()[-1])
    config = site.loaded()
    start = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)  # a Monday
    # Two archives a day for 10 days, shipped with their names' times.
    for day in range(10):
        for hour in (3, 15):
            when = start + dt.timedelta(days=day, hours=hour - 3)
            copy = site.archives / f"photomatrix-{when:%Y%m%dT%H%M%SZ}.pmbackup"
            shutil.copy(archive, copy)
            tool.ship(config, copy)
    assert len(tool.remote_snapshots(config)) == 20
    tool.remote_prune(config)
    kept = sorted(s["time"][:10] for s in tool.remote_snapshots(config))
    # keep-daily 2: the newest of the last two days; keep-weekly 1: already among them.
    assert kept == ["2026-03-10", "2026-03-11"], kept
    tool.remote_check(config)


# ---------------------------------------------------------------- sftp to another host


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path: Path):
    """A throwaway sshd on a loopback port: its own host key, one authorised client key, sftp only."""
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.fail("sshd is missing: openssh-server is in .ci/apt-packages.txt")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True, timeout=30
        )
    shutil.copy(d / "client.pub", d / "authorized_keys")
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    (d / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / "host"}
AuthorizedKeysFile {d / "authorized_keys"}
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {getpass.getuser()}
Subsystem sftp internal-sftp
"""
    )
    host_pub = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {proc.stderr.read().decode()[-1000:]}")
            time.sleep(0.1)
    try:
        yield {"port": port, "key": d / "client", "known_hosts": d / "known_hosts"}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.integration
def test_sftp_repository_on_another_host_cycle(tmp_path: Path, sshd: dict) -> None:
    remote_dir = tmp_path / "other-host" / "restic"
    remote_dir.parent.mkdir()
    site = Site(
        tmp_path / "host",
        f"sftp://{getpass.getuser()}@127.0.0.1:{sshd['port']}/{remote_dir}",
        remote_ssh_key=str(sshd["key"]),
        remote_known_hosts=str(sshd["known_hosts"]),
    )
    cycle(site)
    assert (remote_dir / "config").is_file(), "the repository is not on the sftp side"
    assert any((remote_dir / "snapshots").iterdir())

    # A host key that does not match is refused (no trust on first use).
    other = tmp_path / "other-host-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    kind, blob = (tmp_path / "other-host-key.pub").read_text().split()[:2]
    Path(sshd["known_hosts"]).write_text(f"[127.0.0.1]:{sshd['port']} {kind} {blob}\n")
    refused = site.run("list", "--remote", check=False)
    assert refused.returncode == 1


@pytest.mark.unit
def test_sftp_command_and_argv_carry_no_secret(tmp_path: Path) -> None:
    site = Site(
        tmp_path / "host",
        "sftp:backup@db2.example:/srv/restic",
        remote_ssh_key="/etc/photomatrix-backup/restic_ssh",
        remote_known_hosts="/etc/photomatrix-backup/known_hosts",
    )
    config = site.loaded()
    command = tool.sftp_command(config)
    assert command.endswith("backup@db2.example -s sftp")
    assert "-i /etc/photomatrix-backup/restic_ssh" in command
    assert "StrictHostKeyChecking=yes" in command
    argv = tool.restic_argv(config, "snapshots")
    assert argv[argv.index("--password-file") + 1] == str(site.password_file)
    assert not any(site.password in a for a in argv)

    site.settings["remote_repository"] = "sftp://backup@[::1]:2222//srv/restic"
    site.save()
    assert "-p 2222 backup@::1 -s sftp" in tool.sftp_command(site.loaded())

    # A password file readable by others, or the archive key reused, is refused.
    os.chmod(site.password_file, 0o644)
    with pytest.raises(tool.BackupError, match="readable by others"):
        tool.restic_argv(config, "snapshots")
    os.chmod(site.password_file, 0o600)
    site.settings["remote_password_file"] = str(site.key)
    site.save()
    with pytest.raises(tool.BackupError, match="must not be the archive key"):
        tool.restic_argv(site.loaded(), "snapshots")
