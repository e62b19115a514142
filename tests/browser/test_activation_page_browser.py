"""The activation page in a real browser (Debian's chromium under Playwright) against the real ERP.

Employees are registered through the ERP API, so their codes are real. Each journey types a wrong code,
then the right one; Russian runs with JavaScript disabled. The screenshots in docs/images/ (the user
guide's) are taken here.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser.pagekit import PAGE, PASSWORD, Employee, register, screenshot_path, staff_status
from plugins.erp import ErpServer

pytestmark = pytest.mark.e2e

SECURITY = re.compile(r"Content Security Policy|Refused to|blocked", re.I)
MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1024, "height": 800}
FAILED = {
    "ru": "Логин или код неверны, либо код больше не действует.",
    "en": "The login or the code is wrong, or the code is no longer valid.",
}


def keep_security_message(found: list[str], text: str) -> None:
    if SECURITY.search(text):
        found.append(text)


def open_context(chromium: Any, *, locale: str, javascript: bool, viewport: dict[str, int]) -> Any:
    return chromium.new_context(
        java_script_enabled=javascript, locale=locale, viewport=viewport, device_scale_factor=1
    )


def fill_form(page: Any, labels: dict[str, str], login: str | None, code: str) -> None:
    if login is not None:
        page.get_by_label(labels["login"], exact=True).fill(login)
    page.get_by_label(labels["code"], exact=True).fill(code)
    page.get_by_label(labels["password"], exact=True).fill(PASSWORD)
    page.get_by_label(labels["password2"], exact=True).fill(PASSWORD)


def journey(
    chromium: Any,
    server: ErpServer,
    employee: Employee,
    *,
    lang: str,
    javascript: bool,
    viewport: dict[str, int],
    labels: dict[str, str],
    texts: dict[str, str],
) -> list[str]:
    """Open the page, a wrong code, then the right one; screenshots on the way.

    Returns the console's security messages (CSP violations, blocked loads); an HTTP error status
    (the 400 of the wrong code, the browser's own /favicon.ico) is not one.
    """
    from playwright.sync_api import expect

    context = open_context(chromium, locale=texts["locale"], javascript=javascript, viewport=viewport)
    context.set_default_timeout(20_000)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda message: keep_security_message(errors, message.text))
        response = page.goto(server.base_url + PAGE)
        assert response is not None
        assert response.status == 200
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.get_by_role("heading", level=1)).to_have_text(texts["title"])
        # The stylesheet (same origin, allowed by the CSP) is applied.
        expect(page.locator("main")).to_have_css("max-width", "512px")
        expect(page.get_by_label(labels["login"], exact=True)).to_be_focused()
        # The password rules are visible before anything is sent, and tied to the field.
        rules = page.locator("#password-rules")
        expect(rules).to_be_visible()
        expect(page.get_by_label(labels["password"], exact=True)).to_have_attribute(
            "aria-describedby", "password-rules"
        )
        page.screenshot(path=screenshot_path(f"activate-{lang}.png"), full_page=True)

        fill_form(page, labels, employee.login, employee.wrong_code)
        page.get_by_role("button", name=texts["submit"]).click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(FAILED[lang])
        expect(alert).to_be_focused()  # announced and focused without any script
        expect(page.get_by_label(labels["login"], exact=True)).to_have_value(employee.login)
        assert staff_status(server, employee) == "awaiting_activation"
        page.screenshot(path=screenshot_path(f"activate-error-{lang}.png"), full_page=True)

        fill_form(page, labels, None, employee.code)
        page.get_by_role("button", name=texts["submit"]).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(texts["done"])
        expect(page.locator("#done")).to_contain_text(employee.login)
        expect(page.get_by_role("link", name=texts["sign_in"])).to_have_attribute(
            "href", "https://erp.example/login"
        )
        assert "code" not in page.url
        assert employee.code not in page.url
        page.screenshot(path=screenshot_path(f"activate-done-{lang}.png"), full_page=True)
    finally:
        context.close()
    return errors


RU_LABELS = {
    "login": "Логин",
    "code": "Код активации",
    "password": "Новый пароль",
    "password2": "Пароль ещё раз",
}
EN_LABELS = {
    "login": "Login",
    "code": "Activation code",
    "password": "New password",
    "password2": "Repeat the password",
}
RU_TEXTS = {
    "locale": "ru-RU",
    "title": "Активация учётной записи ERP",
    "submit": "Активировать",
    "done": "Учётная запись активирована",
    "sign_in": "Войти в ERP",
}
EN_TEXTS = {
    "locale": "en-US",
    "title": "Activate your ERP account",
    "submit": "Activate",
    "done": "Your account is active",
    "sign_in": "Sign in to the ERP",
}


def test_russian_without_javascript_wrong_then_right_code(chromium, page_erp):
    employee = register(page_erp, "Иванова Анна Сергеевна", "ivanova-page")
    errors = journey(
        chromium,
        page_erp,
        employee,
        lang="ru",
        javascript=False,
        viewport=MOBILE,
        labels=RU_LABELS,
        texts=RU_TEXTS,
    )
    assert staff_status(page_erp, employee) == "active"
    assert errors == []


def test_english_with_javascript_wrong_then_right_code(chromium, page_erp):
    employee = register(page_erp, "Smith John", "smith-page")
    errors = journey(
        chromium,
        page_erp,
        employee,
        lang="en",
        javascript=True,
        viewport=DESKTOP,
        labels=EN_LABELS,
        texts=EN_TEXTS,
    )
    assert staff_status(page_erp, employee) == "active"
    assert errors == []  # no CSP violation, nothing blocked


def test_the_policy_blocks_what_is_not_from_the_page(chromium, page_erp):
    """The console check above can fail: an inline style injected into the page is refused by the CSP."""
    context = open_context(chromium, locale="en-US", javascript=True, viewport=DESKTOP)
    found: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda message: keep_security_message(found, message.text))
        page.goto(page_erp.base_url + PAGE)
        page.evaluate(
            "() => { const s = document.createElement('style'); s.textContent = 'body{color:red}';"
            " document.head.appendChild(s); }"
        )
        page.wait_for_timeout(500)
        color = page.evaluate("() => getComputedStyle(document.body).color")
    finally:
        context.close()
    assert any("Content Security Policy" in text for text in found), found
    assert color != "rgb(255, 0, 0)"


def test_language_switch_and_field_errors_without_javascript(chromium, page_erp):
    from playwright.sync_api import expect

    context = open_context(chromium, locale="ru-RU", javascript=False, viewport=MOBILE)
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        page.goto(page_erp.base_url + PAGE)
        page.get_by_role("link", name="English").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.get_by_role("heading", level=1)).to_have_text(EN_TEXTS["title"])
        # Nothing typed: the form comes back in English (the switch is carried by the form, not the
        # browser's Russian Accept-Language), each field marked and described, the summary focused.
        page.get_by_role("button", name=EN_TEXTS["submit"]).click()
        alert = page.get_by_role("alert")
        expect(alert).to_be_focused()
        expect(alert).to_contain_text("Correct the marked fields.")
        login = page.get_by_label(EN_LABELS["login"], exact=True)
        expect(login).to_have_attribute("aria-invalid", "true")
        expect(login).to_have_attribute("aria-describedby", "login-hint login-error")
        expect(page.locator("#login-error")).to_have_text("Fill in this field.")
        alert.get_by_role("link", name=EN_LABELS["code"]).click()
        expect(page.get_by_label(EN_LABELS["code"], exact=True)).to_be_focused()
        page.get_by_role("link", name="Русский").click()
        expect(page.locator("html")).to_have_attribute("lang", "ru")
    finally:
        context.close()


def test_missing_csrf_cookie_is_refused_and_loses_nothing(chromium, page_erp):
    from playwright.sync_api import expect

    employee = register(page_erp, "Кузнецов Олег", "kuznetsov-page")
    context = open_context(chromium, locale="ru-RU", javascript=True, viewport=MOBILE)
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        page.goto(page_erp.base_url + PAGE)
        context.clear_cookies()  # as if the cookie had never been set: the token alone is not enough
        fill_form(page, RU_LABELS, employee.login, employee.code)
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.get_by_role("button", name=RU_TEXTS["submit"]).click()
        assert posted.value.status == 403
        expect(page.get_by_role("alert")).to_contain_text("Форма устарела")
        assert staff_status(page_erp, employee) == "awaiting_activation"
        # The refusal set a fresh cookie and token: the same code still works.
        fill_form(page, RU_LABELS, employee.login, employee.code)
        page.get_by_role("button", name=RU_TEXTS["submit"]).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(RU_TEXTS["done"])
    finally:
        context.close()
    assert staff_status(page_erp, employee) == "active"
