"""Documentation of the connection options every photomatrix.rocketchat module takes."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  server_url:
    description:
      - Base URL of the Rocket.Chat server, without C(/api/v1), for example C(https://chat.example.com).
      - Falls back to the environment variable E(ROCKETCHAT_URL).
    type: str
    required: true
  auth_username:
    description:
      - User name to log in with (C(POST /api/v1/login)). Needs O(auth_password).
      - The module logs out again at the end, so repeated runs do not pile up login tokens.
      - Falls back to E(ROCKETCHAT_AUTH_USERNAME). Mutually exclusive with O(auth_user_id).
    type: str
  auth_password:
    description:
      - Password for O(auth_username).
      - Also used for Rocket.Chat's two-factor password fallback (C(x-2fa-method=password) and the sha256 of
        the password as C(x-2fa-code)) on calls that require two-factor confirmation, with either way of
        authenticating.
      - Falls back to E(ROCKETCHAT_AUTH_PASSWORD).
    type: str
  auth_user_id:
    description:
      - User id to authenticate with together with O(auth_token) (a login token or a personal access token).
      - Falls back to E(ROCKETCHAT_AUTH_USER_ID).
    type: str
  auth_token:
    description:
      - Login token or personal access token of O(auth_user_id).
      - Falls back to E(ROCKETCHAT_AUTH_TOKEN).
    type: str
  auth_2fa_method:
    description:
      - Two-factor method to send in C(x-2fa-method) on calls that require it.
      - Defaults to V(password) when O(auth_password) is known, otherwise to V(totp) when O(auth_2fa_code)
        is given.
    type: str
    choices: [password, totp, email]
  auth_2fa_code:
    description:
      - Two-factor code to send (a TOTP or emailed code). With a one-time code only one protected call
        succeeds, so prefer the password fallback or a personal access token created with C(bypassTwoFactor).
    type: str
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP response.
    type: float
    default: 30
notes:
  - Secrets (passwords, tokens, two-factor codes, webhook URLs) are never returned and never shown in diffs.
"""
