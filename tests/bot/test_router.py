"""The router with a fake chat and a fake ERP: commands, dialogs, admin rights, dedupe, limits."""

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plugins.bot import FakeChat, FakeErp

from bot.core.ports import Identity, IncomingMessage
from bot.core.router import Router
from bot.erp_client import ErpError
from bot.store import SqliteStore

pytestmark = pytest.mark.unit
ids = itertools.count()


@pytest.fixture
async def env(tmp_path):
    store = SqliteStore(str(tmp_path / "state.sqlite3"))
    await store.open()
    chat, erp = FakeChat(admins={"admin1"}, bots={"other-bot"}), FakeErp()
    now = [1000.0]
    router = Router(
        store=store,
        erp=erp,
        chat=chat,
        identity=Identity("bot-id", "erpbot"),
        language="ru",
        rate_limit_per_minute=30,
        clock=lambda: now[0],
    )
    yield router, chat, erp, store, now
    await store.close()


def dm(text, user="u1", username="ivan", **kw):
    return IncomingMessage(
        message_id=f"m{next(ids)}",
        room_id=f"dm-{username}",
        room_type="d",
        text=text,
        user_id=user,
        username=username,
        **kw,
    )


async def register(router, answers, user="u1", username="ivan"):
    outcomes = [await router.handle(dm("регистрация", user, username))]
    for answer in answers:
        outcomes.append(await router.handle(dm(answer, user, username)))
    return outcomes


async def test_full_registration_sends_code_by_dm(env):
    router, chat, erp, _, _ = env
    outcomes = await register(router, ["Иванов Иван Иванович", "1", "ivanov@example.com", "-", "да"])
    assert outcomes == ["started", "step_position", "step_email", "step_phone", "step_confirm", "created"]
    assert "483920" in chat.texts("dm-ivan")[-1]
    assert erp.creates == 1
    assert await router.open_dialog("u1") is None


async def test_approval_path_and_outcome_dm(env):
    router, chat, erp, _, _ = env
    await register(router, ["Петров Пётр", "2", "petrov@example.com", "+79990000000", "yes"])
    assert any("одобрить 1" in t for t in chat.texts("#erp-admins"))
    assert erp.staff[1]["status"] == "pending_approval"
    assert await router.handle(dm("approve 1", "u2", "boss")) == "denied"
    assert await router.handle(dm("approve 1", "admin1", "root")) == "approved"
    assert "483920" in chat.texts("dm-ivan")[-1]
    assert all("483920" not in t for t in chat.texts("dm-root"))
    assert await router.handle(dm("approve 1", "admin1", "root")) == "invalid_state"


async def test_no_erp_access_and_already_registered(env):
    router, chat, _, _, _ = env
    await register(router, ["Сидоров Сидор", "3", "s@example.com", "-", "да"])
    assert "без учётной записи ERP" in chat.texts("dm-ivan")[-1]
    assert await router.handle(dm("register")) == "already_registered"
    assert await router.handle(dm("status")) == "ok"


async def test_erp_down_at_confirm_keeps_the_dialog_and_retry_creates_one_record(env):
    router, _chat, erp, _, _ = env
    await register(router, ["Иванов Иван", "1", "i@example.com", "-"])
    erp.down = True
    assert await router.handle(dm("да")) == "erp_unavailable"
    assert await router.handle(dm("да")) == "erp_unavailable"
    erp.down = False
    assert await router.handle(dm("да")) == "created"
    assert erp.creates == 1


async def test_cancel_expiry_and_invalid_answers(env):
    router, chat, _, store, now = env
    await router.handle(dm("register"))
    assert await router.handle(dm("x")) == "invalid"
    assert "2 to 150" in chat.texts("dm-ivan")[-1]  # the dialog speaks the language it was started in
    assert await router.handle(dm("cancel")) == "cancelled"
    await router.handle(dm("register"))
    now[0] += 901
    assert await router.expire_dialogs() == 1
    assert "register" in chat.texts("dm-ivan")[-1]
    assert await store.get_dialog("u1") is None


