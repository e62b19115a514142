"""The committed contract: erp/openapi.json is this document, generated from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from erp.settings import Settings

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"


def openapi_document() -> dict[str, Any]:
    from erp.app import create_app

    # Fixed settings: the document must not depend on the environment it is generated in.
    app = create_app(Settings(database_url="sqlite://", _env_file=None))
    return app.openapi()
