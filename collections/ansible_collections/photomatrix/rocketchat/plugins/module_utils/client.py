"""A small Rocket.Chat REST client shared by the photomatrix.rocketchat modules.

It knows Rocket.Chat's envelopes (``success``/``error``/``errorType``/``details``), its two ways to
authenticate (``/api/v1/login`` with user name and password, or a user id with a login token or
personal access token) and its two-factor headers. The transport is a plain callable so the compare
logic of every module can be unit-tested without a server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

# (method, url, headers, body bytes or None, timeout seconds) -> (HTTP status, response body bytes)
Transport = Callable[[str, str, dict[str, str], bytes | None, float], tuple[int, bytes]]

DEFAULT_TIMEOUT = 30.0
# Rocket.Chat limits each route per client IP (10 calls a minute by default, `login` included); waiting
# out the window once is better than failing a playbook half-way.
RATE_LIMIT_BUDGET = 90.0
WAIT_SECONDS = re.compile(r"wait (\d+) seconds")
TWO_FACTOR_ERRORS = ("totp-required", "totp-invalid", "totp-max-attempts")


def sha256_hex(text: str) -> str:
    """The value Rocket.Chat expects in ``x-2fa-code`` for the ``password`` 2FA method."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RocketChatError(Exception):
    """A failed Rocket.Chat call; the message names the endpoint and Rocket.Chat's own error."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.details = details or {}

    @property
    def is_two_factor(self) -> bool:
        return self.error_type in TWO_FACTOR_ERRORS


def parse_error(status: int, body: bytes) -> tuple[str, str | None, dict[str, Any]]:
    """Rocket.Chat's error text, error code and details from a failure body of any version.

    Bodies seen: ``{"success": false, "error": "<reason> [<code>]", "errorType": "<code>", "details": {}}``,
    ``{"success": false, "error": "User not found."}``, the pre-8.0 401
    ``{"status": "error", "message": ...}``
    and the pre-8.0 login failure ``{"status": "error", "error": 403 | "totp-required", "message": ...}``.
    """
    try:
        data = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        text = body.decode("utf-8", errors="replace").strip()[:200]
        return (text or f"HTTP {status} with an empty body"), None, {}
    error_type = data.get("errorType")
    raw_error = data.get("error")
    if error_type is None and isinstance(raw_error, str) and raw_error in TWO_FACTOR_ERRORS:
        error_type = raw_error  # pre-8.0 login puts the code in "error"
    message = raw_error if isinstance(raw_error, str) and raw_error not in TWO_FACTOR_ERRORS else None
    message = message or data.get("message") or data.get("reason") or f"HTTP {status}"
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    return str(message), (str(error_type) if error_type else None), details


def default_transport(validate_certs: bool = True) -> Transport:
    """HTTP through Ansible's ``open_url``: proxies, CA bundles and timeouts handled the Ansible way."""
    from ansible.module_utils.urls import open_url  # imported late: unit tests never need it

    def send(method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float):
        from urllib.error import HTTPError, URLError

        try:
            response = open_url(
                url,
                data=body,
                headers=headers,
                method=method,
                timeout=timeout,
                validate_certs=validate_certs,
                follow_redirects="safe",
            )
            return response.getcode(), response.read()
        except HTTPError as exc:
            return exc.code, exc.read() if exc.fp is not None else b""
        except URLError as exc:
            raise RocketChatError(f"cannot reach Rocket.Chat at {url}: {exc.reason}") from None
        except (TimeoutError, OSError) as exc:
            raise RocketChatError(f"cannot reach Rocket.Chat at {url}: {exc}") from None

    return send


