"""The Docker CLI, with a timeout on every call."""

from __future__ import annotations

import json
import shutil
import subprocess  # nosec B404
from collections.abc import Sequence

DOCKER = shutil.which("docker") or "/usr/bin/docker"


class DockerError(RuntimeError):
    """A docker command failed; the message carries the command and the end of its error output."""


def run(args: Sequence[str], *, timeout: float = 120, check: bool = True, stdin: str | None = None) -> str:
    """Run `docker ARGS...` and return its standard output."""
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603
            [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False, input=stdin
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"docker {' '.join(args[:3])} ... did not finish within {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:3])} ... failed: {result.stderr.strip()[-1500:]}")
    return result.stdout


def stream(args: Sequence[str], *, timeout: float) -> None:
    """Run a long docker command (build, push) with its output on the terminal."""
    try:
        result = subprocess.run([DOCKER, *args], timeout=timeout, check=False)  # noqa: S603  # nosec B603
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"docker {' '.join(args[:2])} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:2])} failed (exit code {result.returncode})")


def ids(kind: str, label: str) -> list[str]:
    """Ids (names for volumes and networks) of the objects of one kind carrying LABEL (key=value)."""
    if kind == "container":
        out = run(["ps", "--all", "--quiet", "--filter", f"label={label}"])
    else:
        out = run([kind, "ls", "--quiet", "--filter", f"label={label}"])
    return out.split()


def inspect(kind: str, name: str) -> dict | None:
    """`docker KIND inspect NAME` as a dict, or None when there is no such object."""
    out = run([kind, "inspect", name], check=False)
    data = json.loads(out) if out.strip() else []
    return data[0] if data else None
