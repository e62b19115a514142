"""Logins from names: Cyrillic transliterated with the ICAO Doc 9303 table (as in Russian passports)."""

from __future__ import annotations

import re

CYRILLIC_TO_LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "ie", "ы": "y", "ь": "", "э": "e", "ю": "iu", "я": "ia",
}  # fmt: skip

MAX_LOGIN_BASE = 48


def transliterate(text: str) -> str:
    return "".join(CYRILLIC_TO_LATIN.get(ch, ch) for ch in text.lower())


def _ascii_word(word: str) -> str:
    return re.sub(r"[^a-z0-9-]", "", transliterate(word)).strip("-")


def login_base(full_name: str) -> str:
    """`Иванов Иван Иванович` → `ivanov.i`: surname, a dot, the given name's initial (Russian order)."""
    words = [w for w in (_ascii_word(part) for part in full_name.split()) if w]
    if not words:
        return "user"
    surname = words[0][:MAX_LOGIN_BASE]
    return f"{surname}.{words[1][0]}" if len(words) > 1 else surname


def login_candidates(full_name: str, limit: int = 1000):  # type: ignore[no-untyped-def]
    """The base, then base2, base3, ... for collisions."""
    base = login_base(full_name)
    yield base
    for n in range(2, limit):
        yield f"{base}{n}"