class RocketChatClient:
    """Authenticated calls to ``<server_url>/api/v1``.

    Secrets (password, tokens, 2FA code) live only in this object's headers; they are never put into
    an error message.
    """

    def __init__(
        self,
        server_url: str,
        *,
        transport: Transport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        two_factor_method: str | None = None,
        two_factor_code: str | None = None,
        rate_limit_budget: float = RATE_LIMIT_BUDGET,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not server_url or not server_url.startswith(("http://", "https://")):
            raise RocketChatError(f"server_url must be an http:// or https:// URL, got {server_url!r}")
        self.server_url = server_url.rstrip("/")
        self.transport = transport or default_transport()
        self.timeout = timeout
        self.two_factor_method = two_factor_method
        self.two_factor_code = two_factor_code
        self.rate_limit_budget = rate_limit_budget
        self.sleep = sleep
        self.user_id: str | None = None
        self.username: str | None = None
        self._token: str | None = None
        self._logged_in = False  # only a token we made ourselves is logged out again

    # -- authentication -------------------------------------------------------------------------
    def use_token(self, user_id: str, token: str) -> None:
        self.user_id, self._token = user_id, token

    def login(self, username: str, password: str, code: str | None = None) -> dict[str, Any]:
        """``POST /api/v1/login``; remembers the token and, unless told otherwise, the password 2FA."""
        body: dict[str, Any] = {"user": username, "password": password}
        if code:
            body["code"] = code
        try:
            data = self.call("POST", "login", body, authenticated=False)
        except RocketChatError as exc:
            if exc.is_two_factor:
                raise RocketChatError(
                    f"login as {username!r} needs a second factor "
                    f"({exc.details.get('method', 'totp/email')}); "
                    "pass auth_2fa_code, or authenticate with auth_user_id and a personal access token "
                    "created with bypassTwoFactor",
                    status=exc.status,
                    error_type=exc.error_type,
                ) from None
            if exc.status in (401, 403):
                raise RocketChatError(
                    f"login as {username!r} failed: wrong user name or password, or the user is "
                    f"deactivated (HTTP {exc.status}: {exc})",
                    status=exc.status,
                    error_type=exc.error_type,
                ) from None
            raise
        auth = data.get("data") or {}
        if not auth.get("userId") or not auth.get("authToken"):
            raise RocketChatError(f"login as {username!r} returned no userId/authToken")
        self.use_token(auth["userId"], auth["authToken"])
        self.username = (auth.get("me") or {}).get("username") or username
        self._logged_in = True
        if self.two_factor_method is None:
            # Rocket.Chat's password fallback: the sha256 of the password stands in for a 2FA code.
            self.two_factor_method, self.two_factor_code = "password", sha256_hex(password)
        return auth.get("me") or {}

    def logout(self) -> None:
        """Drop the login token this client created (a user keeps at most 50; never leak them)."""
        if self._logged_in:
            with contextlib.suppress(RocketChatError):  # best effort: the token expires anyway
                self.call("POST", "logout", {})
            self._logged_in = False

    @property
    def username_hint(self) -> str | None:
        """The authenticated user's name (``GET /api/v1/me`` once for a token session)."""
        if self.username is None and self._token:
            self.username = self.get("me").get("username")
        return self.username

    # -- requests -------------------------------------------------------------------------------
    def get(self, endpoint: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call("GET", endpoint, params=params)

    def post(self, endpoint: str, body: dict[str, Any], *, two_factor: bool = False) -> dict[str, Any]:
        return self.call("POST", endpoint, body, two_factor=two_factor)

    def call(
        self,
        method: str,
        endpoint: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        authenticated: bool = True,
        two_factor: bool = False,
    ) -> dict[str, Any]:
        url = f"{self.server_url}/api/v1/{endpoint}"
        if params:
            url += "?" + urlencode({k: _query_value(v) for k, v in params.items() if v is not None})
        headers = {"Accept": "application/json"}
        if authenticated:
            if not self._token or not self.user_id:
                raise RocketChatError(
                    "not authenticated: give auth_username/auth_password or auth_user_id/auth_token"
                )
            headers["X-User-Id"] = self.user_id
            headers["X-Auth-Token"] = self._token
        if two_factor and self.two_factor_method and self.two_factor_code:
            headers["x-2fa-method"] = self.two_factor_method
            headers["x-2fa-code"] = self.two_factor_code
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body).encode("utf-8")
        status, raw = self.transport(method, url, headers, payload, self.timeout)
        while status == 429:
            match = WAIT_SECONDS.search(raw.decode("utf-8", errors="replace"))
            wait = float(match.group(1)) + 1 if match else 10.0
            if wait > self.rate_limit_budget:
                break
            self.rate_limit_budget -= wait
            self.sleep(wait)
            status, raw = self.transport(method, url, headers, payload, self.timeout)
        where = f"{method} /api/v1/{endpoint.split('?')[0]}"
        if 200 <= status < 300:
            try:
                data = json.loads(raw.decode("utf-8") or "{}")
            except (UnicodeDecodeError, ValueError):
                raise RocketChatError(
                    f"{where}: HTTP {status} but the body is not JSON", status=status
                ) from None
            if isinstance(data, dict) and data.get("success") is False:
                message, error_type, details = parse_error(status, raw)
                raise RocketChatError(
                    f"{where}: {message}", status=status, error_type=error_type, details=details
                )
            return data if isinstance(data, dict) else {"result": data}
        message, error_type, details = parse_error(status, raw)
        if error_type in TWO_FACTOR_ERRORS:
            message = _two_factor_hint(error_type, details, self.two_factor_method)
        elif status == 401:
            message = f"not logged in ({message}): the user id/token is wrong, expired or revoked"
        raise RocketChatError(
            f"{where}: HTTP {status}: {message}", status=status, error_type=error_type, details=details
        )

    # -- helpers used by several modules ----------------------------------------------------------
    def user_by_username(self, username: str) -> dict[str, Any] | None:
        """``users.info``; None when Rocket.Chat answers ``User not found.``."""
        try:
            return self.get("users.info", {"username": username}).get("user")
        except RocketChatError as exc:
            if exc.status == 400 and "not found" in str(exc).lower():
                return None
            raise


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _two_factor_hint(error_type: str, details: dict[str, Any], sent_method: str | None) -> str:
    wanted = details.get("method") or "unknown"
    if error_type == "totp-required":
        return (
            f"Rocket.Chat requires two-factor confirmation (method {wanted!r}) and none was sent: "
            "log in with "
            "auth_username/auth_password (the password fallback is sent automatically), or pass "
            "auth_2fa_method/auth_2fa_code, or use a personal access token created with bypassTwoFactor"
        )
    if error_type == "totp-invalid":
        return (
            f"Rocket.Chat rejected the two-factor code (sent method {sent_method!r}, it wants {wanted!r}); "
            "for "
            "the password method the code is the sha256 of the current password"
        )
    return "too many wrong two-factor codes; wait before retrying"


def path_segment(value: str) -> str:
    """A setting id or other value placed into a URL path."""
    return quote(value, safe="")
