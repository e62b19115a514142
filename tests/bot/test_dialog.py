"""The registration conversation: states, fallbacks (back), editing from the summary, the ERP's checks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.dialog import (
    ConversationHandler,
    Dialog,
    check_email,
    check_full_name,
    normalise_phone,
    validate_email,
    validate_full_name,
)
from bot.i18n import translate_name

pytestmark = pytest.mark.unit

POSITIONS = [
    {"code": "ENG", "name": "Инженер", "department": "Производство", "erp_access": True},
    {"code": "ACC", "name": "Бухгалтер", "department": "", "erp_access": True, "requires_approval": True},
    {"code": "CLN", "name": "Уборщик", "department": "", "erp_access": False},
]
conversation = ConversationHandler(names=translate_name)


def advance(dialog, text):
    return conversation.answer(dialog, text)


def new_dialog(lang="ru") -> Dialog:
    return Dialog(user_id="u1", username="ivan", room_id="r1", lang=lang, expires_at=0.0, positions=POSITIONS)


def keys(step):
    return [key for key, _ in step.replies]


def test_happy_path_reaches_submit():
    dialog = new_dialog()
    assert advance(dialog, "Иванов Иван Иванович").replies[-1][0] == "dialog.ask_position"
    step = advance(dialog, "1")
    assert keys(step) == ["dialog.position_chosen", "dialog.ask_email"]
    assert step.replies[0][1] == {"position": "Инженер"}  # the chosen position is echoed
    assert advance(dialog, "Ivanov@Example.com").replies[-1][0] == "dialog.ask_phone"
    step = advance(dialog, "+7 (999) 123-45-67")
    assert step.replies[-1][0] == "dialog.summary"
    assert step.replies[-1][1]["phone"] == "+79991234567"
    assert step.replies[-1][1]["surname"] == "Иванов"
    assert advance(dialog, "Да!").action == "submit"
    assert dialog.staff_body() == {
        "full_name": "Иванов Иван Иванович",
        "email": "ivanov@example.com",
        "phone": "+79991234567",
        "position_code": "ENG",
        "rocketchat_user_id": "u1",
        "rocketchat_username": "ivan",
    }


@pytest.mark.parametrize(
    ("step", "answer", "error"),
    [
        ("name", "x", "name.reason.letters"),
        ("name", "Алёна", "name.reason.two_words"),
        ("name", "ok", "name.reason.two_words"),
        ("name", "Иванов И", "name.reason.two_words"),
        ("name", "Ivanov Иван", "name.reason.mixed"),
        ("name", "Иvanов Иван", "name.reason.mixed"),
        ("name", "Алёна Иванова", "name.reason.order"),
        ("name", "Robert'); DROP TABLE", "name.reason.letters"),
        ("position", "7", "dialog.invalid_position"),
        ("position", "Директор", "dialog.invalid_position"),
        ("email", "not-an-email", "email.reason.format"),
        ("email", "ivan@photomatrix.con", "email.reason.typo"),
        ("email", "ivan@photomatrix.local", "email.reason.reserved"),
        ("phone", "12345", "dialog.invalid_phone"),
        ("phone", "+7 912 345 67 8", "dialog.invalid_phone"),
        ("confirm", "может быть", "dialog.invalid_confirm"),
    ],
)
def test_invalid_answers_keep_the_step_and_say_why(step, answer, error):
    dialog = new_dialog()
    dialog.step = step
    result = advance(dialog, answer)
    assert dialog.step == step
    assert result.action is None
    assert result.replies[0][0] == error


def test_name_order_suggestion_and_capitalisation():
    dialog = new_dialog()
    step = advance(dialog, "алёна иванова")
    assert step.replies[0] == ("name.reason.order", {"suggestion": "Иванова Алёна"})
    advance(dialog, "иванова алёна")
    assert dialog.full_name == "Иванова Алёна"
    assert check_full_name("o'brien JOHN")[0] == "O'Brien John"
    assert check_full_name("McDonald Anna")[0] == "McDonald Anna"


def test_phone_can_be_skipped_and_position_chosen_by_name_in_the_language():
    dialog = new_dialog("en")
    dialog.step = "position"
    advance(dialog, "Accountant")
    assert dialog.position_code == "ACC"
    dialog.step = "phone"
    advance(dialog, "skip")
    assert dialog.phone is None
    assert dialog.step == "confirm"
    assert "phone" not in dialog.staff_body()


def test_back_returns_one_question():
    dialog = new_dialog()
    assert keys(advance(dialog, "назад")) == ["dialog.back_at_start", "dialog.ask_name"]
    advance(dialog, "Иванов Иван")
    assert advance(dialog, "Назад.").replies[-1][0] == "dialog.ask_name"
    assert dialog.step == "name"


@pytest.mark.parametrize(
    ("answer", "field"),
    [("3", "email"), ("email", "email"), ("wait, the email is wrong", "email"), ("почта", "email"),
     ("1", "name"), ("телефон неверный", "phone"), ("2", "position")],
)  # fmt: skip
def test_a_field_is_changed_from_the_summary_and_the_rest_kept(answer, field):
    dialog = new_dialog()
    for text in ("Иванов Иван", "1", "ivanov@example.com", "-"):
        advance(dialog, text)
    assert dialog.step == "confirm"
    advance(dialog, answer)
    assert dialog.step == field
    replacement = {"email": "i.ivanov@example.com", "name": "Петров Пётр", "phone": "+79991234567"}
    step = advance(dialog, replacement.get(field, "2"))
    assert dialog.step == "confirm", step
    assert dialog.full_name in ("Иванов Иван", "Петров Пётр")
    assert dialog.email in ("ivanov@example.com", "i.ivanov@example.com")


def test_no_at_the_summary_asks_what_to_change_and_loses_nothing():
    dialog = new_dialog()
    for text in ("Иванов Иван", "1", "ivanov@example.com", "-"):
        advance(dialog, text)
    step = advance(dialog, "нет")
    assert step.action is None
    assert keys(step) == ["dialog.ask_what_to_change"]
    assert dialog.email == "ivanov@example.com"


def test_positions_are_listed_in_the_language_with_what_they_mean():
    dialog = new_dialog("en")
    dialog.step = "position"
    from bot.core.dialog import prompt

    key, params = prompt(dialog, conversation)
    assert key == "dialog.ask_position"
    lines = params["positions"].splitlines()
    assert lines[0] == "1. Engineer (Production)"
    assert lines[1] == "2. Accountant — approved by an administrator first"
    assert lines[2] == "3. Cleaner — no ERP account"
    step = advance(dialog, "3")
    assert keys(step) == ["dialog.position_chosen", "dialog.position_no_access", "dialog.ask_email_contact"]


def test_roundtrip_and_stable_idempotency_key():
    dialog = new_dialog()
    advance(dialog, "О'Нил Анна-Мария")
    assert dialog.full_name == "О'Нил Анна-Мария"
    copy = Dialog.from_dict(dialog.to_dict())
    assert copy == dialog
    assert copy.idempotency_key == dialog.idempotency_key
    assert new_dialog().idempotency_key != dialog.idempotency_key


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("+79991234567", "+79991234567"),
        ("8 999 123 45 67", "+79991234567"),
        ("+7 912 345 67 8", None),  # 10 digits: a Russian number needs 11
        ("+7 912 345 67 890", None),
        ("+44 20 7946 0018", "+442079460018"),
        ("+1", None),
    ],
)
def test_phone(raw, phone):
    assert normalise_phone(raw) == phone


def test_validators_match_the_erp():
    """The ERP's own models (erp/schemas.py) accept every name and address the bot accepts."""
    from pydantic import TypeAdapter, ValidationError

    from erp.schemas import Email, PersonName, Phone

    names, emails, phones = TypeAdapter(PersonName), TypeAdapter(Email), TypeAdapter(Phone)
    for raw in ("  Ivan   Petrov ", "О'Нил Анна-Мария", "Петров-Водкин Кузьма Сергеевич", "Smith John"):
        accepted = validate_full_name(raw)
        assert accepted is not None
        assert names.validate_python(accepted) == accepted
    assert validate_full_name("A" * 151) is None
    for raw in ("a.b+c@sub.example.org", "Ivan@Photomatrix.RU"):
        accepted = validate_email(raw)
        assert accepted == emails.validate_python(accepted)
    for raw in ("a@b", "a@localhost", "a@b.local", "ivan@mail.con"):
        assert validate_email(raw) is None
    with pytest.raises(ValidationError):
        emails.validate_python("a@b.local")  # the ERP refuses it too: the bot says so first
    assert phones.validate_python(normalise_phone("+7 999 123-45-67"))
    assert check_email("a@b.local")[2] == {"domain": "b.local"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=8))
def test_any_answers_never_crash(answers):
    dialog = new_dialog()
    for answer in answers:
        step = advance(dialog, answer)
        assert step.action in (None, "submit")
        if step.action:
            break
