"""Pieces of the activation page on their own: language choice, the words, the CSRF token, HTTPS."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from erp.security.network import parse_networks
from erp.services.users import password_problems
from erp.web import csrf, i18n
from erp.web.routes import _is_https

pytestmark = pytest.mark.unit
SECRET = b"x" * 32


@pytest.mark.parametrize(
    ("requested", "header", "expected"),
    [
        (None, None, "ru"),
        (None, "", "ru"),
        (None, "en", "en"),
        (None, "EN-gb", "en"),
        (None, "en;q=0, ru;q=0.1", "ru"),
        (None, "en;q=0", "ru"),
        (None, "en;q=abc, ru;q=0.2", "ru"),
        (None, "en;q=2", "ru"),
        (None, "*;q=1, en;q=0.1", "en"),
        (None, "ru, en", "ru"),
        (None, "en, ru", "en"),
        ("en", "ru", "en"),
        ("xx", "en", "en"),
        ("", None, "ru"),
    ],
)
def test_negotiate(requested, header, expected):
    assert i18n.negotiate(requested, header) == expected


def test_both_languages_have_every_word():
    assert set(i18n.TEXTS["ru"]) == set(i18n.TEXTS["en"])
    for lang, texts in i18n.TEXTS.items():
        assert all(value.strip() for value in texts.values()), lang


@pytest.mark.parametrize(
    "password", ["short1", "onlyletterslong", "1234567890123", "ivanov.i-123456", "bad\x01password123", ""]
)
def test_every_password_problem_has_words_in_both_languages(password):
    """The page checks with the API's own function; a new or reworded rule fails here first."""
    problems = password_problems(password, "ivanov.i")
    assert problems
    for problem in problems:
        assert problem in i18n.PASSWORD_PROBLEM_KEYS, problem
    for lang in i18n.LANGUAGES:
        words = i18n.password_problem_texts(problems, lang)
        texts = [i18n.TEXTS[lang][i18n.PASSWORD_PROBLEM_KEYS[problem]] for problem in problems]
        assert words == "; ".join(texts)


def test_csrf_token_is_bound_to_the_cookie_and_the_secret():
    value = csrf.new_value()
    token = csrf.token_for(SECRET, value)
    assert csrf.usable(value)
    assert csrf.token_matches(SECRET, value, token)
    assert not csrf.token_matches(SECRET, csrf.new_value(), token)
    assert not csrf.token_matches(b"y" * 32, value, token)
    assert not csrf.token_matches(SECRET, value, None)
    assert not csrf.token_matches(SECRET, None, token)
    assert not csrf.token_matches(SECRET, "short", csrf.token_for(SECRET, "short"))
    assert not csrf.token_matches(SECRET, value, token + "A" * 64)


@pytest.mark.parametrize(
    ("origin", "site", "host", "expected"),
    [
        (None, None, "erp.example", True),
        (None, "same-origin", "erp.example", True),
        (None, "none", "erp.example", True),
        (None, "same-site", "erp.example", False),
        (None, "cross-site", "erp.example", False),
        ("https://erp.example", "same-origin", "erp.example", True),
        ("https://ERP.example", None, "erp.example", True),
        ("https://erp.example:8443", None, "erp.example", False),
        ("https://evil.example", None, "erp.example", False),
        ("null", None, "erp.example", False),
        ("https://erp.example", None, None, False),
    ],
)
def test_same_origin(origin, site, host, expected):
    assert csrf.same_origin(origin, site, host) is expected


def request(peer: str, proto: str | None, scheme: str = "http") -> Request:
    headers = [(b"x-forwarded-proto", proto.encode())] if proto else []
    scope = {"type": "http", "scheme": scheme, "client": (peer, 1234), "headers": headers, "path": "/"}
    return Request(scope)


def test_https_is_believed_only_from_a_trusted_proxy():
    rt = SimpleNamespace(trusted_proxies=parse_networks(["10.0.0.5/32"]))
    assert _is_https(request("10.0.0.5", "https"), rt)  # type: ignore[arg-type]
    assert not _is_https(request("10.0.0.6", "https"), rt)  # type: ignore[arg-type]
    assert not _is_https(request("10.0.0.5", "http"), rt)  # type: ignore[arg-type]
    assert not _is_https(request("10.0.0.5", None), rt)  # type: ignore[arg-type]
    assert _is_https(request("10.0.0.6", None, scheme="https"), rt)  # type: ignore[arg-type]
