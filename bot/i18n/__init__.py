"""Message catalogues (ru, en). Every key exists in both with the same placeholders (a unit test checks)."""

from __future__ import annotations

from typing import Any

from bot.i18n import en, ru

CATALOGUES: dict[str, dict[str, str]] = {"ru": ru.MESSAGES, "en": en.MESSAGES}
NAMES: dict[str, dict[str, str]] = {"ru": ru.NAMES, "en": en.NAMES}
LANGUAGES = tuple(CATALOGUES)
# Store key (+ Rocket.Chat username) of the language a person registered in: later messages use it.
PERSON_LANG_KEY = "router.lang."


def translate(lang: str, key: str, **params: Any) -> str:
    catalogue = CATALOGUES.get(lang, CATALOGUES["ru"])
    template = catalogue.get(key) or CATALOGUES["en"].get(key) or key
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        # A missing parameter must not crash a reply; the unit test keeps this from happening.
        return template


def translate_name(lang: str, text: str) -> str:
    """A position's or department's name (the ERP's are Russian) in `lang`; unknown names unchanged."""
    return NAMES.get(lang, {}).get(text, text)
