"""A message handled again (its first handler died or could not post the reply) is answered once, and the
dialog change it causes is applied once (issue 17). Unit level: the real SQLite store, a chat that keeps
posts by their client-chosen ids (as Rocket.Chat does) and can fail, the fake ERP."""

from __future__ import annotations

import pytest
from plugins.bot import FakeChat, FakeErp

from bot.core.ports import Identity, IncomingMessage
from bot.core.router import BUSY, Router, reply_id
from bot.store import SqliteStore

pytestmark = pytest.mark.unit


class OnceChat(FakeChat):
    """Posts under client-chosen ids once (a known id stores nothing); `down` makes every post fail,
    `lose_answers` posts and then fails as a connection lost before the answer would."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, tuple[str, str]] = {}
        self.down = False
        self.lose_answers = False

    async def send_once(self, room_id: str, text: str, message_id: str) -> bool:
        if self.down:
            raise ConnectionError("Rocket.Chat unreachable")
        if message_id in self.ids:
            return False
        self.ids[message_id] = (room_id, text)
        await self.send(room_id, text)
        if self.lose_answers:
            raise ConnectionError("connection lost before the answer")
        return True

    async def send_to_channel_once(self, channel: str, text: str, message_id: str) -> dict[str, str]:
        await self.send_once(f"#{channel}", text, message_id)
        return {"room_id": f"#{channel}", "message_id": message_id}


@pytest.fixture
async def env(tmp_path):
    store = SqliteStore(str(tmp_path / "state.sqlite3"))
    await store.open()
    chat, erp = OnceChat(), FakeErp()
    routers = [
        Router(
            store=store,
            erp=erp,
            chat=chat,
            identity=Identity("bot-id", "erpbot"),
            language="en",
            holder=holder,
        )
        for holder in ("replica-a", "replica-b")
    ]
    yield routers, chat, erp, store
    await store.close()


def dm(message_id: str, text: str) -> IncomingMessage:
    return IncomingMessage(
        message_id=message_id, room_id="dm-ivan", room_type="d", text=text, user_id="u1", username="ivan"
    )


def test_reply_ids_are_stable_and_shaped_like_rocketchat_ids():
    assert reply_id("abc", 0) == reply_id("abc", 0)
    assert len({reply_id("abc", 0), reply_id("abc", 1), reply_id("abd", 0)}) == 3
    assert len(reply_id("abc", 0)) == 17
    assert reply_id("abc", 0).isalnum()


async def test_a_dialog_answer_whose_reply_failed_is_applied_once_when_handled_again(env):
    (first, second), chat, _, store = env
    await first.handle(dm("m1", "register"))
    assert await first.handle(dm("m2", "Ivan Petrov")) == "step_position"
    chat.down = True
    # The dialog moves to the email step, then the reply cannot be posted: not marked handled.
    await first.handle(dm("m3", "ENG"))
    assert (await store.get_dialog("u1"))["step"] == "email"
    chat.down = False
    before = len(chat.sent)
    # Handled again (here by the other replica): from the dialog as it was before m3, not a second time.
    assert await second.handle(dm("m3", "ENG")) == "step_email"
    assert len(chat.sent) == before + 1
    assert "email" in chat.sent[-1][1].lower()
    assert (await store.get_dialog("u1"))["step"] == "email"
    assert await second.handle(dm("m3", "ENG")) is None  # now it is marked handled
    assert await second.handle(dm("m4", "ivan@example.com")) == "step_phone"


async def test_a_reply_posted_before_the_handler_died_is_not_posted_again(env):
    (first, second), chat, _, store = env
    await first.handle(dm("m1", "register"))
    await first.handle(dm("m2", "Ivan Petrov"))
    chat.lose_answers = True  # posted, but the answer never comes back: m3 is not marked handled
    await first.handle(dm("m3", "ENG"))
    chat.lose_answers = False
    before = len(chat.sent)
    assert await second.handle(dm("m3", "ENG")) == "step_email"
    assert len(chat.sent) == before  # the reply's id was posted already: nothing posted again
    assert reply_id("m3", 0) in chat.ids
    assert [text for _, text in chat.sent].count(chat.ids[reply_id("m3", 0)][1]) == 1
    assert (await store.get_dialog("u1"))["step"] == "email"


async def test_the_confirmation_handled_again_sends_the_code_once_and_registers_once(env):
    (first, second), chat, erp, _ = env
    for n, text in enumerate(["register", "Ivan Petrov", "ENG", "ivan@example.com", "-"]):
        await first.handle(dm(f"c{n}", text))
    chat.down = True
    await first.handle(dm("c5", "yes"))  # registered in the ERP, dialog closed, the code not posted
    assert erp.creates == 1
    assert await first.open_dialog("u1") is None
    chat.down = False
    assert await second.handle(dm("c5", "yes")) == "created"
    assert erp.creates == 1  # the same request with the same idempotency key
    assert len(set(erp.keys_seen)) == 1
    codes = [text for _, text in chat.sent if "483920" in text]
    assert len(codes) == 1
    assert await second.handle(dm("c6", "yes")) == "unknown"  # the dialog is over for new messages
    assert await second.expire_dialogs() == 0  # the closed dialog's record tells nobody anything


async def test_a_message_in_hand_of_a_live_replica_is_busy_for_the_other(env):
    (_, second), _, _, store = env
    await store.hold("leader", "replica-a", 30)  # replica-a is alive
    assert await store.begin_handling("b1", "replica-a") == "new"
    assert await second.handle(dm("b1", "help")) == BUSY
    await store.finish_handling("b1", "replica-a", done=True)
    assert await second.handle(dm("b1", "help")) is None


async def test_cancel_handled_again_cancels_once(env):
    (first, second), chat, _, _ = env
    await first.handle(dm("x1", "register"))
    chat.down = True
    await first.handle(dm("x2", "cancel"))
    chat.down = False
    assert await second.handle(dm("x2", "cancel")) == "cancelled"  # not "nothing to cancel"
    assert await second.open_dialog("u1") is None
