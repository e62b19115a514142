"""The `report` admin command with a fake chat and a fake ERP: rights, arguments, the summary."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from plugins.bot import FakeChat, FakeErp

from bot.core.handlers import COMMANDS
from bot.core.parser import parse
from bot.core.ports import Identity, IncomingMessage
from bot.core.router import Router
from bot.store import SqliteStore
from bot.work_calendar import parse_timezone

pytestmark = pytest.mark.unit
ids = itertools.count()
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
async def env(tmp_path):
    store = SqliteStore(str(tmp_path / "state.sqlite3"))
    await store.open()
    chat, erp = FakeChat(admins={"admin1"}), FakeErp()
    router = Router(
        store=store,
        erp=erp,
        chat=chat,
        identity=Identity("bot-id", "erpbot"),
        language="ru",
        timezone=parse_timezone("Europe/Moscow"),
        clock=NOW.timestamp,
    )
    yield router, chat, erp, store
    await store.close()


def dm(text, user="admin1", username="root"):
    return IncomingMessage(
        message_id=f"m{next(ids)}",
        room_id=f"dm-{username}",
        room_type="d",
        text=text,
        user_id=user,
        username=username,
    )


def waiting(staff_id, status, **extra):
    return {
        "id": staff_id,
        "full_name": f"Сотрудник {staff_id}",
        "rocketchat_username": f"user{staff_id}",
        "position_code": "DIR",
        "status": status,
        "created_at": "2026-11-25T09:00:00Z",
        "activation_expires_at": None,
        **extra,
    }


@pytest.mark.parametrize(
    ("text", "days", "lang"),
    [("report", 7, "en"), ("отчет 30", 30, "ru"), ("Отчёт 366", 366, "ru"), ("/report 1", 1, "en")],
)
def test_report_arguments(text, days, lang):
    command = parse(text, COMMANDS)
    assert (command.name, command.args, command.lang, command.usage_error) == (
        "report",
        {"days": days},
        lang,
        False,
    )


@pytest.mark.parametrize(
    "text", ["report 0", "report 367", "report week", "отчёт -1", "report 7 8", "report ３"]
)
def test_bad_report_arguments_give_the_usage(text):
    assert parse(text, COMMANDS).usage_error


async def test_report_summary(env):
    router, chat, erp, store = env
    for staff_id, (status, code) in enumerate(
        [("active", "ENG"), ("active", "ENG"), ("pending_approval", "DIR"), ("no_erp_access", "CLN")], start=1
    ):
        position = {"code": code, "name": {"ENG": "Инженер", "DIR": "Директор", "CLN": "Уборщик"}[code]}
        erp.staff[staff_id] = {"id": staff_id, "status": status, "position": position}
    erp.waiting["pending_approval"] = [waiting(i, "pending_approval") for i in range(10, 23)]
    erp.waiting["awaiting_activation"] = [
        waiting(30, "awaiting_activation", activation_expires_at="2026-11-28T06:00:00Z"),
        waiting(31, "awaiting_activation"),
    ]
    assert await router.handle(dm("отчёт 30")) == "ok"
    text = chat.texts("dm-root")[-1]
    since, until = erp.report_calls[-1]
    assert until == NOW
    assert since == NOW - timedelta(days=30)
    assert "Зарегистрировано: 4 · активировано: 2" in text
    assert "ждут одобрения 1 · ждут активации 0 · активны 2 · отклонены 0 · заблокированы 0" in text
    assert "Инженер (`ENG`) 2 · Уборщик (`CLN`) 1 · Директор (`DIR`) 1" in text
    assert "*Ждут одобрения (13):*" in text
    assert "• №10 Сотрудник 10 (@user10), `DIR`, ждёт 2 д 0 ч" in text
    assert "№19 " in text
    assert "№20 " not in text
    assert "… и ещё 3" in text
    assert "код действует до 28 ноября, 09:00 МСК" in text  # the company's zone
    assert "действующего кода нет: `перевыпустить @user31`" in text
    entry = (await store.list_audit(1))[0]
    assert (entry["command"], entry["outcome"], entry["detail"]) == ("report", "ok", "days 30")


async def test_report_in_english_with_empty_lists(env):
    router, chat, _, _ = env
    assert await router.handle(dm("report")) == "ok"
    text = chat.texts("dm-root")[-1]
    assert "Registered: 0" in text
    assert "By position: —" in text
    assert text.count("— none") == 2


async def test_report_is_for_admins_only_and_bad_input_is_explained(env):
    router, chat, erp, store = env
    assert await router.handle(dm("report", "u1", "ivan")) == "denied"
    assert "Only administrators" in chat.texts("dm-ivan")[-1]
    assert erp.report_calls == []
    assert await router.handle(dm("отчёт неделя")) == "usage"
    assert "от 1 до 366" in chat.texts("dm-root")[-1]
    assert await router.handle(dm("report 400")) == "usage"
    assert "1 to 366" in chat.texts("dm-root")[-1]
    erp.down = True
    assert await router.handle(dm("report")) == "erp_unavailable"
    assert (await store.list_audit(1))[0]["outcome"] == "erp_unavailable"


async def test_help_shows_report_to_admins(env):
    router, chat, _, _ = env
    await router.handle(dm("help"))
    assert "`report [days]`" in chat.texts("dm-root")[-1]
    await router.handle(dm("помощь", "u1", "ivan"))
    assert "отчёт" not in chat.texts("dm-ivan")[-1]
