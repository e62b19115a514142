"""One activation attempt from the page, through the same code path as `POST /api/v1/account/activate`.

The API's handler owns the rate limits (per source and per login), the audit row, the metrics and the
uniform failure; the page calls it with the typed values and turns its answer into an outcome to render.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from fastapi import Request
from pydantic import AnyHttpUrl, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import SQLAlchemyError

from erp.api import account
from erp.errors import ProblemError
from erp.schemas import ActivateRequest
from erp.services.users import password_problems

__all__ = ["Outcome", "attempt", "login_url", "password_problems"]

log = logging.getLogger("erp.web")
Kind = Literal["ok", "failed", "rate_limited", "weak_password", "unavailable"]


class WebSettings(BaseSettings):
    """`ERP_WEB_LOGIN_URL`: where the success page sends people to sign in (unset: no link, only words)."""

    model_config = SettingsConfigDict(env_prefix="ERP_WEB_", extra="ignore")
    login_url: AnyHttpUrl | None = None


@lru_cache(maxsize=1)
def login_url() -> str | None:
    url = WebSettings().login_url
    return str(url) if url is not None else None


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    login: str = ""
    retry_after: float = 0.0
    problems: list[str] = field(default_factory=list)


async def attempt(request: Request, login: str, code: str, password: str) -> Outcome:
    try:
        body = ActivateRequest(login=login, code=code, password=password)
    except ValidationError:
        return Outcome("failed")
    try:
        result = await account.activate(body, request)
    except ProblemError as exc:
        if exc.status == 429:
            return Outcome("rate_limited", retry_after=_seconds(exc.headers.get("Retry-After")))
        if exc.code == "weak_password":
            return Outcome("weak_password", problems=password_problems(password, login))
        if exc.status >= 500:
            return Outcome("unavailable")
        return Outcome("failed")
    except SQLAlchemyError as exc:
        log.error("activation page: database unavailable (%s)", type(exc).__name__)
        return Outcome("unavailable")
    return Outcome("ok", login=result.login)


def _seconds(value: str | None) -> float:
    try:
        return max(1.0, float(value or "60"))
    except ValueError:
        return 60.0
