"""The backup tool (roles/backup/files/photomatrix-backup.py, a script, not a package) as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).resolve().parents[2] / "roles" / "backup" / "files" / "photomatrix-backup.py"


def load_backup_tool(name: str) -> ModuleType:
    """A fresh copy of the tool under module `name` (each test file its own: patches stay local)."""
    spec = importlib.util.spec_from_file_location(name, SOURCE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