async def test_dedupe_edits_own_and_channel_without_mention(env):
    router, chat, _, _, _ = env
    msg = dm("status")
    assert await router.handle(msg) == "not_registered"
    assert await router.handle(msg) is None  # the same id again (an edit or reaction re-sends it)
    assert await router.handle(dm("status", edited=True)) is None
    assert await router.handle(dm("status", user="bot-id", username="erpbot")) is None
    assert await router.handle(dm("status", user="other-bot", username="notifier")) is None
    channel = IncomingMessage(
        message_id="c1", room_id="general", room_type="c", text="status", user_id="u1", username="ivan"
    )
    assert await router.handle(channel) is None
    mention = IncomingMessage(
        message_id="c2",
        room_id="general",
        room_type="c",
        text="@erpbot register",
        user_id="u1",
        username="ivan",
    )
    assert await router.handle(mention) == "started"
    assert "direct messages" in chat.texts("general")[-1]


async def test_admin_commands(env):
    router, chat, erp, store, _ = env
    await register(router, ["Иванов Иван", "1", "i@example.com", "-", "да"])
    admin = lambda text: dm(text, "admin1", "root")  # noqa: E731
    assert await router.handle(admin("status @ivan")) == "ok"
    assert await router.handle(admin("block @ivan")) == "blocked"
    assert erp.staff[1]["status"] == "blocked"
    assert await router.handle(admin("unblock @ivan")) == "unblocked"
    assert await router.handle(admin("reissue @ivan")) == "reissued"
    assert "483920" in chat.texts("dm-ivan")[-1]
    assert all("483920" not in t for t in chat.texts("dm-root"))
    assert await router.handle(admin("positions")) == "ok"
    assert "`ENG`" in chat.texts("dm-root")[-1]
    assert await router.handle(admin("position ENG access off")) == "updated"
    assert await router.handle(admin("position NOPE access off")) == "not_found"
    assert await router.handle(admin("block @nobody")) == "not_found"
    assert await router.handle(dm("block @ivan", "u9", "mallory")) == "denied"
    assert await router.handle(admin("audit 3")) == "ok"
    assert "mallory" in chat.texts("dm-root")[-1]
    entries = await store.list_audit(50)
    assert any(e["outcome"] == "denied" and e["username"] == "mallory" for e in entries)


async def test_help_depends_on_role(env):
    router, chat, _, _, _ = env
    await router.handle(dm("помощь"))
    assert "одобрить" not in chat.texts("dm-ivan")[-1]
    await router.handle(dm("помощь", "admin1", "root"))
    assert "одобрить" in chat.texts("dm-root")[-1]


async def test_rate_limit_and_length_limit(env):
    router, chat, _, _, _ = env
    assert await router.handle(dm("x" * 501)) == "too_long"
    outcomes = [await router.handle(dm("status")) for _ in range(35)]
    assert outcomes.count("rate_limited") == 5
    # Nothing is dropped silently: every limited command is answered with the wait...
    assert sum("too fast" in t for t in chat.texts("dm-ivan")) == 5
    # ...up to a second limit's worth; a flood beyond it is counted and logged, not answered.
    outcomes = [await router.handle(dm("status")) for _ in range(40)]
    assert outcomes.count("rate_limited") == 40
    assert sum("too fast" in t for t in chat.texts("dm-ivan")) == 30


async def test_dialog_answers_are_not_commands_for_the_rate_limit(env):
    router, _chat, erp, _, _now = env
    for _ in range(28):
        await router.handle(dm("help"))
    outcomes = await register(router, ["Иванов Иван", "1", "i@example.com", "-", "Да"])
    assert outcomes[-1] == "created"  # the "Да" after the limit is an answer, not a dropped command
    assert "rate_limited" not in outcomes
    assert erp.creates == 1


async def test_restart_resumes_dialog(env, tmp_path):
    router, chat, erp, store, now = env
    await register(router, ["Иванов Иван", "1"])
    fresh = Router(
        store=store, erp=erp, chat=chat, identity=Identity("bot-id", "erpbot"), clock=lambda: now[0]
    )
    assert await fresh.handle(dm("i@example.com")) == "step_phone"


