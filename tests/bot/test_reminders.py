"""Reminders with a fake chat, a fake ERP and an injected clock: thresholds, once per code, repeats,
the working calendar, failures retried, ERP outages skipped, one sender across replicas."""

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from plugins.bot import FakeChat, FakeErp

from bot import metrics
from bot.erp_client import ErpClient
from bot.reminders import Reminders
from bot.store import SqliteStore
from bot.work_calendar import WorkCalendar

pytestmark = pytest.mark.unit

# Friday 2026-11-27 12:00 in Moscow (09:00 UTC): working time.
FRIDAY_NOON = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CALENDAR = WorkCalendar.parse("09:00-18:00", "mon-fri", "Europe/Moscow", [date(2026, 12, 1)])
HOUR = 3600.0


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def brief(staff_id, username, *, status, created, expires=None):
    return {
        "id": staff_id,
        "full_name": f"Сотрудник {staff_id}",
        "rocketchat_username": username,
        "position_code": "DIR",
        "status": status,
        "created_at": iso(created),
        "activation_expires_at": iso(expires) if expires else None,
    }


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, hours: float) -> None:
        self.now += hours * HOUR


def make(store, erp, chat, clock, **kwargs):
    return Reminders(
        store=store,
        erp=erp,
        chat=chat,
        calendar=CALENDAR,
        admins_channel="erp-admins",
        language="en",
        clock=clock,
        **kwargs,
    )


@pytest.fixture
async def env(tmp_path):
    store = SqliteStore(str(tmp_path / "state.sqlite3"))
    await store.open()
    chat, erp, clock = FakeChat(), FakeErp(), Clock(FRIDAY_NOON)
    yield make(store, erp, chat, clock), chat, erp, store, clock
    await store.close()


async def test_digest_lists_only_requests_older_than_the_threshold_and_repeats_after_the_interval(env):
    reminders, chat, erp, _, clock = env
    erp.waiting["pending_approval"] = [
        brief(1, "old", status="pending_approval", created=FRIDAY_NOON - timedelta(hours=30)),
        brief(2, "new", status="pending_approval", created=FRIDAY_NOON - timedelta(hours=2)),
    ]
    before = metrics.REMINDERS.labels("pending_digest")._value.get()
    assert await reminders.run_once() == {"pending_digest": 1, "activation_expiry": 0}
    (digest,) = chat.texts("#erp-admins")
    assert "#1 Сотрудник 1 (@old)" in digest
    assert "waiting 1 d 6 h" in digest
    assert "@new" not in digest
    assert metrics.REMINDERS.labels("pending_digest")._value.get() == before + 1
    clock.advance(1)
    assert (await reminders.run_once())["pending_digest"] == 0  # within the repeat interval
    clock.advance(22)  # Saturday 11:00: the interval is over, but it is the weekend
    assert (await reminders.run_once())["pending_digest"] == 0
    clock.advance(24 * 2 - 2)  # Monday 09:00 in Moscow
    assert (await reminders.run_once())["pending_digest"] == 1
    assert len(chat.texts("#erp-admins")) == 2
    # Threshold crossed later: request 2 is now old enough too.
    assert "@new" in chat.texts("#erp-admins")[-1]


async def test_no_digest_when_nothing_is_overdue(env):
    reminders, chat, erp, _, _ = env
    erp.waiting["pending_approval"] = [
        brief(2, "new", status="pending_approval", created=FRIDAY_NOON - timedelta(hours=23))
    ]
    assert await reminders.run_once() == {"pending_digest": 0, "activation_expiry": 0}
    assert chat.sent == []


async def test_expiry_reminder_once_per_code_and_again_for_a_reissued_code(env):
    reminders, chat, erp, store, clock = env
    expires = FRIDAY_NOON + timedelta(hours=5)
    erp.waiting["awaiting_activation"] = [
        brief(5, "ivan", status="awaiting_activation", created=FRIDAY_NOON, expires=expires),
        brief(
            6,
            "far",
            status="awaiting_activation",
            created=FRIDAY_NOON,
            expires=FRIDAY_NOON + timedelta(days=3),
        ),
        brief(
            7,
            "gone",
            status="awaiting_activation",
            created=FRIDAY_NOON,
            expires=FRIDAY_NOON - timedelta(hours=1),
        ),
        brief(8, "nocode", status="awaiting_activation", created=FRIDAY_NOON),
    ]
    assert (await reminders.run_once())["activation_expiry"] == 1
    (text,) = chat.texts("dm-ivan")
    assert "27 November, 17:00 MSK" in text  # 14:00 UTC in the company's zone
    assert "ask an administrator" in text
    assert "reissue" not in text  # an admin-only command is no advice for an employee
    assert chat.texts("dm-far") == chat.texts("dm-gone") == chat.texts("dm-nocode") == []
    clock.advance(1)
    assert (await reminders.run_once())["activation_expiry"] == 0
    # A restart (a new instance on the same store) remembers it too.
    again = make(store, erp, chat, clock)
    assert (await again.run_once())["activation_expiry"] == 0
    # The admin reissues the code: a new expiry is a new reminder.
    erp.waiting["awaiting_activation"][0]["activation_expires_at"] = iso(FRIDAY_NOON + timedelta(hours=20))
    assert (await reminders.run_once())["activation_expiry"] == 1
    assert len(chat.texts("dm-ivan")) == 2
    entries = await store.list_audit(10)
    assert [e["outcome"] for e in entries if e["command"] == "reminder"] == ["activation_expiry"] * 2


