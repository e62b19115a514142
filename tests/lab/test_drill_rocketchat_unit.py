"""lab/drill_rocketchat.py without a lab: how it reads the bot's metrics and the DM's history, its report,
the names lab.multi's figures read, and that Rocket.Chat is started again whatever fails."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lab import drill_rocketchat
from lab.drill_host_loss import DrillError
from ops.figures import LAB_STEPS
from rcchat.api import Message

BOT_ID, EMPLOYEE = "bot-id", "emp-id"


def wire(user_id: str, username: str, text: str, system: str | None = None) -> dict[str, Any]:
    message = {"_id": f"{user_id}-{text}", "u": {"_id": user_id, "username": username}, "msg": text}
    return {**message, "t": system} if system else message


def test_the_bots_unlabelled_samples_are_read_and_comments_skipped() -> None:
    text = (
        "# HELP bot_realtime_connected 1 while the realtime stream is up\n"
        "# TYPE bot_realtime_connected gauge\n"
        "bot_realtime_connected 1.0\n"
        "bot_reconnects_total 3.0\n"
        'bot_commands_total{command="status"} 7.0\n'
    )
    assert drill_rocketchat.parse_metrics(text) == {
        "bot_realtime_connected": 1.0,
        "bot_reconnects_total": 3.0,
    }


def test_each_answer_counts_the_bot_messages_after_it_oldest_first() -> None:
    history = [  # im.history: newest first
        wire(BOT_ID, "erp-bot", "code 123"),
        wire(EMPLOYEE, "drill1", "да"),
        wire(BOT_ID, "erp-bot", "position?"),
        wire(BOT_ID, "erp-bot", "position?"),  # a duplicate answer
        wire(EMPLOYEE, "drill1", "Петров Иван"),
        wire(BOT_ID, "erp-bot", "name?"),
        wire(EMPLOYEE, "drill1", "регистрация"),
        wire("x", "drill1", "", system="uj"),  # the DM's system message
    ]
    counts = drill_rocketchat.answers_per_message(history, EMPLOYEE)
    assert counts == [("регистрация", 1), ("Петров Иван", 2), ("да", 1)]
    problems = drill_rocketchat.dialog_problems(counts, ["регистрация", "Петров Иван", "да"])
    assert problems == ["not answered exactly once: 'Петров Иван' answered 2 times"]


def test_a_lost_or_unanswered_answer_is_a_problem() -> None:
    counts = [("регистрация", 1), ("да", 0)]
    problems = drill_rocketchat.dialog_problems(counts, ["регистрация", "Петров Иван", "да"])
    assert problems[0].startswith("the DM holds the employee's messages ['регистрация', 'да']")
    assert "'да' answered 0 times" in problems[1]
    assert drill_rocketchat.dialog_problems([("a", 1), ("b", 1)], ["a", "b"]) == []


def test_lab_multi_knows_every_step_the_drill_reports() -> None:
    for step in (
        drill_rocketchat.STEP_ALERT,
        drill_rocketchat.STEP_ANSWER,
        drill_rocketchat.STEP_DELIVERED,
        drill_rocketchat.STEP_WHOLE,
    ):
        assert ("multi", step) in LAB_STEPS, step


# ------------------------------------------------------------------ the drill against stand-ins
class FakeStack:
    domain, mon, chat = "chat.pmlab.test", "mon", "chat"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def login(self) -> None:
        pass

    def admin_password(self) -> str:
        return "pw"

    def alert_wait(self, name: str) -> str:
        assert name == drill_rocketchat.ALERT
        return "1m"

    def admins_messages(self) -> list[dict[str, Any]]:
        return self.messages


class FakeDrill:
    """The hosts as the drill sees them: the bot's metrics, Prometheus' alert, Rocket.Chat's container."""

    def __init__(self, never_fires: bool = False, stop_fails: bool = False) -> None:
        self.stack, self.bot, self.chat = FakeStack(), "bot", "chat"
        self.url, self.ca_file = "https://chat.pmlab.test", ""
        self.running, self.never_fires, self.stop_fails = True, never_fires, stop_fails
        self.actions: list[str] = []
        self.reconnects = 0.0

    def bot_metrics(self) -> dict[str, float]:
        return {
            "bot_realtime_connected": 1.0 if self.running else 0.0,
            "bot_reconnects_total": self.reconnects,
        }

    def firing(self) -> bool:
        return not self.running and not self.never_fires

    def docker(self, action: str) -> None:
        self.actions.append(action)
        if action == "stop" and self.stop_fails:
            raise drill_rocketchat.remote.RemoteError("chat: `sudo docker stop` did not finish within 120 s")
        self.running = action == "start"
        if action == "start":
            self.reconnects += 1
            self.stack.messages.append(
                {
                    "msg": f"• FIRING [critical] *{drill_rocketchat.ALERT}*: no stream",
                    "ts": dt.datetime.now(dt.UTC).isoformat(),
                }
            )

    def bot_log(self, since: str) -> str:
        return "realtime disconnected\nrealtime connected\n"


