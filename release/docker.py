"""The docker CLI with a timeout on every call."""

from __future__ import annotations

import json
import shutil
import subprocess  # nosec B404


class DockerError(RuntimeError):
    """A docker command failed or did not finish in time."""


def run(args: list[str], timeout: float = 120, check: bool = True) -> str:
    program = shutil.which("docker") or "docker"
    try:
        out = subprocess.run(  # noqa: S603  # nosec B603
            [program, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"docker {args[0]}: no answer within {timeout:.0f} s") from exc
    if check and out.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:2])}: {out.stderr.strip()[-600:]}")
    return out.stdout


def repo_digests(image: str) -> list[str]:
    out = run(["image", "inspect", "--format", "{{json .RepoDigests}}", image])
    return list(json.loads(out) or [])
