"""The backup tool (roles/backup/files/photomatrix-backup.py, a script, not a package) as a module."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from ops.scripts import load_script

SOURCE = Path(__file__).resolve().parents[2] / "roles" / "backup" / "files" / "photomatrix-backup.py"


def load_backup_tool(name: str) -> ModuleType:
    """A fresh copy of the tool under module `name` (each test file its own: patches stay local)."""
    return load_script(SOURCE, name)