class FakeStream:
    def __init__(self, session: FakeSession) -> None:
        self.session = session

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def messages(self, *, duration: float | None = None) -> AsyncIterator[Message]:
        text = "Код активации: `123456`" if len(self.session.sent) == 6 else "next?"
        yield Message("m", "room", BOT_ID, "erp-bot", text, None)


class FakeSession:
    user_id = EMPLOYEE

    def __init__(self, url: str, **_: Any) -> None:
        self.sent: list[str] = []
        self.http = self

    async def __aenter__(self) -> FakeSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def login(self, username: str, password: str) -> None:
        pass

    async def create_user(self, username: str, **_: Any) -> str:
        return "new"

    async def resolve_room(self, ref: str) -> str:
        return "room"

    def stream(self, room: str) -> FakeStream:
        return FakeStream(self)

    async def send(self, room: str, text: str) -> str:
        self.sent.append(text)
        return "id"

    async def get(self, path: str) -> Any:
        return type("Response", (), {"status_code": 200})()

    async def call(self, method: str, endpoint: str, **_: Any) -> dict[str, Any]:
        history = []
        for text in self.sent:
            history += [wire(EMPLOYEE, "e", text), wire(BOT_ID, "erp-bot", "ok")]
        return {"messages": list(reversed(history))}


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drill_rocketchat, "Session", FakeSession)
    monkeypatch.setattr(drill_rocketchat, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(drill_rocketchat, "SETTLE_SECONDS", 0.0)
    for name in ("ALERT_TIMEOUT", "DELIVERY_TIMEOUT", "RESOLVE_TIMEOUT", "LOST_TIMEOUT", "BACK_TIMEOUT"):
        monkeypatch.setattr(drill_rocketchat, name, 0.05)


def run_with(monkeypatch: pytest.MonkeyPatch, drill: FakeDrill) -> dict[str, tuple[float, float]]:
    monkeypatch.setattr(drill_rocketchat, "Drill", lambda lab: drill)
    return drill_rocketchat.run(None)  # type: ignore[arg-type]


@pytest.mark.usefixtures("fast")
def test_the_whole_drill_passes_and_reports_its_four_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    drill = FakeDrill()
    figures = run_with(monkeypatch, drill)
    assert drill.actions == ["stop", "start"]
    assert set(figures) == {
        drill_rocketchat.STEP_ALERT,
        drill_rocketchat.STEP_ANSWER,
        drill_rocketchat.STEP_DELIVERED,
        drill_rocketchat.STEP_WHOLE,
    }


@pytest.mark.usefixtures("fast")
@pytest.mark.parametrize(("drill", "error"), [
    (FakeDrill(never_fires=True), "firing in Prometheus: not within"),
    (FakeDrill(stop_fails=True), "did not finish within"),
])  # fmt: skip
def test_rocketchat_is_started_again_whatever_fails(
    monkeypatch: pytest.MonkeyPatch, drill: FakeDrill, error: str
) -> None:
    with pytest.raises((DrillError, drill_rocketchat.remote.RemoteError), match=error):
        run_with(monkeypatch, drill)
    assert drill.actions == ["stop", "start"]


@pytest.mark.usefixtures("fast")
def test_a_bot_that_is_not_connected_before_the_drill_stops_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    drill = FakeDrill()
    drill.running = False
    with pytest.raises(DrillError, match=r"not connected to Rocket\.Chat before the drill"):
        run_with(monkeypatch, drill)
    assert drill.actions == []


@pytest.mark.usefixtures("fast")
def test_an_answer_answered_twice_fails_the_drill(monkeypatch: pytest.MonkeyPatch) -> None:
    async def twice(self: FakeSession, method: str, endpoint: str, **_: Any) -> dict[str, Any]:
        history = []
        for text in self.sent:
            history += [
                wire(EMPLOYEE, "e", text),
                wire(BOT_ID, "erp-bot", "ok"),
                wire(BOT_ID, "erp-bot", "ok"),
            ]
        return {"messages": list(reversed(history))}

    monkeypatch.setattr(FakeSession, "call", twice)
    drill = FakeDrill()
    with pytest.raises(DrillError, match="not answered exactly once"):
        run_with(monkeypatch, drill)
    assert drill.actions == ["stop", "start"]
