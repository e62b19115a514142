"""The FastAPI application of the ERP bot-integration API."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from erp import __version__
from erp.api import account, admin, bot, ops, problems, reports
from erp.db import get_engine, reset_engine
from erp.middleware import RequestMiddleware
from erp.runtime import Runtime
from erp.settings import Settings, get_settings
from erp.web import router as activation_page

DESCRIPTION = """The API the Rocket.Chat onboarding bot uses to register employees in the Photomatrix ERP.

Authentication: `X-API-Key`, or `Authorization: Bearer <jwt>` from `POST /api/bot/v1/auth/token`.
Every error is RFC 9457 `application/problem+json` with a stable `code`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = Runtime.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        get_engine()
        # Everything loaded so far lives as long as the process: out of the collector's way, so that
        # full collections under load stay short (latency tail).
        gc.freeze()
        yield
        runtime.refusals.flush(force=True)
        runtime.alerts.close()
        reset_engine()

    app = FastAPI(
        title="Photomatrix ERP bot-integration API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect named http:// + the client's Host header
        docs_url=None,  # the contract is erp/openapi.json (and /openapi.json); no UI on the service port
        redoc_url=None,
    )
    app.state.runtime = runtime
    problems.install(app)
    app.include_router(bot.router)
    app.include_router(admin.router)
    app.include_router(reports.router)
    app.include_router(account.router)
    app.include_router(ops.router)
    app.include_router(activation_page)  # GET/POST /activate: the employees' HTML form
    app.add_middleware(RequestMiddleware, runtime=runtime)
    return app
