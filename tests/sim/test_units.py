"""Unit tests of the simulator's building blocks (no network)."""

from __future__ import annotations

import json

import pytest

from rocketchat_sim import auth
from rocketchat_sim.config import SimSettings, setting_overrides
from rocketchat_sim.ddp import text_frame
from rocketchat_sim.errors import ApiError
from rocketchat_sim.ratelimit import RateLimiter
from rocketchat_sim.settings_registry import SettingValueError, convert
from rocketchat_sim.state import State, StateFileError
from rocketchat_sim.util import hash_token, iso, new_id, sha256_hex

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
def test_text_frame_lengths(size):
    frame = text_frame("x" * size)
    assert frame[0] == 0x81  # FIN + text
    if size < 126:
        assert frame[1] == size
        assert len(frame) == 2 + size
    elif size < 65536:
        assert frame[1] == 126
        assert int.from_bytes(frame[2:4], "big") == size
    else:
        assert frame[1] == 127
        assert int.from_bytes(frame[2:10], "big") == size


def test_ids_tokens_and_dates():
    assert len(new_id()) == 17
    assert hash_token("abc") == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def test_password_digest_roundtrip():
    record = auth.hash_password("s3cret")
    user = {"services": {"password": record}}
    assert auth.check_password_digest(user, sha256_hex("s3cret"))
    assert auth.check_password_digest(user, sha256_hex("s3cret").upper())
    assert not auth.check_password_digest(user, sha256_hex("other"))
    assert "s3cret" not in json.dumps(record)


def _settings(**over):
    base = {
        "Accounts_TwoFactorAuthentication_Enabled": True,
        "Accounts_TwoFactorAuthentication_RememberFor": 0,
        "Accounts_TwoFactorAuthentication_Enforce_Password_Fallback": True,
    }
    return {**base, **over}


def test_two_factor_password_fallback():
    user = {"createdAt": 0, "services": {"password": auth.hash_password("pw")}}
    token = {"hashedToken": "h"}
    with pytest.raises(ApiError) as required:
        auth.check_two_factor(_settings(), user, token, None, None, "fp")
    assert required.value.body["errorType"] == "totp-required"
    with pytest.raises(ApiError) as invalid:
        auth.check_two_factor(_settings(), user, token, "0" * 64, "password", "fp")
    assert invalid.value.body["errorType"] == "totp-invalid"
    auth.check_two_factor(_settings(), user, token, sha256_hex("pw"), "password", "fp")
    auth.check_two_factor(
        _settings(Accounts_TwoFactorAuthentication_Enabled=False), user, token, None, None, "fp"
    )
    auth.check_two_factor(_settings(), user, {"hashedToken": "p", "bypassTwoFactor": True}, None, None, "fp")


def test_rate_limiter_window():
    limiter = RateLimiter()
    settings = {
        "API_Enable_Rate_Limiter": True,
        "API_Enable_Rate_Limiter_Limit_Calls_Default": 2,
        "API_Enable_Rate_Limiter_Limit_Time_Default": 60000,
    }
    assert limiter.check(settings, "1.2.3.4", "GET/me")["X-RateLimit-Remaining"] == "1"
    assert limiter.check(settings, "1.2.3.4", "GET/me")["X-RateLimit-Remaining"] == "0"
    with pytest.raises(ApiError) as exc:
        limiter.check(settings, "1.2.3.4", "GET/me")
    assert exc.value.status == 429
    assert limiter.check(settings, "1.2.3.4", "GET/other")["X-RateLimit-Remaining"] == "1"
    assert limiter.check(settings, "5.6.7.8", "GET/me")["X-RateLimit-Remaining"] == "1"


def test_setting_conversion():
    assert convert("Accounts_TwoFactorAuthentication_Enabled", "FALSE") is False
    assert convert("API_Default_Count", "7") == 7
    assert convert("Site_Name", "x") == "x"
    with pytest.raises(SettingValueError):
        convert("API_Default_Count", "seven")
    initial, overwrite = setting_overrides({"Site_Name": "a", "OVERWRITE_SETTING_Language": "ru"})
    assert overwrite == {"Language": "ru"}
    assert initial["Site_Name"] == "a"


def test_state_save_is_atomic_and_reloads(tmp_path):
    path = tmp_path / "state.json"
    state = State(path)
    state.users["u1"] = {
        "_id": "u1",
        "username": "ann",
        "emails": [],
        "services": {"resume": {"loginTokens": []}},
    }
    state.save()
    assert not list(tmp_path.glob(".state-*"))  # the temp file was renamed into place
    again = State(path)
    assert again.load()
    assert again.users_by_username == {"ann": "u1"}
    path.write_text("[broken")
    with pytest.raises(StateFileError):
        State(path).load()


def test_secrets_from_files(tmp_path, monkeypatch):
    secret = tmp_path / "pass"
    secret.write_text("from-file\n")
    monkeypatch.delenv("ADMIN_PASS", raising=False)
    monkeypatch.setenv("ADMIN_PASS_FILE", str(secret))
    assert SimSettings().ADMIN_PASS.get_secret_value() == "from-file"
    assert "from-file" not in repr(SimSettings())


def test_messages_per_room_are_bounded():
    state = State(None, max_messages_per_room=100)
    for i in range(250):
        state.add_message({"_id": f"m{i}", "rid": "r"})
    assert 100 <= len(state.messages["r"]) <= 110
    assert state.messages["r"][-1]["_id"] == "m249"
    assert "m0" not in state.message_index
    assert len(state.message_index) == len(state.messages["r"])
