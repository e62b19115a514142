"""The router and the real ERP client against the real ERP process (chat faked): every ERP call the bot
makes, checked against the server that implements docs/api/erp-bot-api.md, up to activation."""

import itertools
import time

import httpx
import pytest
from plugins.bot import FakeChat
from plugins.erp import start_erp_server

from bot.core.ports import Identity, IncomingMessage
from bot.core.router import Router
from bot.erp_client import ErpClient
from bot.reminders import Reminders
from bot.store import SqliteStore
from bot.work_calendar import WorkCalendar

pytestmark = pytest.mark.integration
ids = itertools.count()


@pytest.fixture(scope="module")
def erp_api(tmp_path_factory):
    """An ERP server of this module's own: the tests write staff and toggle positions."""
    server = start_erp_server(tmp_path_factory.mktemp("erp-for-bot"))
    yield server
    server.stop()


@pytest.fixture
async def env(erp_api, tmp_path):
    store = SqliteStore(str(tmp_path / "bot.sqlite3"))
    await store.open()
    erp = ErpClient(f"{erp_api.base_url}/api/bot/v1", erp_api.admin_key, retries=0)
    chat = FakeChat(admins={"admin-id"})
    router = Router(store=store, erp=erp, chat=chat, identity=Identity("bot-id", "erpbot"), language="en")
    yield router, chat, erp_api
    await erp.aclose()
    await store.close()


def dm(text, user_id, username):
    return IncomingMessage(f"m{next(ids)}", f"dm-{username}", "d", text, user_id, username)


async def register(router, user_id, username, position, email):
    outcomes = []
    for text in ["register", "Ivan Petrov", position, email, "+79991234567", "yes"]:
        outcomes.append(await router.handle(dm(text, user_id, username)))
    return outcomes


def code_from(text: str) -> tuple[str, str]:
    login = text.split("login: `")[1].split("`")[0]
    code = text.split("Activation code: `")[1].split("`")[0]
    return login, code


async def test_registration_then_activation(env):
    router, chat, erp_api = env
    outcomes = await register(router, "u-eng", "eng.user", "ENG", "eng.user@example.com")
    assert outcomes[-1] == "created", chat.sent[-3:]
    login, code = code_from(chat.texts("dm-eng.user")[-1])
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{erp_api.base_url}/api/v1/account/activate",
            json={"login": login, "code": code, "password": "Str0ngPassw0rd2026"},
        )
    assert response.status_code == 200, response.text
    assert await router.handle(dm("status", "u-eng", "eng.user")) == "ok"
    assert "is active" in chat.texts("dm-eng.user")[-1]
    assert await router.handle(dm("register", "u-eng", "eng.user")) == "already_registered"


async def test_approval_no_access_and_admin_commands(env):
    router, chat, _ = env
    assert (await register(router, "u-acc", "acc.user", "ACC", "acc.user@example.com"))[
        -1
    ] == "pending_approval"
    request = chat.texts("#erp-admins")[-1]
    staff_id = request.split("approve ")[1].split("`")[0]
    assert await router.handle(dm(f"approve {staff_id}", "u-x", "mallory")) == "denied"
    assert await router.handle(dm(f"approve {staff_id}", "admin-id", "root")) == "approved"
    assert "Activation code" in chat.texts("dm-acc.user")[-1]
    assert await router.handle(dm(f"approve {staff_id}", "admin-id", "root")) == "invalid_state"
    assert (await register(router, "u-drv", "drv.user", "DRV", "drv.user@example.com"))[-1] == "no_erp_access"

    admin = lambda text: router.handle(dm(text, "admin-id", "root"))  # noqa: E731
    assert await admin("status @acc.user") == "ok"
    assert await admin("block @acc.user") == "blocked"
    assert await admin("unblock @acc.user") == "unblocked"
    assert await admin("reissue @acc.user") == "reissued"
    assert "Activation code" in chat.texts("dm-acc.user")[-1]
    assert all("Activation code" not in t for t in chat.texts("dm-root"))
    assert await admin("positions") == "ok"
    assert await admin("position MGR access off") == "updated"
    assert await admin("position MGR access on") == "updated"
    assert await admin("position NOPE access on") == "not_found"
    assert (await register(router, "u-hr", "hr.user", "HR", "hr.user@example.com"))[-1] == "pending_approval"
    hr_id = chat.texts("#erp-admins")[-1].split("approve ")[1].split("`")[0]
    assert await admin(f"reject {hr_id} not hired") == "rejected"
    assert "not hired" in chat.texts("dm-hr.user")[-1]
    assert await admin("audit 5") == "ok"


async def test_duplicate_email_is_refused_with_the_field_asked_again(env):
    router, chat, _ = env
    await register(router, "u-m1", "m1.user", "MGR", "same@example.com")
    outcomes = await register(router, "u-m2", "m2.user", "MGR", "same@example.com")
    assert outcomes[-1] == "email_taken", chat.texts("dm-m2.user")[-2:]
    said = chat.texts("dm-m2.user")[-1]
    assert "already used by another registration" in said
    assert "m1.user" not in said  # nothing about the other person's record


async def test_report_command_and_reminders_read_the_real_report(env):
    router, chat, _ = env
    assert (await register(router, "u-rep1", "rep1.user", "ACC", "rep1.user@example.com"))[
        -1
    ] == "pending_approval"
    assert (await register(router, "u-rep2", "rep2.user", "ENG", "rep2.user@example.com"))[-1] == "created"
    assert await router.handle(dm("report 1", "admin-id", "root")) == "ok"
    text = chat.texts("dm-root")[-1]
    assert "Registered: " in text
    assert "@rep1.user), `ACC`, waiting 0 h" in text
    assert "@rep2.user), `ENG`, code valid until" in text
    assert await router.handle(dm("report 366", "admin-id", "root")) == "ok"  # the longest period

    # Reminders on the real report, the clock 50 h ahead: rep1 has waited past 24 h, rep2's code
    # (72 h) expires within 24 h.
    clock = lambda: time.time() + 50 * 3600  # noqa: E731
    reminders = Reminders(
        store=router.store,
        erp=router.erp,
        chat=chat,
        calendar=WorkCalendar.parse("00:00-24:00", "mon-sun", "UTC"),
        admins_channel="erp-admins",
        language="en",
        clock=clock,
    )
    sent = await reminders.run_once()
    assert sent["pending_digest"] == 1
    assert sent["activation_expiry"] >= 1  # other tests' accounts in this ERP may be due too
    assert "@rep1.user" in chat.texts("#erp-admins")[-1]
    assert "not activated yet" in chat.texts("dm-rep2.user")[-1]
    assert await reminders.run_once() == {"pending_digest": 0, "activation_expiry": 0}
