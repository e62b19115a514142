"""The registration dialog state machine."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.dialog import Dialog, advance, normalise_phone, validate_email, validate_full_name

pytestmark = pytest.mark.unit

POSITIONS = [
    {"code": "ENG", "name": "Инженер", "department": "Производство"},
    {"code": "ACC", "name": "Бухгалтер", "department": ""},
]


def new_dialog() -> Dialog:
    return Dialog(user_id="u1", username="ivan", room_id="r1", lang="ru", expires_at=0.0, positions=POSITIONS)


def test_happy_path_reaches_submit():
    dialog = new_dialog()
    assert advance(dialog, "Иванов Иван Иванович").replies[-1][0] == "dialog.ask_position"
    assert advance(dialog, "1").replies[-1][0] == "dialog.ask_email"
    assert dialog.position_code == "ENG"
    assert advance(dialog, "Ivanov@Example.com").replies[-1][0] == "dialog.ask_phone"
    step = advance(dialog, "+7 (999) 123-45-67")
    assert step.replies[-1][0] == "dialog.summary"
    assert step.replies[-1][1]["phone"] == "+79991234567"
    assert advance(dialog, "да").action == "submit"
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
        ("name", "x", "dialog.invalid_name"),
        ("name", "Robert'); DROP TABLE", "dialog.invalid_name"),
        ("position", "7", "dialog.invalid_position"),
        ("position", "Директор", "dialog.invalid_position"),
        ("email", "not-an-email", "dialog.invalid_email"),
        ("phone", "12345", "dialog.invalid_phone"),
        ("confirm", "может быть", "dialog.invalid_confirm"),
    ],
)
def test_invalid_answers_keep_the_step_and_ask_again(step, answer, error):
    dialog = new_dialog()
    dialog.step = step
    result = advance(dialog, answer)
    assert dialog.step == step
    assert result.action is None
    assert result.replies[0][0] == error
    assert result.replies[1][0].startswith("dialog.")


def test_phone_can_be_skipped_and_position_chosen_by_code():
    dialog = new_dialog()
    dialog.step = "position"
    advance(dialog, "acc")
    assert dialog.position_code == "ACC"
    dialog.step = "phone"
    advance(dialog, "-")
    assert dialog.phone is None
    assert dialog.step == "confirm"
    assert "phone" not in dialog.staff_body()


def test_no_at_confirm_cancels():
    dialog = new_dialog()
    dialog.step = "confirm"
    assert advance(dialog, "нет").action == "cancel"


def test_roundtrip_and_stable_idempotency_key():
    dialog = new_dialog()
    advance(dialog, "Анна-Мария О'Нил")
    copy = Dialog.from_dict(dialog.to_dict())
    assert copy == dialog
    assert copy.idempotency_key == dialog.idempotency_key
    assert new_dialog().idempotency_key != dialog.idempotency_key


@pytest.mark.parametrize(
    ("raw", "phone"), [("+79991234567", "+79991234567"), ("8 999 123 45 67", "+79991234567"), ("+1", None)]
)
def test_phone(raw, phone):
    assert normalise_phone(raw) == phone


def test_validators():
    assert validate_full_name("  Ivan   Petrov ") == "Ivan Petrov"
    assert validate_full_name("A" * 151) is None
    assert validate_email("a.b+c@sub.example.org") == "a.b+c@sub.example.org"
    assert validate_email("a@b") is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=8))
def test_any_answers_never_crash(answers):
    dialog = new_dialog()
    for answer in answers:
        step = advance(dialog, answer)
        assert step.action in (None, "submit", "cancel")
        if step.action:
            break
