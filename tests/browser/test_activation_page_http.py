"""The activation page over plain HTTP (httpx) against the real ERP: headers, cookies, language, CSRF,
the API's uniform failure, rate limits and audit, what is kept on a bad submission, no code in the logs."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from browser.pagekit import PAGE, PASSWORD, csrf_token, register, staff_status
from plugins.erp import ErpServer, start_erp_server, temporary_postgres_database

pytestmark = pytest.mark.integration
CSP_DIRECTIVES = {
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
}


def alert(html: str) -> str:
    """The text of the role="alert" region ('' when there is none)."""
    match = re.search(r'<div class="alert"[^>]*role="alert"[^>]*>(.*?)</div>', html, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip() if match else ""


class Form:
    """A browser-like client that has loaded the page (it holds the cookie and the form's token)."""

    def __init__(self, server: ErpServer, lang: str = "en", **headers: str) -> None:
        self.client = httpx.Client(base_url=server.base_url, timeout=15.0, headers=headers)
        self.lang = lang
        self.token = csrf_token(self.client.get(PAGE, params={"lang": lang}).text)

    def post(self, headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
        data = {"csrf": self.token, "lang": self.lang, **fields}
        response = self.client.post(PAGE, data=data, headers=headers)
        if "csrf" in response.text:
            self.token = csrf_token(response.text)
        return response

    def activate(
        self, login: str, code: str, password: str = PASSWORD, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.post(headers, login=login, code=code, password=password, password2=password)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def form(page_erp: ErpServer) -> Iterator[Form]:
    page = Form(page_erp)
    try:
        yield page
    finally:
        page.close()


def test_page_headers_and_cookie(page_erp):
    response = httpx.get(page_erp.base_url + PAGE, timeout=15)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert {d.strip() for d in response.headers["content-security-policy"].split(";")} == CSP_DIRECTIVES
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("erp_activate=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here: a Secure cookie would never come back
    # Only the page's own stylesheet: no script, no third-party asset.
    assert "<script" not in response.text
    links = re.findall(r'(?:href|src|action)="([^"]+)"', response.text)
    assert links == ["/activate/style.css", "/activate?lang=en", "/activate"]
    css = httpx.get(page_erp.base_url + "/activate/style.css", timeout=15)
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "url(" not in css.text
    assert "@import" not in css.text


def test_cookie_is_secure_behind_the_https_proxy(page_erp):
    # 127.0.0.1 is this server's trusted proxy: its X-Forwarded-Proto says the browser used HTTPS.
    response = httpx.get(page_erp.base_url + PAGE, headers={"X-Forwarded-Proto": "https"}, timeout=15)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-erp_activate=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


@pytest.mark.parametrize(
    ("query", "accept_language", "lang"),
    [
        ("", None, "ru"),
        ("", "en-US,en;q=0.9", "en"),
        ("", "ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("", "de-DE, en;q=0.5, ru;q=0.4", "en"),
        ("", "ru;q=0.3, en;q=0.8", "en"),
        ("", "fr, de", "ru"),
        ("?lang=en", "ru-RU", "en"),
        ("?lang=ru", "en-US", "ru"),
        ("?lang=de", "en-US", "en"),
    ],
)
def test_language_negotiation(page_erp, query, accept_language, lang):
    headers = {"Accept-Language": accept_language} if accept_language else {}
    response = httpx.get(f"{page_erp.base_url}{PAGE}{query}", headers=headers, timeout=15)
    assert response.status_code == 200
    assert f'<html lang="{lang}">' in response.text
    assert response.headers["content-language"] == lang
    other = "ru" if lang == "en" else "en"
    assert f'href="/activate?lang={other}"' in response.text


def refused(response: httpx.Response) -> bool:
    """403 and the form again, empty, with the expired-form alert (in English, or in Russian for a body
    that is not a form at all, which carries no language)."""
    text = alert(response.text)
    return response.status_code == 403 and ("The form has expired" in text or "Форма устарела" in text)


def test_csrf_is_required(page_erp, form):
    employee = register(page_erp, "Орлова Вера", "orlova-csrf")
    fields = {"login": employee.login, "code": employee.code, "password": PASSWORD, "password2": PASSWORD}
    cookie = form.client.cookies["erp_activate"]
    with httpx.Client(base_url=page_erp.base_url, timeout=15) as bare:
        no_cookie = bare.post(PAGE, data={"csrf": form.token, "lang": "en", **fields})
        bare.cookies.set("erp_activate", cookie)
        no_token = bare.post(PAGE, data={"lang": "en", **fields})
        wrong_token = bare.post(PAGE, data={"csrf": form.token[:-2] + "xx", "lang": "en", **fields})
        bare.cookies.set("erp_activate", "A" * 43)  # a well-formed cookie the token was not made for
        other_cookie = bare.post(PAGE, data={"csrf": form.token, "lang": "en", **fields})
    cross_site = form.client.post(
        PAGE, data={"csrf": form.token, "lang": "en", **fields}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    other_origin = form.client.post(
        PAGE, data={"csrf": form.token, "lang": "en", **fields}, headers={"Origin": "https://evil.example"}
    )
    as_json = form.client.post(PAGE, json={"csrf": form.token, **fields})
    for response in (no_cookie, no_token, wrong_token, other_cookie, cross_site, other_origin, as_json):
        assert refused(response), (response.status_code, response.text[:300])
        assert employee.code not in response.text  # a refused form is not echoed back
    assert staff_status(page_erp, employee) == "awaiting_activation"
    form.token = csrf_token(as_json.text)  # a refusal hands out a fresh cookie and token
    same_origin = form.client.post(
        PAGE,
        data={"csrf": form.token, "lang": "en", **fields},
        headers={"Origin": page_erp.base_url, "Sec-Fetch-Site": "same-origin"},
    )
    assert same_origin.status_code == 200, alert(same_origin.text)
    assert staff_status(page_erp, employee) == "active"


def test_every_failure_is_one_answer(page_erp, form):
    """Unknown login, wrong code and an account activated already look the same (no enumeration)."""
    done = register(page_erp, "Соколов Иван", "sokolov-uniform")
    waiting = register(page_erp, "Павлова Нина", "pavlova-uniform")
    assert form.activate(done.login, done.code).status_code == 200
    answers = [
        form.activate("nobody.x", waiting.code),
        form.activate(waiting.login, waiting.wrong_code),
        form.activate(done.login, done.code),
        form.activate(done.login, done.wrong_code),
    ]
    assert {r.status_code for r in answers} == {400}
    assert len({alert(r.text) for r in answers}) == 1
    assert alert(answers[0].text).startswith("That did not work The login or the code is wrong")
    assert staff_status(page_erp, waiting) == "awaiting_activation"
    assert form.activate(waiting.login, waiting.code).status_code == 200


def test_the_answer_is_in_the_form_language(page_erp):
    page = Form(page_erp, lang="ru", **{"Accept-Language": "en-US"})
    try:
        response = page.activate("nobody.x", "123456")
    finally:
        page.close()
    assert response.status_code == 400
    assert '<html lang="ru">' in response.text
    assert alert(response.text).startswith("Не получилось Логин или код неверны")


def test_bad_input_gets_field_errors_and_keeps_what_was_typed(page_erp, form):
    employee = register(page_erp, "Зайцева Ольга", "zaytseva-fields")
    missing = form.post(login=employee.login, code="", password="", password2="")
    typed = {"login": employee.login, "code": employee.code}
    mismatch = form.post(**typed, password=PASSWORD, password2=PASSWORD + "x")
    weak = form.activate(employee.login, employee.code, f"{employee.login}-2024")
    short = form.activate(employee.login, employee.code, "abc1")
    assert missing.status_code == 422
    assert 'id="code-error"' in missing.text
    assert 'id="password-error"' in missing.text
    assert 'id="login-error"' not in missing.text
    assert f'value="{employee.login}"' in missing.text
    assert mismatch.status_code == 422
    assert "The passwords do not match." in mismatch.text
    assert f'value="{employee.code}"' in mismatch.text
    assert PASSWORD not in mismatch.text  # passwords are never sent back
    assert weak.status_code == 422
    assert "The password does not fit: it must not contain the login." in weak.text
    assert short.status_code == 422
    assert "it needs at least 10 characters" in short.text
    # None of these spent anything: the code still works, typed with the spaces people paste.
    spaced = f"{employee.code[:3]} {employee.code[3:]}"
    assert form.activate(f" {employee.login.upper()} ", spaced).status_code == 200
    assert staff_status(page_erp, employee) == "active"


def test_markup_in_input_is_escaped(form):
    response = form.post(login='"><script>x</script>', code="1", password="", password2="")
    assert response.status_code == 422
    assert "<script>" not in response.text
    assert "&#34;&gt;&lt;script&gt;" in response.text


def test_attempts_are_audited_without_the_code_and_no_code_reaches_the_log(page_erp, form):
    employee = register(page_erp, "Лебедев Андрей", "lebedev-audit")
    form.activate(employee.login, employee.wrong_code)
    assert form.activate(employee.login, employee.code).status_code == 200
    with page_erp.client(page_erp.admin_key) as admin:
        events = admin.get("/api/bot/v1/audit", params={"limit": 50}).json()["items"]
    target = f"login:{employee.login}"
    mine = [e for e in events if e["action"] == "account.activate" and e["target"] == target]
    assert [e["outcome"] for e in mine][:1] == ["ok"]
    assert len(mine) >= 2
    assert all(employee.code not in str(e) for e in events)
    log = page_erp.process.log_path.read_text(encoding="utf-8", errors="replace")
    assert f"login:{employee.login}" in log  # the attempts were logged ...
    assert employee.code not in log  # ... and the code was not


def test_the_api_per_login_limit_applies_to_the_page_and_never_locks_out(page_erp, form):
    """Wrong codes for one login from five different addresses (this server trusts 127.0.0.1 as its
    proxy, so X-Forwarded-For names the source): the next attempt on that login waits, from anywhere;
    another login is not affected; after the short wait the employee's own code works."""
    target = register(page_erp, "Григорьев Лев", "grigoriev-backoff")
    other = register(page_erp, "Тихонова Зоя", "tikhonova-backoff")
    source = {"X-Forwarded-For": "198.51.100.77"}
    wrong = [
        form.activate(target.login, target.wrong_code, headers={"X-Forwarded-For": f"198.51.100.{n}"})
        for n in range(1, 6)
    ]
    waiting = form.activate(target.login, target.code, headers=source)
    unaffected = form.activate(other.login, other.code, headers=source)
    time.sleep(float(waiting.headers.get("retry-after", "1")) + 0.2)
    later = form.activate(target.login, target.code, headers=source)
    assert [r.status_code for r in wrong] == [400] * 5
    assert waiting.status_code == 429
    assert alert(waiting.text).startswith("That did not work Too many attempts.")
    assert unaffected.status_code == 200
    assert later.status_code == 200, alert(later.text)


@pytest.fixture(scope="module")
def limited_erp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpServer]:
    server = start_erp_server(
        tmp_path_factory.mktemp("erp-page-limited"),
        settings={"ERP_RATE_LIMIT_ACTIVATION_PER_MINUTE": "3"},
        name="erp-page-limited",
    )
    try:
        yield server
    finally:
        server.stop()


def test_the_api_rate_limit_applies_to_the_page(limited_erp):
    employee = register(limited_erp, "Морозов Павел", "morozov-limit")
    page = Form(limited_erp, lang="ru")
    try:
        answers = [page.activate(employee.login, employee.wrong_code).status_code for _ in range(3)]
        limited = page.activate(employee.login, employee.code)
    finally:
        page.close()
    # The page and the API draw on one limiter: the API is limited now as well.
    api = httpx.post(
        limited_erp.base_url + "/api/v1/account/activate",
        json={"login": employee.login, "code": employee.code, "password": PASSWORD},
        timeout=15,
    )
    assert answers == [400, 400, 400]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert alert(limited.text).startswith("Не получилось Слишком много попыток. Попробуйте снова через")
    assert api.status_code == 429
    assert staff_status(limited_erp, employee) == "awaiting_activation"


def test_database_outage_is_a_clear_page_not_a_stack_trace(tmp_path):
    """The database goes away between loading the form and sending it: a 503 page in the person's
    language, and the code works again once the database is back (nothing was spent)."""
    base = os.environ.get("ERP_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail("ERP_TEST_POSTGRES_URL is not set (source .ci/services.d/10-postgresql.sh)")
        pytest.skip("ERP_TEST_POSTGRES_URL is not set")
    with temporary_postgres_database(base) as url:
        server = start_erp_server(tmp_path, database_url=url, name="erp-page-outage")
        try:
            employee = register(server, "Никитина Ева", "nikitina-outage")
            page = Form(server, lang="en")
            plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
            admin_url, _, name = plain.rpartition("/")
            with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                )
            try:
                down = page.activate(employee.login, employee.code)
            finally:
                with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
                    conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            back = page.activate(employee.login, employee.code)
            page.close()
        finally:
            server.stop()
    assert down.status_code == 503, down.text[:500]
    assert alert(down.text).startswith("That did not work The service is temporarily unavailable")
    assert back.status_code == 200, alert(back.text)
