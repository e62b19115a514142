"""Ansible glue shared by every photomatrix.rocketchat module: connection options, session, diffs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import (
    RocketChatClient,
    RocketChatError,
    default_transport,
)

MASK = "********"


def connection_argument_spec() -> dict[str, Any]:
    """The options of the ``photomatrix.rocketchat.connection`` documentation fragment."""
    return {
        "server_url": {"type": "str", "required": True, "fallback": (env_fallback, ["ROCKETCHAT_URL"])},
        "auth_username": {"type": "str", "fallback": (env_fallback, ["ROCKETCHAT_AUTH_USERNAME"])},
        "auth_password": {
            "type": "str",
            "no_log": True,
            "fallback": (env_fallback, ["ROCKETCHAT_AUTH_PASSWORD"]),
        },
        "auth_user_id": {"type": "str", "fallback": (env_fallback, ["ROCKETCHAT_AUTH_USER_ID"])},
        "auth_token": {"type": "str", "no_log": True, "fallback": (env_fallback, ["ROCKETCHAT_AUTH_TOKEN"])},
        "auth_2fa_method": {"type": "str", "choices": ["password", "totp", "email"]},
        "auth_2fa_code": {"type": "str", "no_log": True},
        "validate_certs": {"type": "bool", "default": True},
        "timeout": {"type": "float", "default": 30.0},
    }


def new_module(argument_spec: dict[str, Any], **kwargs: Any) -> AnsibleModule:
    spec = connection_argument_spec()
    spec.update(argument_spec)
    return AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_together=[("auth_user_id", "auth_token"), *kwargs.pop("required_together", [])],
        required_one_of=[("auth_username", "auth_user_id"), *kwargs.pop("required_one_of", [])],
        mutually_exclusive=[("auth_username", "auth_user_id"), *kwargs.pop("mutually_exclusive", [])],
        required_by={"auth_username": "auth_password"},
        **kwargs,
    )


def build_client(params: dict[str, Any], transport=None) -> RocketChatClient:
    method = params.get("auth_2fa_method")
    code = params.get("auth_2fa_code")
    if code and not method:
        method = "totp"
    if not code and params.get("auth_password") and params.get("auth_user_id"):
        # A token session may still confirm 2FA with the password fallback when the password is known.
        from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import sha256_hex

        method, code = "password", sha256_hex(params["auth_password"])
    return RocketChatClient(
        params["server_url"],
        transport=transport or default_transport(params.get("validate_certs", True)),
        timeout=params.get("timeout") or 30.0,
        two_factor_method=method,
        two_factor_code=code,
    )


@contextmanager
def session(module: AnsibleModule, transport=None) -> Iterator[RocketChatClient]:
    """A logged-in client; logs out again; any Rocket.Chat failure becomes a clean ``fail_json``."""
    params = module.params
    client = None
    try:
        client = build_client(params, transport)
        if params.get("auth_user_id"):
            client.use_token(params["auth_user_id"], params["auth_token"])
        else:
            login_code = params.get("auth_2fa_code") if params.get("auth_2fa_method") != "password" else None
            client.login(params["auth_username"], params["auth_password"], code=login_code)
        yield client
    except RocketChatError as exc:
        module.fail_json(msg=str(exc), rocketchat_error=exc.error_type, http_status=exc.status)
    finally:
        if client is not None:
            client.logout()


def masked(value: Any, secret: bool) -> Any:
    return MASK if secret and value not in (None, "") else value


def write_secret_file(module: AnsibleModule, path: str, content: str) -> bool:
    """Write ``content`` to ``path`` with mode 0600 (atomically); True when the file changed.

    Never shows the content: the diff names the file only. Honors check mode.
    """
    path = os.path.expanduser(path)
    current = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            current = handle.read().rstrip("\n")
    mode_ok = os.path.exists(path) and (os.stat(path).st_mode & 0o777) == 0o600
    if current == content and mode_ok:
        return False
    if module.check_mode:
        return True
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rocketchat-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content + "\n")
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def read_secret_file(path: str | None) -> str | None:
    if not path:
        return None
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip() or None
