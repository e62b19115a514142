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
    parts = [part for part in full_name.split() if _ascii_word(part)]
    if not parts:
        return "user"
    surname = _ascii_word(parts[0])[:MAX_LOGIN_BASE]
    if len(parts) == 1:
        return surname
    # The initial is the whole transliteration of the first letter: Юлия → "iu", Хасан → "kh".
    given = parts[1].lstrip("'’-")
    return f"{surname}.{_ascii_word(given[0]) or _ascii_word(given)[0]}"


def login_candidates(full_name: str, limit: int = 1000):  # type: ignore[no-untyped-def]
    """The base, then base2, base3, ... for collisions."""
    base = login_base(full_name)
    yield base
    for n in range(2, limit):
        yield f"{base}{n}"
