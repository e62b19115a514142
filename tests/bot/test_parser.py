"""The command parser: known commands in both languages, argument checks, and totality (hypothesis)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.parser import ALIASES, Command, parse, strip_mention

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "name", "args", "lang"),
    [
        ("register", "register", {}, "en"),
        ("Регистрация", "register", {}, "ru"),
        ("@erpbot register", "register", {}, "en"),
        ("@erpbot: статус", "status", {}, "ru"),
        ("status @ivan.petrov", "status", {"username": "ivan.petrov"}, "en"),
        ("approve 17", "approve", {"staff_id": 17}, "en"),
        ("одобрить #5", "approve", {"staff_id": 5}, "ru"),
        ("отклонить 3 не наш сотрудник", "reject", {"staff_id": 3, "reason": "не наш сотрудник"}, "ru"),
        ("reject 3", "reject", {"staff_id": 3, "reason": None}, "en"),
        ("block @ivan", "block", {"username": "ivan"}, "en"),
        ("unblock ivan", "unblock", {"username": "ivan"}, "en"),
        ("position ENG access off", "position", {"code": "ENG", "erp_access": False}, "en"),
        ("должность ENG доступ вкл", "position", {"code": "ENG", "erp_access": True}, "ru"),
        ("reissue @ivan", "reissue", {"username": "ivan"}, "en"),
        ("audit", "audit", {"limit": 10}, "en"),
        ("аудит 25", "audit", {"limit": 25}, "ru"),
        ("  HELP  ", "help", {}, "en"),
    ],
)
def test_known_commands(text, name, args, lang):
    command = parse(text, "erpbot")
    assert (command.name, command.args, command.lang, command.error) == (name, args, lang, None)


@pytest.mark.parametrize(
    "text",
    [
        "approve",
        "approve x",
        "approve 0",
        "approve -3",
        "approve ١٢",
        "reject",
        "block",
        "block @a b",
        "position ENG access maybe",
        "position ENG on",
        "audit 0",
        "audit 1000",
        "register now",
        "status a b",
    ],
)
def test_bad_arguments_give_usage(text):
    command = parse(text, "erpbot")
    assert command.error == f"usage.{command.name}"


def test_free_text_is_not_a_command():
    assert parse("Иванов Иван Иванович", "erpbot") == Command(name="", text="Иванов Иван Иванович")


def test_mentions():
    assert strip_mention("@erpbot help", "erpbot") == ("help", True)
    assert strip_mention("hey @ERPBOT, help", "erpbot") == ("hey @ERPBOT, help", True)
    assert strip_mention("@erpbotx help", "erpbot") == ("@erpbotx help", False)
    assert strip_mention("mail a@erpbot.ru", "erpbot")[1] is False


def test_every_alias_parses_to_its_command():
    for name, words in ALIASES.items():
        for word in words:
            assert parse(word).name == name


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300), st.sampled_from([None, "erpbot", "bot.name"]))
def test_parser_is_total(text, bot_username):
    command = parse(text, bot_username)
    assert isinstance(command, Command)
    assert command.error is None or command.error.startswith("usage.")
    assert command.name == "" or command.name in ALIASES


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted({w for ws in ALIASES.values() for w in ws})), st.text(max_size=80))
def test_commands_with_any_arguments_never_crash(word, rest):
    command = parse(f"{word} {rest}")
    assert command.name in ALIASES
    if command.error is None and command.name in ("approve", "reject"):
        assert 0 < command.args["staff_id"] < 10**12
