"""Load tests as QA runs them.

    python -m loadtests run [--profile smoke|baseline|stress|soak] [--target URL] [--processes N] ...
    python -m loadtests worker --master-host HOST [--master-port 5557]
    python -m loadtests capacity [--erp-workers 1,2] ...

`make load` and `make capacity` call these; docs/load-testing.md explains every option.
"""

from __future__ import annotations

import os
import sys


def worker(argv: list[str]) -> int:
    """A locust worker for a master on another host (the LOAD_* environment must be set here too)."""
    import argparse
    import subprocess

    from loadtests.run import LOCUSTFILE, ROOT
    from loadtests.settings import LoadSettingsError, read_credentials

    parser = argparse.ArgumentParser(prog="python -m loadtests worker")
    parser.add_argument("--master-host", required=True)
    parser.add_argument("--master-port", type=int, default=5557)
    args = parser.parse_args(argv)
    try:
        credentials = read_credentials(os.environ.get("LOAD_CREDENTIALS_FILE"))
    except LoadSettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = {
        **credentials,
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
    command += ["--master-host", args.master_host, "--master-port", str(args.master_port)]
    command += ["--loglevel", "WARNING"]
    return subprocess.call(command, env=env)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "worker", "capacity"):
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "run":
        from loadtests.run import main as run_main

        return run_main(rest)
    if command == "capacity":
        from loadtests.capacity import main as capacity_main

        return capacity_main(rest)
    return worker(rest)


if __name__ == "__main__":
    sys.exit(main())
