"""The page's words in Russian and English, and the choice between them.

The language is `?lang=` (the visible switch, a plain link) when given, else the best of Accept-Language,
else Russian (the company's language).
"""

from __future__ import annotations

from erp.services.users import MIN_PASSWORD_LENGTH

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "html_title": "Активация учётной записи ERP — Photomatrix",
        "brand": "Photomatrix ERP",
        "language_nav": "Язык",
        "switch_label": "English",
        "title": "Активация учётной записи ERP",
        "intro": (
            "Введите логин и код активации из личного сообщения бота и придумайте пароль для входа в ERP."
        ),
        "login": "Логин",
        "login_hint": "Например, ivanov.i — он указан в сообщении бота.",
        "code": "Код активации",
        "code_hint": "Цифры из сообщения бота. Никому их не сообщайте.",
        "label_new": "Новый пароль",
        "rules_title": "Пароль должен:",
        "rule_length": f"быть не короче {MIN_PASSWORD_LENGTH} символов;",
        "rule_letter": "содержать хотя бы одну букву;",
        "rule_digit": "содержать хотя бы одну цифру;",
        "rule_login": "не содержать логин.",
        "label_repeat": "Пароль ещё раз",
        "submit": "Активировать",
        "errors_title": "Не получилось",
        "error_failed": (
            "Логин или код неверны, либо код больше не действует. Проверьте логин и код в сообщении "
            "бота. Если не выходит, попросите администратора выпустить новый код — бот пришлёт его "
            "в личные сообщения."
        ),
        "error_rate_limited": "Слишком много попыток. Попробуйте снова через {minutes} мин.",
        "error_csrf": "Форма устарела или отправлена не с этой страницы. Заполните её ещё раз.",
        "error_unavailable": "Сервис временно недоступен. Попробуйте через несколько минут.",
        "error_required": "Заполните это поле.",
        "error_too_long": "Слишком длинное значение.",
        "error_control": "Недопустимые символы.",
        "error_mismatch": "Пароли не совпадают.",
        "error_weak": "Пароль не подходит: {problems}.",
        "problem_length": f"нужно не меньше {MIN_PASSWORD_LENGTH} символов",
        "problem_letter": "нужна хотя бы одна буква",
        "problem_digit": "нужна хотя бы одна цифра",
        "problem_login": "пароль не должен содержать логин",
        "problem_control": "недопустимые символы",
        "fix_fields": "Исправьте отмеченные поля.",
        "done_html_title": "Учётная запись активирована — Photomatrix",
        "done_title": "Учётная запись активирована",
        "done_text": "Учётная запись «{login}» активна. Войдите в ERP с этим логином и новым паролем.",
        "done_link": "Войти в ERP",
        "done_note": "Код активации больше не нужен. Пароль никому не сообщайте.",
    },
    "en": {
        "html_title": "ERP account activation — Photomatrix",
        "brand": "Photomatrix ERP",
        "language_nav": "Language",
        "switch_label": "Русский",
        "title": "Activate your ERP account",
        "intro": (
            "Enter the login and the activation code from the bot's direct message and choose a password "
            "for the ERP."
        ),
        "login": "Login",
        "login_hint": "For example ivanov.i — it is in the bot's message.",
        "code": "Activation code",
        "code_hint": "The digits from the bot's message. Never share them.",
        "label_new": "New password",
        "rules_title": "The password must:",
        "rule_length": f"be at least {MIN_PASSWORD_LENGTH} characters long;",
        "rule_letter": "contain at least one letter;",
        "rule_digit": "contain at least one digit;",
        "rule_login": "not contain the login.",
        "label_repeat": "Repeat the password",
        "submit": "Activate",
        "errors_title": "That did not work",
        "error_failed": (
            "The login or the code is wrong, or the code is no longer valid. Check both in the bot's "
            "message. If it still fails, ask an administrator to issue a new code — the bot sends it to "
            "you by direct message."
        ),
        "error_rate_limited": "Too many attempts. Try again in {minutes} min.",
        "error_csrf": "The form has expired or was not sent from this page. Please fill it in again.",
        "error_unavailable": "The service is temporarily unavailable. Try again in a few minutes.",
        "error_required": "Fill in this field.",
        "error_too_long": "The value is too long.",
        "error_control": "The value contains characters that are not allowed.",
        "error_mismatch": "The passwords do not match.",
        "error_weak": "The password does not fit: {problems}.",
        "problem_length": f"it needs at least {MIN_PASSWORD_LENGTH} characters",
        "problem_letter": "it needs at least one letter",
        "problem_digit": "it needs at least one digit",
        "problem_login": "it must not contain the login",
        "problem_control": "it contains characters that are not allowed",
        "fix_fields": "Correct the marked fields.",
        "done_html_title": "Account activated — Photomatrix",
        "done_title": "Your account is active",
        "done_text": (
            "The account “{login}” is active. Sign in to the ERP with this login and your new password."
        ),
        "done_link": "Sign in to the ERP",
        "done_note": "The activation code is no longer needed. Never share your password.",
    },
}

# The password rules as erp.services.users.password_problems words them (the one check the API applies
# too), mapped to the page's keys; a test fails when that wording changes without this table.
PASSWORD_PROBLEM_KEYS = {
    f"at least {MIN_PASSWORD_LENGTH} characters": "problem_length",
    "at least one letter": "problem_letter",
    "at least one digit": "problem_digit",
    "must not contain the login": "problem_login",
    "no control characters": "problem_control",
}


def negotiate(requested: str | None, accept_language: str | None) -> str:
    """`requested` (the switch) if it names a supported language, else Accept-Language, else Russian."""
    if requested in LANGUAGES:
        return requested
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for item in (accept_language or "")[:512].split(","):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-", 1)[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if 0.0 < q <= 1.0 and q > best_q:
            best, best_q = primary, q
    return best


def other(lang: str) -> str:
    return "en" if lang == "ru" else "ru"


def password_problem_texts(problems: list[str], lang: str) -> str:
    texts = TEXTS[lang]
    return "; ".join(texts[PASSWORD_PROBLEM_KEYS[p]] if p in PASSWORD_PROBLEM_KEYS else p for p in problems)
