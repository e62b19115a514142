"""Commands on lab hosts over SSH (the lab's key, host keys checked), and the repository copied there."""

from __future__ import annotations

import subprocess  # nosec B404
import tarfile
import time
from pathlib import Path

from lab.topology import ROOT, Lab

SSH = "/usr/bin/ssh"
GIT = "/usr/bin/git"


class RemoteError(RuntimeError):
    """A command on a lab host failed or timed out."""


def ssh_argv(lab: Lab, host: str) -> list[str]:
    state = lab.state_dir
    return [
        SSH,
        "-i", str(state / "ssh" / "id_ed25519"),
        "-o", f"UserKnownHostsFile={state / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=30",
        "-o", "ServerAliveInterval=30",
        f"deploy@{lab.hosts[host]}",
    ]  # fmt: skip


def run(lab: Lab, host: str, command: str, *, timeout: float, stdin: bytes | None = None) -> float:
    """Run COMMAND (a shell line) on HOST with its output on the terminal; returns the seconds it took."""
    started = time.monotonic()
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603
            [*ssh_argv(lab, host), command], input=stdin, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"{host}: `{command}` did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise RemoteError(f"{host}: `{command}` failed (exit code {result.returncode})")
    return time.monotonic() - started


def capture(lab: Lab, host: str, command: str, *, timeout: float = 60) -> str:
    """Run COMMAND on HOST and return its standard output."""
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603
            [*ssh_argv(lab, host), command], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"{host}: `{command}` did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise RemoteError(f"{host}: `{command}` failed: {result.stderr.strip()[-800:]}")
    return result.stdout


def source_files() -> list[str]:
    """What a commit of the work tree would hold: tracked and untracked files, minus ignored ones
    (so `.lab/` keys, `.venv`, secrets and build output never leave this machine)."""
    out = subprocess.run(  # noqa: S603  # nosec B603
        [GIT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    return sorted(name for name in out.split("\0") if name and (ROOT / name).is_file())


def copy_repository(lab: Lab, host: str, destination: str, archive: Path) -> None:
    """Copy the repository's sources to DESTINATION on HOST (replacing what was there)."""
    with tarfile.open(archive, "w:gz") as tar:
        for name in source_files():
            tar.add(ROOT / name, arcname=name, recursive=False)
    run(
        lab,
        host,
        f"sudo rm -rf {destination} && sudo mkdir -p {destination} && sudo tar -xzf - -C {destination}",
        timeout=300,
        stdin=archive.read_bytes(),
    )


def copy_directory(lab: Lab, host: str, source: Path, destination: str, *, timeout: float = 900) -> float:
    """Stream the files of SOURCE (a directory here) to DESTINATION on HOST, replacing what was there;
    returns the seconds it took."""
    started = time.monotonic()
    remote = f"sudo rm -rf {destination} && sudo mkdir -p {destination} && sudo tar -xf - -C {destination}"
    with subprocess.Popen(  # noqa: S603  # nosec B603
        ["/usr/bin/tar", "-cf", "-", "-C", str(source), "."], stdout=subprocess.PIPE
    ) as tar:
        try:
            result = subprocess.run(  # noqa: S603  # nosec B603
                [*ssh_argv(lab, host), remote], stdin=tar.stdout, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            tar.kill()
            raise RemoteError(f"{host}: copying {source} did not finish within {timeout:.0f} s") from exc
        finally:
            if tar.stdout:
                tar.stdout.close()
        tar_code = tar.wait(timeout=60)
    if result.returncode != 0 or tar_code != 0:
        raise RemoteError(
            f"{host}: copying {source} to {destination} failed (ssh {result.returncode}, tar {tar_code})"
        )
    return time.monotonic() - started
