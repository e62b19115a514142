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
            r'audit|word|help|usage|block|unblock)\.[a-z_]+)"',
            source,
        )
    )
    assert used, "no keys found"
    assert used <= set(CATALOGUES["en"])


def test_translate_falls_back_and_never_raises():
    assert translate("ru", "unknown") != translate("en", "unknown")
    assert translate("de", "unknown") == translate("ru", "unknown")
    assert translate("en", "too_long") == CATALOGUES["en"]["too_long"]  # missing parameter: template as is
