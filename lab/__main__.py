"""python -m lab up|down|status [-i INVENTORY] [--purge-images]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab import control, docker
from lab.topology import DEFAULT_INVENTORY, LabConfigError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument(
        "-i", "--inventory", type=Path, default=DEFAULT_INVENTORY, help="default: inventory/lab"
    )
    parser.add_argument("--purge-images", action="store_true", help="down: also remove the cached lab images")
    args = parser.parse_args(argv)
    try:
        lab = load(args.inventory)
        if args.action == "up":
            control.up(lab)
        elif args.action == "down":
            control.down(lab, purge_images=args.purge_images)
        else:
            rows = control.status(lab)
            for name, state, address in rows:
                print(f"{name:<24} {state:<10} {address}")
            if not rows:
                print(f"lab {lab.name}: no containers")
    except (LabConfigError, docker.DockerError) as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
