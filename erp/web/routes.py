"""`GET/POST /activate`: the HTML form an employee activates the ERP account with, and its stylesheet.

Thin: it reads the form, checks the CSRF token and what the person typed (nothing that needs the
database), hands the attempt to the same code path as `POST /api/v1/account/activate` (its rate limits,
audit and errors), and renders the answer in the person's language. No script, no third-party asset.
"""

from __future__ import annotations

import ipaddress
import math
from importlib.resources import files
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from erp.runtime import Runtime
from erp.security.network import in_networks
from erp.services.users import MIN_PASSWORD_LENGTH
from erp.web import activation, csrf, i18n

PATH = "/activate"
STYLESHEET_PATH = "/activate/style.css"
FORM_TYPE = "application/x-www-form-urlencoded"
WEAK = "error_weak"  # the message key of a password that does not fit the rules
FIELD_LIMITS = (("login", 64), ("code", 32), ("password", 256), ("password2", 256))
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    # Not no-referrer: with it browsers send `Origin: null` on the form POST, and the origin check needs it.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Vary": "Accept-Language, Cookie",
}
STYLESHEET = files("erp.web").joinpath("static", "activate.css").read_bytes()

templates = Environment(
    loader=PackageLoader("erp.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)
router = APIRouter(include_in_schema=False)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _is_https(request: Request, rt: Runtime) -> bool:
    """HTTPS to the browser: our own TLS, or X-Forwarded-Proto from a trusted proxy (nginx)."""
    if request.scope.get("scheme") == "https":
        return True
    peer = request.client.host if request.client else None
    try:
        peer_ip = ipaddress.ip_address(peer) if peer else None
    except ValueError:
        peer_ip = None
    proto = request.headers.get("x-forwarded-proto", "").strip().lower()
    return proto == "https" and in_networks(peer_ip, rt.trusted_proxies)


def _render(
    request: Request,
    template: str,
    lang: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: object,
) -> Response:
    rt = _runtime(request)
    secure = _is_https(request, rt)
    name = csrf.cookie_name(secure)
    value = request.cookies.get(name)
    if not csrf.usable(value) or status == 403:
        value = csrf.new_value()
    body = templates.get_template(template).render(
        lang=lang,
        other=i18n.other(lang),
        t=i18n.TEXTS[lang],
        path=PATH,
        stylesheet=STYLESHEET_PATH,
        csrf_field=csrf.FIELD,
        csrf_token=csrf.token_for(rt.settings.secret_bytes, value),
        min_password_length=MIN_PASSWORD_LENGTH,
        **context,
    )
    response = HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
    response.headers["Content-Language"] = lang
    response.set_cookie(name, value, path="/", secure=secure, httponly=True, samesite="strict")
    return response


@router.get(PATH)
def activation_page(request: Request) -> Response:
    lang = i18n.negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))
    return _render(request, "activate.html", lang, values={}, errors={})


@router.get(STYLESHEET_PATH)
def activation_stylesheet() -> Response:
    return Response(
        STYLESHEET,
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def _form(content_type: str, body: bytes) -> dict[str, str] | None:
    """The urlencoded fields (first value of each), or None when the body is not a form."""
    if content_type.split(";", 1)[0].strip().lower() != FORM_TYPE:
        return None
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in parsed.items()}


def _field_errors(entered: dict[str, str]) -> dict[str, str]:
    """What is wrong with the typed values on their own (nothing here needs the database)."""
    errors: dict[str, str] = {}
    for name, limit in FIELD_LIMITS:
        value = entered.get(name, "")
        if not value:
            errors[name] = "error_required"
        elif len(value) > limit:
            errors[name] = "error_too_long"
        elif name in ("login", "code") and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            errors[name] = "error_control"
    if not errors.keys() & {"password", "password2"} and entered["password"] != entered["password2"]:
        errors["password2"] = "error_mismatch"
    return errors


@router.post(PATH)
async def activation_submit(request: Request) -> Response:
    rt = _runtime(request)
    form = _form(request.headers.get("content-type", ""), await request.body())
    fields = form or {}
    lang = i18n.negotiate(fields.get("lang"), request.headers.get("accept-language"))
    name = csrf.cookie_name(_is_https(request, rt))
    if (
        form is None
        or not csrf.same_origin(
            request.headers.get("origin"), request.headers.get("sec-fetch-site"), request.headers.get("host")
        )
        or not csrf.token_matches(rt.settings.secret_bytes, request.cookies.get(name), form.get(csrf.FIELD))
    ):
        return _render(request, "activate.html", lang, status=403, values={}, errors={}, alert="error_csrf")

    # What people paste: spaces around the login, spaces or dashes inside the code.
    values = {
        "login": fields.get("login", "").strip().lower(),
        "code": "".join(ch for ch in fields.get("code", "") if not ch.isspace() and ch != "-"),
    }
    password = fields.get("password", "")
    errors = _field_errors({**values, "password": password, "password2": fields.get("password2", "")})
    # The API's own password rules, checked before the code: nothing is spent on a password that
    # cannot be accepted, and the answer depends on nothing but what was typed.
    problems = [] if errors else activation.password_problems(password, values["login"])
    if errors or problems:
        if problems:
            errors["password"] = WEAK
        weak = i18n.password_problem_texts(problems, lang)
        return _render(request, "activate.html", lang, status=422, values=values, errors=errors, weak=weak)

    outcome = await activation.attempt(request, values["login"], values["code"], password)
    if outcome.kind == "ok":
        return _render(request, "done.html", lang, login=outcome.login, login_url=activation.login_url())
    if outcome.kind == "rate_limited":
        minutes = max(1, math.ceil(outcome.retry_after / 60))
        return _render(
            request,
            "activate.html",
            lang,
            status=429,
            headers={"Retry-After": str(max(1, math.ceil(outcome.retry_after)))},
            values=values,
            errors={},
            alert="error_rate_limited",
            minutes=minutes,
        )
    if outcome.kind == "weak_password":
        weak = i18n.password_problem_texts(outcome.problems, lang)
        return _render(
            request, "activate.html", lang, status=422, values=values, errors={"password": WEAK}, weak=weak
        )
    if outcome.kind == "unavailable":
        return _render(
            request, "activate.html", lang, status=503, values=values, errors={}, alert="error_unavailable"
        )
    return _render(request, "activate.html", lang, status=400, values=values, errors={}, alert="error_failed")
