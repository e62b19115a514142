#!/usr/bin/env python3
"""Print one SHA-256 over the contents of the given files and directories (sorted, caches skipped).

Image tags are derived from it, so an image is rebuilt exactly when one of its inputs changed.
"""

import hashlib
import sys
from pathlib import Path

SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


def files_under(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not SKIPPED_PARTS.intersection(path.parts) and path.suffix != ".pyc"
    )


def main(base: str, inputs: list[str]) -> None:
    digest = hashlib.sha256()
    base_path = Path(base)
    for item in inputs:
        for path in files_under(base_path / item):
            digest.update(str(path.relative_to(base_path)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    print(digest.hexdigest())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