async def test_off_hours_reminders_wait_for_the_next_working_period(env):
    reminders, _chat, erp, _, clock = env
    clock.advance(-4)  # 08:00 in Moscow
    erp.waiting["awaiting_activation"] = [
        brief(
            5,
            "ivan",
            status="awaiting_activation",
            created=FRIDAY_NOON,
            expires=FRIDAY_NOON + timedelta(hours=3),
        )
    ]
    assert await reminders.run_once() == {"pending_digest": 0, "activation_expiry": 0}
    assert erp.report_calls == []  # not even asked
    clock.advance(1)  # 09:00
    assert (await reminders.run_once())["activation_expiry"] == 1


async def test_holiday_waits(env):
    reminders, _chat, erp, _, clock = env
    clock.advance(24 * 4)  # Tuesday 2026-12-01: a holiday in this calendar
    erp.waiting["pending_approval"] = [
        brief(1, "old", status="pending_approval", created=FRIDAY_NOON - timedelta(hours=30))
    ]
    assert (await reminders.run_once())["pending_digest"] == 0
    clock.advance(24)
    assert (await reminders.run_once())["pending_digest"] == 1


class FlakyChat(FakeChat):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def send(self, room_id, text):
        if self.failures:
            self.failures -= 1
            raise httpx.ConnectError("down")
        await super().send(room_id, text)

    async def send_to_channel(self, channel, text):
        if self.failures:
            self.failures -= 1
            raise httpx.ConnectError("down")
        await super().send_to_channel(channel, text)


async def test_a_failed_send_is_retried_next_round(env):
    _, _, erp, store, clock = env
    chat = FlakyChat(failures=2)
    reminders = make(store, erp, chat, clock)
    erp.waiting["pending_approval"] = [
        brief(1, "old", status="pending_approval", created=FRIDAY_NOON - timedelta(hours=30))
    ]
    erp.waiting["awaiting_activation"] = [
        brief(
            5,
            "ivan",
            status="awaiting_activation",
            created=FRIDAY_NOON,
            expires=FRIDAY_NOON + timedelta(hours=3),
        )
    ]
    failures = metrics.REMINDER_FAILURES.labels("pending_digest")._value.get()
    assert await reminders.run_once() == {"pending_digest": 0, "activation_expiry": 0}
    assert metrics.REMINDER_FAILURES.labels("pending_digest")._value.get() == failures + 1
    clock.advance(0.1)
    assert await reminders.run_once() == {"pending_digest": 1, "activation_expiry": 1}
    assert await reminders.run_once() == {"pending_digest": 0, "activation_expiry": 0}


async def test_an_erp_outage_skips_the_round(env):
    reminders, _chat, erp, _, _ = env
    erp.waiting["pending_approval"] = [
        brief(1, "old", status="pending_approval", created=FRIDAY_NOON - timedelta(hours=30))
    ]
    erp.down = True
    assert await reminders.run_once() == {"pending_digest": 0, "activation_expiry": 0}
    erp.down = False
    assert (await reminders.run_once())["pending_digest"] == 1


async def test_the_breaker_opens_and_rounds_stop_calling_the_erp(tmp_path):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    erp = ErpClient(
        "http://erp.test/api/bot/v1",
        "k-123",
        retries=0,
        breaker_threshold=2,
        breaker_reset_seconds=60,
        transport=httpx.MockTransport(handler),
    )
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    reminders = make(store, erp, FakeChat(), Clock(FRIDAY_NOON))
    for _ in range(5):
        assert await reminders.run_once() == {"pending_digest": 0, "activation_expiry": 0}
    assert len(calls) == 2  # then the breaker answers without the network
    assert calls[0].url.path == "/api/bot/v1/reports/registrations"
    assert datetime.fromisoformat(calls[0].url.params["since"]).tzinfo is not None
    await erp.aclose()
    await store.close()


async def test_two_replicas_on_one_store_send_once(tmp_path):
    path = str(tmp_path / "shared.sqlite3")
    first, second = SqliteStore(path), SqliteStore(path)
    await first.open()
    await second.open()
    erp, chat, clock = FakeErp(), FakeChat(), Clock(FRIDAY_NOON)
    erp.waiting["pending_approval"] = [
        brief(1, "old", status="pending_approval", created=FRIDAY_NOON - timedelta(hours=30))
    ]
    erp.waiting["awaiting_activation"] = [
        brief(
            5,
            "ivan",
            status="awaiting_activation",
            created=FRIDAY_NOON,
            expires=FRIDAY_NOON + timedelta(hours=3),
        )
    ]
    a, b = make(first, erp, chat, clock), make(second, erp, chat, clock)
    results = [await a.run_once(), await b.run_once(), await b.run_once(), await a.run_once()]
    assert sum(r["pending_digest"] for r in results) == 1
    assert sum(r["activation_expiry"] for r in results) == 1
    assert len(chat.sent) == 2
    await first.close()
    await second.close()
