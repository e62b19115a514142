"""Wait until a container is ready, on its own host: roles/common's wait_healthy entry point runs this
with ansible.builtin.script (one SSH round trip per wait, not one per look).

    wait_healthy.py NAME TIMEOUT DELAY

Ready means the container's own Docker health check passes: either Docker's verdict is already healthy,
or the health check's command, run now inside the container (docker exec, the container's user and
environment, as Docker runs it), exits 0. So a wait never depends on the health check's interval: the
services check every 30 s (Docker's default; each check costs a process in the container), and a
restarted container is found ready within DELAY seconds of being so, not one interval later.

Stops at once when the container is missing, has no health check, or crash-loops (Docker restarted
it, or it exited, is restarting or dead). Prints one JSON object: ready, reason, state, health,
restarts, check (the last check's exit code and output: the one run here if any,
else Docker's last). Never the inspect result itself: it holds the container's environment.
Standard library only (the host's python3) and the docker CLI.
"""

from __future__ import annotations

import json
import shutil
import subprocess  # nosec B404
import sys
import time

OUTPUT_MAX = 4096  # as much of a check's output as Docker keeps


def docker(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """The docker CLI with ARGS (a fixed argv, never a shell)."""
    argv = [shutil.which("docker") or "/usr/bin/docker", *args]
    return subprocess.run(  # noqa: S603  # nosec B603
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )


def inspect(name: str) -> tuple[dict | None, str]:
    """The container's inspect result, or None and why not (missing, or the daemon's error)."""
    try:
        done = docker(["inspect", "--type", "container", name], 30)
    except subprocess.TimeoutExpired:
        return None, "docker inspect did not answer within 30 s"
    if done.returncode != 0:
        message = done.stderr.strip()
        if "no such" in message.lower():
            return None, "missing"
        return None, message or f"docker inspect exit code {done.returncode}"
    return json.loads(done.stdout)[0], ""


def check_argv(config: dict) -> list[str] | None:
    """The health check's command as docker exec's arguments; None when there is none."""
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return test[1:]
    if test[0] == "CMD-SHELL":
        return [*(config.get("Shell") or ["/bin/sh", "-c"]), test[1]]
    return None


def run_check(name: str, argv: list[str], timeout: float) -> dict:
    """The health check's command run now inside the container: its exit code and output."""
    try:
        done = docker(["exec", name, *argv], timeout)
    except subprocess.TimeoutExpired:
        return {"ExitCode": -1, "Output": f"the check did not finish within {timeout:.0f} s"}
    return {"ExitCode": done.returncode, "Output": (done.stdout + done.stderr)[-OUTPUT_MAX:]}


def wait(name: str, timeout: int, delay: int) -> dict:
    deadline = time.monotonic() + timeout
    ran: dict | None = None
    while True:
        info, error = inspect(name)
        if info is None:
            if error == "missing":
                return {"ready": False, "reason": "there is no such container", "exists": False}
            return {"ready": False, "reason": f"docker inspect failed: {error}", "exists": None}
        state = info.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        restarts = info.get("RestartCount", 0)
        argv = check_argv(info.get("Config") or {})
        result = {
            "exists": True,
            "state": state.get("Status", "unknown"),
            "health": health or "none",
            "restarts": restarts,
        }
        docker_log = (state.get("Health") or {}).get("Log") or []
        result["check"] = ran or (docker_log[-1] if docker_log else None)
        if health == "healthy":
            return {**result, "ready": True, "reason": "healthy"}
        if argv is None or health is None:
            why = "it has no health check (neither its image nor its task defines one)"
            return {**result, "ready": False, "reason": why}
        if restarts > 0 or state.get("Status") == "restarting":
            why = f"it crash-loops (Docker restarted it {restarts} time{'' if restarts == 1 else 's'})"
            return {**result, "ready": False, "reason": why}
        if state.get("Status") in ("exited", "dead"):
            why = f"it {state['Status']} with code {state.get('ExitCode')}"
            why += f": {state['Error']}" if state.get("Error") else ""
            return {**result, "ready": False, "reason": why}
        if state.get("Running"):
            check_timeout = ((info["Config"]["Healthcheck"].get("Timeout") or 30_000_000_000) / 1e9) + 5
            ran = run_check(name, argv, max(1.0, min(check_timeout, deadline - time.monotonic() + 5)))
            result["check"] = ran
            if ran["ExitCode"] == 0:
                return {**result, "ready": True, "reason": "its health check passed when run now"}
        if time.monotonic() + delay > deadline:
            return {**result, "ready": False, "reason": f"still {health} at the end of its {timeout} s wait"}
        time.sleep(delay)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: wait_healthy.py NAME TIMEOUT DELAY", file=sys.stderr)
        return 2
    print(json.dumps(wait(argv[1], int(argv[2]), max(int(argv[3]), 1))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
