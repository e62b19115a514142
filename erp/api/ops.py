"""Operations: liveness, readiness (database reachable), Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from erp.api.problems import problem_response, responses
from erp.db import read_session
from erp.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=responses(503))
def readyz(request: Request) -> Response | Health:
    try:
        with read_session() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return problem_response(request, 503, "unavailable", "the database is not reachable")
    return Health(status="ready")


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
