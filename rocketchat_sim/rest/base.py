"""The REST endpoint wrapper: auth headers, rate limit, route permissions, 2FA, envelope and errors.

Handlers are plain functions `handler(call) -> dict`; the wrapper adds `success: true` and turns
`ApiError` into Rocket.Chat's error bodies, exactly as ApiClass.ts does around its routes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from .. import auth
from ..errors import ApiError, failure, forbidden, invalid_params, not_logged_in
from ..util import dumps, hash_token, now_ms

if TYPE_CHECKING:
    from ..app import Simulator

log = logging.getLogger("rocketchat_sim.rest")

Handler = Callable[["Call"], "dict[str, Any] | Awaitable[dict[str, Any]]"]


@dataclass
class Call:
    sim: Simulator
    request: Request
    user: dict[str, Any] | None
    token_record: dict[str, Any] | None
    body: dict[str, Any]
    query: dict[str, str]
    path_params: dict[str, str]

    @property
    def ws(self) -> Any:
        return self.sim.workspace

    @property
    def uid(self) -> str:
        if self.user is None:
            raise not_logged_in()
        return self.user["_id"]

    def can(self, permission: str, rid: str | None = None) -> bool:
        return self.user is not None and self.sim.workspace.has_permission(self.user["_id"], permission, rid)


@dataclass
class Endpoint:
    methods: tuple[str, ...]
    path: str
    handler: Handler
    auth_required: bool = True
    permissions: tuple[str, ...] = ()
    two_factor: bool = False
    rate_limited: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


ENDPOINTS: list[Endpoint] = []


def endpoint(
    methods: str | tuple[str, ...],
    *paths: str,
    auth_required: bool = True,
    permissions: tuple[str, ...] = (),
    two_factor: bool = False,
    rate_limited: bool = True,
) -> Callable[[Handler], Handler]:
    """Register a handler under /api/v1/<path> (several paths for aliases such as im.* / dm.*)."""
    method_tuple = (methods,) if isinstance(methods, str) else methods

    def register(handler: Handler) -> Handler:
        for path in paths:
            full = path if path.startswith("/") else f"/api/v1/{path}"
            ENDPOINTS.append(
                Endpoint(method_tuple, full, handler, auth_required, permissions, two_factor, rate_limited)
            )
        return handler

    return register


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body).encode(), status_code=status, headers=headers, media_type="application/json")


def authenticate(
    sim: Simulator, request: Request
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, bool]:
    """(user, token record, headers_given). Looks up X-User-Id + X-Auth-Token like Rocket.Chat."""
    uid = request.headers.get("x-user-id")
    token = request.headers.get("x-auth-token")
    if not uid or not token:
        return None, None, False
    hashed = hash_token(token)
    if sim.state.tokens.get(hashed) != uid:
        return None, None, True
    user = sim.state.users.get(uid)
    if user is None or not user.get("active", True):
        return None, None, True
    record = auth.find_token(user, hashed)
    if record is None:
        return None, None, True
    if record.get("type") != "personalAccessToken":
        expiry = auth.token_expires_ms(
            record, int(sim.workspace.settings.get("Accounts_LoginExpiration", 90))
        )
        if expiry < now_ms():
            return None, None, True
    return user, record, True


async def _parse_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    ctype = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in ctype:
        # parsed here: Starlette's form parser needs python-multipart, which the image does not carry
        return {k: v[-1] for k, v in parse_qs(raw.decode(errors="replace")).items()}
    try:
        data = json.loads(raw)
    except ValueError:
        raise failure("Invalid JSON body", "invalid-params") from None
    if not isinstance(data, dict):
        raise invalid_params("must be object")
    return data


def make_route_handler(sim: Simulator, ep: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    route_key = ep.path

    async def handle(request: Request) -> Response:
        extra_headers: dict[str, str] = {}
        try:
            user, record, _given = authenticate(sim, request)
            if ep.auth_required and user is None:
                raise not_logged_in()
            settings = sim.workspace.settings
            if (
                ep.rate_limited
                and sim.ratelimiter.enabled(settings)
                and not (
                    user is not None and sim.workspace.has_permission(user["_id"], "api-bypass-rate-limit")
                )
            ):
                client = request.client.host if request.client else "unknown"
                extra_headers = sim.ratelimiter.check(settings, client, f"{request.method}{route_key}")
            if ep.permissions and (
                user is None or not sim.workspace.has_any_permission(user["_id"], list(ep.permissions))
            ):
                raise forbidden()
            body = await _parse_body(request) if request.method in ("POST", "PUT", "DELETE") else {}
            if ep.two_factor and user is not None:
                auth.check_two_factor(
                    settings,
                    user,
                    record,
                    request.headers.get("x-2fa-code") or body.get("code"),
                    request.headers.get("x-2fa-method"),
                    auth.fingerprint(
                        request.headers.get("user-agent", ""), request.client.host if request.client else ""
                    ),
                )
            call = Call(
                sim, request, user, record, body, dict(request.query_params), dict(request.path_params)
            )
            result = ep.handler(call)
            if not isinstance(result, dict):
                result = await result
            if "_response" in result:  # a non-JSON answer (avatars)
                return result["_response"]
            if "_redirect" in result:
                return Response(status_code=307, headers={**extra_headers, "Location": result["_redirect"]})
            if result.get("_raw") is not None:  # handlers answering with a body of their own (login, logout)
                return json_response(result.get("_status", 200), result["_raw"], extra_headers)
            result["success"] = True
            return json_response(200, result, extra_headers)
        except ApiError as exc:
            return json_response(exc.status, exc.body, {**extra_headers, **exc.headers})
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return json_response(500, {"success": False, "error": "Internal server error"}, extra_headers)

    return handle


# ---------------------------------------------------------------- parameter helpers
def require(data: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    value = data.get(name)
    if value is None or (kind is str and value == ""):
        raise invalid_params(f"must have required property '{name}'")
    if not isinstance(value, kind):
        raise invalid_params(f"/{name} must be {_kind_name(kind)}")
    return value


def optional(data: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = data.get(name, default)
    if value is not None and not isinstance(value, kind):
        raise invalid_params(f"/{name} must be {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", bool: "boolean", int: "integer", list: "array", dict: "object"}
    if isinstance(kind, tuple):
        return ",".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def paginate(call: Call, items: list[Any]) -> tuple[list[Any], int, int]:
    """Apply offset/count the way Rocket.Chat's getPaginationItems does; returns (page, offset, count)."""
    settings = call.sim.workspace.settings
    default = int(settings.get("API_Default_Count", 50))
    upper = int(settings.get("API_Upper_Count_Limit", 100))
    try:
        offset = int(call.query.get("offset", 0))
        count = int(call.query.get("count", default))
    except ValueError:
        raise invalid_params("offset and count must be integers") from None
    offset = max(offset, 0)
    count = min(count, upper)
    if count == 0 and settings.get("API_Allow_Infinite_Count", True):
        page = items[offset:]  # count=0 with API_Allow_Infinite_Count: no limit
        return page, offset, len(page)
    if count <= 0:
        count = default
    page = items[offset : offset + count]
    return page, offset, len(page)


def listing(call: Call, key: str, items: list[Any], view: Callable[[Any], Any]) -> dict[str, Any]:
    """A paginated list response: `{key: [view(item)...], count, offset, total}`."""
    page, offset, count = paginate(call, items)
    return {key: [view(item) for item in page], "count": count, "offset": offset, "total": len(items)}


def query_json(call: Call, name: str) -> dict[str, Any]:
    raw = call.query.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid_params(f"Invalid query parameter provided: {name}") from None
    if not isinstance(value, dict):
        raise invalid_params(f"Invalid query parameter provided: {name}")
    return value