async def test_a_field_refused_by_the_erp_is_asked_again_with_a_new_key(env):
    router, chat, erp, _, _ = env
    await register(router, ["Иванов Иван", "1", "i@example.com", "-"])
    erp.refuse_next = ErpError(
        422,
        "validation_error",
        body={"code": "validation_error", "errors": [{"loc": ["body", "email"], "msg": "bad"}]},
    )
    assert await router.handle(dm("да")) == "refused_field"
    assert "почты" in chat.texts("dm-ivan")[-1]
    assert await router.handle(dm("ivan@example.org")) == "step_confirm"  # the rest is kept
    assert await router.handle(dm("да")) == "created"
    assert erp.keys_seen[0] != erp.keys_seen[1]
    assert erp.staff[1]["email"] == "ivan@example.org"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=120),
            st.sampled_from(
                [
                    "register",
                    "регистрация",
                    "да",
                    "yes",
                    "1",
                    "cancel",
                    "status",
                    "-",
                    "approve 1",
                    "Ivan Petrov",
                    "a@example.com",
                    "+79991234567",
                    "audit 3",
                    "position ENG access on",
                ]
            ),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_no_message_sequence_crashes_a_command(texts):
    async def run():
        store = SqliteStore(":memory:")
        await store.open()
        router = Router(
            store=store, erp=FakeErp(), chat=FakeChat(admins={"u1"}), identity=Identity("b", "erpbot")
        )
        outcomes = [await router.handle(dm(text)) for text in texts]
        await store.close()
        return outcomes

    outcomes = asyncio.run(run())
    assert "error" not in outcomes


async def test_an_unexpected_failure_is_reported_and_audited(env):
    router, chat, erp, store, _ = env

    async def broken(**query):
        raise RuntimeError("boom")

    erp.find_staff = broken
    assert await router.handle(dm("статус")) == "error"
    assert "что-то пошло не так" in chat.texts("dm-ivan")[-1]
    assert (await store.list_audit(1))[0]["outcome"] == "error"


async def test_decisions_made_in_the_erp_reach_the_person(env):
    router, chat, erp, _, _ = env
    await register(router, ["Петров Пётр", "2", "p@example.com", "-", "да"])
    await register(router, ["Иванова Анна", "2", "a@example.com", "-", "да"], user="u2", username="anna")
    assert await router.check_pending() == 0  # nothing decided yet
    await erp.approve(1)  # decided in the ERP, not through the bot
    await erp.reject(2, "нет вакансии")
    erp.down = True
    assert await router.check_pending() == 0  # the ERP is down: kept for the next round
    erp.down = False
    assert await router.check_pending() == 2
    assert "одобрена" in chat.texts("dm-ivan")[-1]
    assert "483920" in chat.texts("dm-ivan")[-1]
    assert "нет вакансии" in chat.texts("dm-anna")[-1]
    assert await router.check_pending() == 0  # told once


async def test_approval_through_the_bot_is_not_announced_twice(env):
    router, chat, _, _, _ = env
    await register(router, ["Петров Пётр", "2", "p@example.com", "-", "yes"])
    assert await router.handle(dm("approve 1", "admin1", "root")) == "approved"
    told = len(chat.texts("dm-ivan"))
    assert await router.check_pending() == 0
    assert len(chat.texts("dm-ivan")) == told


async def test_the_watch_stays_out_while_an_admin_decides_through_the_bot(env):
    """The ERP has approved, the bot has not yet told anyone: the watch must not tell the person too (it
    would issue a second code, which voids the one the admin's command is about to send)."""
    router, chat, erp, _, _ = env
    await register(router, ["Петров Пётр", "2", "p@example.com", "-", "да"])
    approved, answer = asyncio.Event(), asyncio.Event()
    erp_approve = erp.approve

    async def slow_approve(staff_id):
        result = await erp_approve(staff_id)
        approved.set()
        await answer.wait()  # the ERP's answer still on its way back
        return result

    erp.approve = slow_approve
    erp.reissue_code = None  # the watch must not issue another code: calling it fails the test
    admin = asyncio.create_task(router.handle(dm("одобрить 1", "admin1", "root")))
    await asyncio.wait_for(approved.wait(), 5)
    assert erp.staff[1]["status"] == "awaiting_activation"
    told = len(chat.texts("dm-ivan"))
    assert await router.check_pending() == 0
    assert len(chat.texts("dm-ivan")) == told
    answer.set()
    assert await asyncio.wait_for(admin, 5) == "approved"
    (decided,) = chat.texts("dm-ivan")[told:]
    assert "одобрена" in decided
    assert "483920" in decided
    assert await router.check_pending() == 0


async def test_an_admin_command_waits_for_the_watch_then_says_the_request_is_being_handled(env):
    router, chat, _, _, _ = env
    await register(router, ["Петров Пётр", "2", "p@example.com", "-", "да"])
    router.deciding_wait = 0.2
    async with router.deciding(1, wait=0) as taken:  # the watch is telling the person about it
        assert taken
        assert await router.handle(dm("одобрить 1", "admin1", "root")) == "decision_in_progress"
        assert await router.handle(dm("reject 1 no", "admin1", "root")) == "decision_in_progress"
    assert "сейчас обрабатывается" in chat.texts("dm-root")[-2]
    assert "being handled right now" in chat.texts("dm-root")[-1]
    assert await router.handle(dm("одобрить 1", "admin1", "root")) == "approved"  # the claim was given back


