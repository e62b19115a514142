"""Unit tests of the ERP's small pure pieces: logins, addresses, limiters, passwords, settings."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time

import pytest
from pydantic import ValidationError

from erp.schemas import StaffCreate
from erp.security import tokens
from erp.security.network import client_ip, parse_networks
from erp.security.ratelimit import FailureWindow, TokenBuckets
from erp.security.secrets_hashing import (
    activation_code_hash,
    activation_code_matches,
    hash_password,
    new_activation_code,
    verify_password,
)
from erp.services.transliteration import login_base, login_candidates, transliterate
from erp.services.users import password_problems
from erp.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "login"),
    [
        ("Иванов Иван Иванович", "ivanov.i"),
        ("Щукина Юлия", "shchukina.iu"),
        ("Жуков Хасан", "zhukov.kh"),
        ("Цой Виктор", "tsoi.v"),
        ("Подъячев Ёжик", "podieiachev.e"),
        ("Smith John", "smith.j"),
        ("Римский-Корсаков Николай", "rimskii-korsakov.n"),
        ("О'Коннор Шон", "okonnor.sh"),
        ("Мама", "mama"),
    ],
)
def test_login_is_transliterated_surname_and_initial(name: str, login: str) -> None:
    assert login_base(name) == login


def test_login_collisions_get_numeric_suffixes() -> None:
    candidates = login_candidates("Иванов Иван")
    assert [next(candidates) for _ in range(3)] == ["ivanov.i", "ivanov.i2", "ivanov.i3"]


def test_transliteration_covers_the_whole_alphabet() -> None:
    alphabet = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    assert transliterate(alphabet).isascii()


def test_forwarded_for_is_trusted_only_from_a_proxy() -> None:
    proxies = parse_networks(["10.0.0.0/8"])
    assert str(client_ip("10.0.0.5", "203.0.113.9", proxies)) == "203.0.113.9"
    assert str(client_ip("198.51.100.7", "203.0.113.9", proxies)) == "198.51.100.7"
    # A client may prepend anything: only the hop the proxy saw counts.
    assert str(client_ip("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.9", proxies)) == "203.0.113.9"
    assert str(client_ip("10.0.0.5", "garbage", proxies)) == "10.0.0.5"


def test_token_bucket_refuses_after_the_burst_and_names_the_wait() -> None:
    buckets = TokenBuckets(rate_per_second=1.0, burst=3)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("k")
    assert 0 < wait <= 1.0
    assert buckets.take("other") == 0.0


def test_failure_window_blocks_at_the_limit_and_forgets_old_events() -> None:
    window = FailureWindow(limit=2, window_seconds=0.2)
    window.add("ip")
    assert window.retry_after("ip") == 0.0
    window.add("ip")
    assert window.retry_after("ip") > 0
    time.sleep(0.25)
    assert window.retry_after("ip") == 0.0


def test_activation_codes_are_digits_and_hashed_with_the_secret() -> None:
    code = new_activation_code(6)
    assert len(code) == 6
    assert code.isdigit()
    stored = activation_code_hash(b"s1", 7, code)
    assert code not in stored
    assert activation_code_matches(b"s1", 7, code, stored)
    assert not activation_code_matches(b"s2", 7, code, stored)
    assert not activation_code_matches(b"s1", 8, code, stored)


def test_password_hash_round_trip() -> None:
    stored = hash_password("Correct horse 42")
    assert verify_password("Correct horse 42", stored)
    assert not verify_password("Correct horse 43", stored)


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("Short1", False),
        ("longenoughbutnodigits", False),
        ("1234567890123", False),
        ("ivanov.i-pass12", False),
        ("Strong-pass-2024", True),
    ],
)
def test_password_strength(password: str, ok: bool) -> None:
    assert (password_problems(password, "ivanov.i") == []) is ok


def test_production_refuses_the_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="ERP_SECRET_KEY"):
        Settings(environment="production", _env_file=None)
    Settings(environment="production", secret_key="x" * 40, _env_file=None)


def test_secret_is_read_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "secret"
    path.write_text("y" * 40 + "\n")
    assert Settings(secret_key_file=path, _env_file=None).secret_key.get_secret_value() == "y" * 40


def test_alert_webhook_url_is_read_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "url"
    path.write_text("https://chat.example/hooks/abc/SECRETTOKEN\n")
    settings = Settings(alert_webhook_url_file=path, _env_file=None)
    assert settings.alert_webhook_url is not None
    assert settings.alert_webhook_url.get_secret_value() == "https://chat.example/hooks/abc/SECRETTOKEN"
    path.write_text("\n")  # an empty file: no webhook, not an empty URL
    assert Settings(alert_webhook_url_file=path, _env_file=None).alert_webhook_url is None


def test_an_unreadable_secret_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nope"
    with pytest.raises(ValidationError, match=r"ERP_ALERT_WEBHOOK_URL_FILE: cannot read .*nope"):
        Settings(alert_webhook_url_file=missing, _env_file=None)
    with pytest.raises(ValidationError, match="ERP_SECRET_KEY_FILE: cannot read"):
        Settings(secret_key_file=missing, _env_file=None)


def test_networks_are_parsed_from_a_comma_list() -> None:
    settings = Settings(allowed_networks="10.0.0.0/8, 192.168.1.7", _env_file=None)
    assert settings.allowed_networks == ["10.0.0.0/8", "192.168.1.7/32"]
    with pytest.raises(ValidationError):
        Settings(allowed_networks="not-a-network", _env_file=None)


def test_jwt_round_trip_and_tampering() -> None:
    token = tokens.issue(3, "bot", frozenset({"bot"}), b"k" * 32, 900)
    assert tokens.verify(token, b"k" * 32) == 3
    assert tokens.verify(token, b"x" * 32) is None
    assert tokens.verify(token + "x", b"k" * 32) is None


def test_staff_model_normalises_email_and_rejects_mixed_garbage() -> None:
    body = {
        "full_name": "Анна Смирнова",
        "email": "Anna@Example.COM",
        "position_code": "ENG",
        "rocketchat_user_id": "abc",
        "rocketchat_username": "anna",
    }
    assert StaffCreate.model_validate(body).email == "anna@example.com"
    with pytest.raises(ValidationError):
        StaffCreate.model_validate({**body, "full_name": "Анна\u0000Смирнова"})
    assert ipaddress.ip_address("127.0.0.1")


def test_alerting_counters_exist_at_zero_before_the_first_event() -> None:
    """Prometheus' increase() cannot see the step that creates a series: known labels start at 0."""
    script = "import erp.metrics, prometheus_client; print(prometheus_client.generate_latest().decode())"
    command = [sys.executable, "-c", script]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    for series in (
        'erp_auth_failures_total{reason="unauthorized"} 0.0',
        'erp_auth_failures_total{reason="scope_denied"} 0.0',
        'erp_rate_limited_total{limit="auth_failures"} 0.0',
        'erp_registrations_total{outcome="created"} 0.0',
    ):
        assert series in out.stdout
