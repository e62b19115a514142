"""Both catalogues have the same keys and the same placeholders in each message."""

import string

import pytest

from bot.i18n import CATALOGUES, translate

pytestmark = pytest.mark.unit


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_same_keys():
    assert set(CATALOGUES["ru"]) == set(CATALOGUES["en"])


@pytest.mark.parametrize("key", sorted(CATALOGUES["en"]))
def test_same_placeholders(key):
    assert placeholders(CATALOGUES["ru"][key]) == placeholders(CATALOGUES["en"][key])


def test_every_key_used_by_the_code_exists():
    import pathlib
    import re

    source = "\n".join(p.read_text() for p in pathlib.Path("bot").rglob("*.py") if "i18n" not in p.parts)
    used = set(
        re.findall(
            r'"((?:dialog|result|code|status|register|approval|admins|staff|positions|position|'
            r"audit|word|help|usage|block|unblock|name|email|field|state|contact|month|zone|greeting)"
            r'\.[a-z_.]+)"',
            source,
        )
    )
    assert used, "no keys found"
    assert used <= set(CATALOGUES["en"])


def test_translate_falls_back_and_never_raises():
    assert translate("ru", "unknown") != translate("en", "unknown")
    assert translate("de", "unknown") == translate("ru", "unknown")
    assert translate("en", "too_long") == CATALOGUES["en"]["too_long"]  # missing parameter: template as is


def test_every_state_status_and_month_has_words_in_both_languages():
    from bot.core.report import STATUSES

    for lang in ("ru", "en"):
        for status in STATUSES:
            for key in (f"state.{status}", f"state.hint.{status}", f"status.{status}"):
                assert key in CATALOGUES[lang], (lang, key)
        for month in range(1, 13):
            assert f"month.{month}" in CATALOGUES[lang]


def test_natural_times_in_the_company_zone():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from bot.core.report import format_time

    moment, now = datetime(2026, 12, 4, 23, 22, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    msk = ZoneInfo("Europe/Moscow")
    assert format_time(moment, msk, "ru", now) == "5 декабря, 02:22 МСК"
    assert format_time(moment, msk, "en", now) == "5 December, 02:22 MSK"
    assert format_time(moment, msk, "ru", datetime(2025, 1, 1, tzinfo=UTC)) == "5 декабря 2026, 02:22 МСК"
    assert format_time(moment, ZoneInfo("Asia/Yekaterinburg"), "en", now) == "5 December, 04:22 UTC+05"
    assert format_time(None, msk, "ru") == "?"