async def test_requests_remembered_together_are_all_kept(env):
    router, _, _, _, _ = env
    await asyncio.gather(*(router._remember_pending(i, f"u{i}", "ru", None, f"r{i}") for i in range(20)))
    assert sorted(map(int, await router._pending())) == list(range(20))
    await asyncio.gather(*(router.forget_pending(i) for i in range(0, 20, 2)))
    assert sorted(map(int, await router._pending())) == list(range(1, 20, 2))


def in_channel(text, user="admin1", username="root", room_name="erp-admins", **kw):
    return IncomingMessage(
        message_id=f"c{next(ids)}",
        room_id=f"room-{room_name}",
        room_type="c",
        text=text,
        user_id=user,
        username=username,
        room_name=room_name,
        **kw,
    )


async def test_admin_commands_in_the_admins_channel_need_no_mention_and_mark_the_post(env):
    router, chat, _, _, _ = env
    await register(router, ["Петров Пётр", "2", "p@example.com", "-", "да"])
    assert await router.handle(in_channel("коллеги, посмотрите заявку")) is None  # chatter: ignored
    assert await router.handle(in_channel("статус")) is None  # not an admin-only command
    assert await router.handle(in_channel("одобрить 1", room_name="general")) is None  # another channel
    assert await router.handle(in_channel("одобрить 1")) == "approved"
    assert "одобрена" in chat.texts("room-erp-admins")[-1]
    ((room, message_id, text),) = chat.edits
    assert (room, message_id) == ("#erp-admins", "post-7")
    assert text.startswith("Заявка на регистрацию №1")
    assert "Одобрено: @root" in text
    router.admins_channel_commands = False
    assert await router.handle(in_channel("одобрить 1")) is None


async def test_the_person_hears_in_the_language_they_registered_in(env):
    router, chat, _, _, _ = env
    await router.handle(dm("register", "u7", "kate"))  # English from here on, whatever the admin speaks
    for text in ("Green Kate", "1", "k@example.com", "-", "yes"):
        await router.handle(dm(text, "u7", "kate"))
    assert await router.handle(dm("перевыпустить @kate", "admin1", "root")) == "reissued"
    assert "The previous code no longer works" in chat.texts("dm-kate")[-1]
    assert await router.handle(dm("заблокировать @kate", "admin1", "root")) == "blocked"
    assert "has been blocked" in chat.texts("dm-kate")[-1]
    assert "@root" in chat.texts("dm-kate")[-1]


async def test_a_wrong_status_says_which_and_what_to_do(env):
    router, chat, _, _, _ = env
    await register(router, ["Петров Пётр", "2", "p@example.com", "-", "да"])
    assert await router.handle(dm("одобрить 1", "admin1", "root")) == "approved"
    assert await router.handle(dm("одобрить 1", "admin1", "root")) == "invalid_state"
    said = chat.texts("dm-root")[-1]
    assert "ждёт активации" in said
    assert "`перевыпустить @ivan`" in said


async def test_someone_elses_email_reveals_nothing(env):
    router, chat, erp, _, _ = env
    await register(router, ["Петров Пётр", "1", "p@example.com", "-", "да"])
    erp.refuse_next = ErpError(409, "staff_exists", body={"code": "staff_exists", "staff_id": 1})
    await register(router, ["Сидоров Сидор", "1", "p@example.com", "-"], user="u2", username="sid")
    assert await router.handle(dm("да", "u2", "sid")) == "email_taken"
    said = chat.texts("dm-sid")[-1]
    assert "уже указан в другой регистрации" in said
    assert "Петров" not in said
    assert "ivan" not in said
    assert await router.handle(dm("s@example.com", "u2", "sid")) == "step_confirm"
    assert await router.handle(dm("да", "u2", "sid")) == "created"


async def test_free_text_gets_a_greeting_in_its_language(env):
    router, chat, _, _, _ = env
    assert await router.handle(dm("Hello there")) == "greeting"
    assert chat.texts("dm-ivan")[-1].startswith("Hello!")
    assert await router.handle(dm("что-то непонятное")) == "unknown"
    assert "регистрация" in chat.texts("dm-ivan")[-1]
    assert await router.handle(dm("I want to register")) == "started"
    assert "Surname first" in chat.texts("dm-ivan")[-1]
