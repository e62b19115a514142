"""A role's script (roles/*/files/*.py: a single stdlib-only file, not a package) as a module, for the
tests and the lab tools that call its functions instead of copying them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
WAIT_HEALTHY = ROOT / "roles" / "common" / "files" / "wait_healthy.py"


def load_script(path: Path, name: str) -> ModuleType:
    """A fresh copy of the script at PATH under module NAME (registered in sys.modules, as dataclasses and
    pickling need)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be loaded as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def wait_healthy() -> ModuleType:
    """roles/common's wait script: check_argv (a container's own health check as `docker exec` arguments)
    and run_check (that check, run now)."""
    return sys.modules.get("photomatrix_wait_healthy") or load_script(
        WAIT_HEALTHY, "photomatrix_wait_healthy"
    )
