"""The command parser: declared commands in both languages, what people actually type, argument checks,
and totality (hypothesis). Also: every command is one declared unit with help in both languages."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.handlers import COMMANDS
from bot.core.parser import Command, intent_of, parse, strip_mention, text_language
from bot.i18n import CATALOGUES, LANGUAGES

pytestmark = pytest.mark.unit
WORDS = sorted(COMMANDS.words)


def p(text, bot="erpbot"):
    return parse(text, COMMANDS, bot)


@pytest.mark.parametrize(
    ("text", "name", "args", "lang"),
    [
        ("register", "register", {}, "en"),
        ("Регистрация", "register", {}, "ru"),
        ("Регистрация!", "register", {}, "ru"),
        ("Register please", "register", {}, "en"),
        ("помощь?", "help", {}, "ru"),
        ("@erpbot register", "register", {}, "en"),
        ("@erpbot: статус", "status", {}, "ru"),
        ("status @ivan.petrov", "status", {"username": "ivan.petrov"}, "en"),
        ("approve 17", "approve", {"staff_id": 17}, "en"),
        ("одобрить #5", "approve", {"staff_id": 5}, "ru"),
        ("Одобрить №5.", "approve", {"staff_id": 5}, "ru"),
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
    command = p(text)
    assert (command.name, command.args, command.lang, command.usage_error) == (name, args, lang, False)


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
        "status a b",
    ],
)
def test_bad_arguments_give_usage(text):
    assert p(text).usage_error


@pytest.mark.parametrize(
    ("text", "intent", "lang"),
    [
        ("Привет", "greeting", "ru"),
        ("привет!", "greeting", "ru"),
        ("Hello", "greeting", "en"),
        ("хочу зарегистрироваться", "register", "ru"),
        ("Как мне зарегистрироваться?", "register", "ru"),
        ("I want to register", "register", "en"),
        ("how do I sign up", "register", "en"),
        ("нужна помощь", "help", "ru"),
        ("what is my status?", "status", "en"),
        ("Иванов Иван Иванович", None, "ru"),
        ("12345", None, None),
    ],
)
def test_free_text_intents_in_the_language_it_is_written_in(text, intent, lang):
    command = p(text)
    assert command.spec is None
    assert (command.intent, command.lang) == (intent, lang)
    assert intent_of(text) == intent
    assert text_language(text) == lang


def test_mentions():
    assert strip_mention("@erpbot help", "erpbot") == ("help", True)
    assert strip_mention("hey @ERPBOT, help", "erpbot") == ("hey @ERPBOT, help", True)
    assert strip_mention("@erpbotx help", "erpbot") == ("@erpbotx help", False)
    assert strip_mention("mail a@erpbot.ru", "erpbot")[1] is False


def test_every_command_is_declared_once_with_words_and_help_in_every_language():
    names = {spec.name for spec in COMMANDS}
    assert {"register", "status", "help", "cancel", "approve", "reject", "block", "unblock"} <= names
    for spec in COMMANDS:
        assert set(spec.words) == set(LANGUAGES)
        for lang in LANGUAGES:
            assert spec.words[lang], (spec.name, lang)
            for word in spec.words[lang]:
                assert p(word).spec is spec
            for key in (f"cmd.{spec.name}.args", f"cmd.{spec.name}.help"):
                assert key in CATALOGUES[lang], (key, lang)
        assert callable(spec.handler)


def test_help_lists_every_command_in_its_language():
    for lang in LANGUAGES:
        user, admin = COMMANDS.help_text(lang, admin=False), COMMANDS.help_text(lang, admin=True)
        for spec in COMMANDS:
            assert f"`{spec.word(lang)}" in admin, (spec.name, lang)
            assert (f"`{spec.word(lang)}" in user) is (not spec.admin_only), (spec.name, lang)


def test_command_words_quoted_in_messages_are_declared_words_of_that_language():
    """A message that tells people to send `регистрация` names a real command of its language."""
    fallbacks = {"назад", "back", "да", "yes", "нет", "no", "-", "почта", "email"}
    for lang in LANGUAGES:
        for key, text in CATALOGUES[lang].items():
            if key.startswith(("usage", "cmd.", "help.", "task.", "alerts.", "report.", "positions.")):
                continue
            for quoted in re.findall(r"`([^`]*)`", text):
                word = quoted.split(" ")[0]
                if word in fallbacks or word.startswith(("@", "{")):
                    continue
                found = COMMANDS.lookup(word)
                assert found is not None, (lang, key, word)
                assert found[1] == lang, (lang, key, word)


def test_a_word_cannot_be_declared_twice():
    from bot.core.commands import CommandSpec, Registry

    async def handler(bot, ctx):
        return None

    registry = Registry()
    registry.add(CommandSpec("a", {"en": ("go",), "ru": ("иди",)}, handler))
    with pytest.raises(ValueError, match="taken"):
        registry.add(CommandSpec("b", {"en": ("go",), "ru": ("пойди",)}, handler))
    with pytest.raises(ValueError, match="words for"):
        registry.add(CommandSpec("c", {"en": ("run",)}, handler))


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300), st.sampled_from([None, "erpbot", "bot.name"]))
def test_parser_is_total(text, bot_username):
    command = p(text, bot_username)
    assert isinstance(command, Command)
    assert command.spec is None or command.spec.name in COMMANDS.commands


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(WORDS), st.text(max_size=80))
def test_commands_with_any_arguments_never_crash(word, rest):
    command = p(f"{word} {rest}")
    assert command.spec is not None
    if not command.usage_error and command.name in ("approve", "reject"):
        assert 0 < command.args["staff_id"] < 10**12
