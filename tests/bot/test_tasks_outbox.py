"""The task outbox with an injected clock and a scripted tracker (no sleeps): order per person, retries
with backoff, restart, dead letters, idempotent opens, one deliverer; and the router's hooks."""

import itertools
import logging

import httpx
import pytest
from plugins.bot import FakeChat, FakeErp

from bot import metrics
from bot.core.ports import Identity, IncomingMessage
from bot.core.router import Router
from bot.store import SqliteStore, open_store
from bot.tasks.base import TaskClosing, TaskSpec, TrackerError
from bot.tasks.jira import JiraTracker
from bot.tasks.outbox import TASK_KEY_PREFIX, TaskOutbox

pytestmark = pytest.mark.unit
message_ids = itertools.count()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedTracker:
    """Creates tasks like a tracker would; `fail` holds errors to raise on the next calls."""

    name = "fake"

    def __init__(self) -> None:
        self.tasks: dict[str, dict] = {}
        self.calls: list[tuple[str, int]] = []
        self.fail: list[TrackerError] = []
        self.lose_answer = False  # create the task, then fail as if the answer was lost
        self.ids = itertools.count(1)

    def _maybe_fail(self) -> None:
        if self.fail:
            raise self.fail.pop(0)

    async def open(self, spec: TaskSpec, event_id: str) -> str:
        self.calls.append(("open", spec.staff_id))
        self._maybe_fail()
        key = f"HR-{next(self.ids)}"
        self.tasks[key] = {"spec": spec, "closed": False, "comments": []}
        if self.lose_answer:
            self.lose_answer = False
            raise TrackerError("POST /issue: timeout (ReadTimeout)", retryable=True)
        return key

    async def find(self, spec: TaskSpec) -> str | None:
        self.calls.append(("find", spec.staff_id))
        return next((k for k, t in self.tasks.items() if t["spec"].label == spec.label), None)

    async def close(self, closing: TaskClosing, event_id: str, progress: dict) -> None:
        self.calls.append(("close", closing.staff_id))
        self._maybe_fail()
        self.tasks[closing.key]["comments"].append(closing.comment)
        self.tasks[closing.key]["closed"] = True

    async def aclose(self) -> None:
        pass


def down() -> TrackerError:
    return TrackerError("POST /issue: ConnectError", retryable=True)


STAFF = {
    "id": 17,
    "full_name": "Петрова Анна",
    "email": "anna@example.com",
    "phone": "+79991234567",
    "position": {"code": "ACC", "name": "Бухгалтер"},
    "rocketchat_username": "anna",
    "status": "pending_approval",
    "created_at": "2026-11-27T09:00:00Z",
}


def staff(staff_id: int) -> dict:
    return {**STAFF, "id": staff_id, "rocketchat_username": f"user{staff_id}"}


@pytest.fixture
async def env(tmp_path):
    store = SqliteStore(str(tmp_path / "state.sqlite3"))
    await store.open()
    tracker, clock = ScriptedTracker(), Clock()
    outbox = TaskOutbox(
        store=store,
        tracker=tracker,
        language="en",
        max_attempts=4,
        backoff_base=10,
        backoff_max=25,
        clock=clock,
    )
    yield outbox, tracker, store, clock
    await store.close()


def counter(metric, *labels) -> float:
    return metric.labels(*labels)._value.get()


async def test_open_then_close_in_order_with_the_key_remembered(env):
    outbox, tracker, store, _ = env
    opened, closed = counter(metrics.TASKS_OPENED, "fake"), counter(metrics.TASKS_CLOSED, "fake")
    await outbox.registration_pending(STAFF, "anna")
    await outbox.registration_decided(17, "approved", admin="root")
    assert await store.outbox_counts() == (2, 0)
    assert await outbox.run_once() == 2
    assert tracker.calls == [("open", 17), ("close", 17)]
    (task,) = tracker.tasks.values()
    assert task["spec"].title == "Approve the ERP registration of Петрова Анна (Бухгалтер)"
    assert "approve 17" in task["spec"].description
    assert "reject 17 [reason]" in task["spec"].description
    assert "@anna" in task["spec"].description
    # Nothing personal beyond the name and the username, and never a secret.
    assert "anna@example.com" not in task["spec"].description
    assert "9991234567" not in task["spec"].description
    assert task["closed"]
    assert task["comments"] == ["Approved by @root through the bot. The employee has been told."]
    assert await store.get_value(f"{TASK_KEY_PREFIX}17") == "HR-1"
    assert await store.outbox_counts() == (0, 0)
    assert metrics.TASK_OUTBOX_DEPTH._value.get() == 0
    assert counter(metrics.TASKS_OPENED, "fake") == opened + 1
    assert counter(metrics.TASKS_CLOSED, "fake") == closed + 1


async def test_a_close_waits_for_its_open_while_other_people_go_on(env):
    outbox, tracker, store, clock = env
    await outbox.registration_pending(staff(1), "user1")
    await outbox.registration_decided(1, "rejected", admin="root", reason="duplicate")
    await outbox.registration_pending(staff(2), "user2")
    tracker.fail = [
        TrackerError("POST /issue: HTTP 409 conflict", retryable=True)
    ]  # only person 1's open fails
    # A retryable failure ends the round (the tracker is struggling): nothing else is tried now.
    assert await outbox.run_once() == 0
    assert tracker.calls == [("open", 1)]
    clock.now += 1  # person 1 is in backoff: their close waits, person 2 goes on
    assert await outbox.run_once() == 1
    assert tracker.calls[-1] == ("open", 2)
    assert await store.outbox_counts() == (2, 0)
    clock.now += 10
    assert await outbox.run_once() == 2
    assert tracker.calls[-2:] == [("open", 1), ("close", 1)]
    task = tracker.tasks[await store.get_value(f"{TASK_KEY_PREFIX}1")]
    assert task["comments"] == [
        "Rejected by @root through the bot. Reason: duplicate. The employee has been told."
    ]


async def test_retries_back_off_exponentially_up_to_the_ceiling(env):
    outbox, tracker, store, clock = env
    start = clock.now
    await outbox.registration_pending(STAFF, "anna")
    tracker.fail = [down(), down(), down()]
    due_times = []
    for _ in range(3):
        assert await outbox.run_once() == 0
        (entry,) = await store.outbox_list(10)
        due_times.append(entry["next_at"] - clock.now)
        clock.now += 1
        assert await outbox.run_once() == 0  # not due yet: not even tried
        clock.now = entry["next_at"]
    assert due_times == [10, 20, 25]  # doubling from the base, up to the ceiling
    assert entry["attempts"] == 3
    assert entry["last_error"] == "POST /issue: ConnectError"
    assert [c for c in tracker.calls if c[0] == "open"] == [("open", 17)] * 3
    assert await outbox.run_once() == 1
    assert clock.now - start == 10 + 20 + 25  # each attempt ran exactly when due


async def test_retry_after_from_the_tracker_is_honoured(env):
    outbox, tracker, store, clock = env
    await outbox.registration_pending(STAFF, "anna")
    tracker.fail = [TrackerError("HTTP 429", retryable=True, retry_after=20)]
    await outbox.run_once()
    (entry,) = await store.outbox_list(1)
    assert entry["next_at"] == clock.now + 20


async def test_queued_events_survive_a_restart(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    clock, tracker = Clock(), ScriptedTracker()
    store = SqliteStore(path)
    await store.open()
    first = TaskOutbox(store=store, tracker=tracker, language="en", clock=clock)
    await first.registration_pending(STAFF, "anna")
    tracker.fail = [down()]
    await first.run_once()
    await first.registration_decided(17, "awaiting_activation")
    await store.close()

    store = open_store(path)  # a new process
    await store.open()
    second = TaskOutbox(store=store, tracker=tracker, language="en", clock=clock)
    assert await store.outbox_counts() == (2, 0)
    assert await second.run_once() == 0  # the open is still backing off
    clock.now += 60
    assert await second.run_once() == 2
    (task,) = tracker.tasks.values()
    assert task["comments"] == [
        "Decided in the ERP: the registration is now waiting for activation. The employee has been told."
    ]
    await store.close()


async def test_dead_letter_after_max_attempts_with_an_error_log(env, caplog):
    outbox, tracker, store, clock = env
    failed = counter(metrics.TASKS_FAILED, "fake", "open")
    await outbox.registration_pending(STAFF, "anna")
    await outbox.registration_decided(17, "approved", admin="root")
    tracker.fail = [down() for _ in range(4)]
    caplog.set_level(logging.INFO, logger="bot.tasks")
    for _ in range(4):
        await outbox.run_once()
        clock.now += 1000
    assert await store.outbox_counts() == (0, 1)  # the open is buried; its close had nothing to close
    assert metrics.TASK_OUTBOX_DEAD._value.get() == 1
    assert counter(metrics.TASKS_FAILED, "fake", "open") == failed + 1
    dead = [r for r in caplog.records if r.message == "task event dead-lettered"]
    assert len(dead) == 1
    assert dead[0].levelno == logging.ERROR
    assert dead[0].attempts == 4
    assert dead[0].staff_id == 17
    assert any(r.message == "no task to close" for r in caplog.records)
    assert tracker.tasks == {}
    buried = store.db.execute("SELECT data FROM outbox_dead").fetchone()[0]
    assert '"attempts": 4' in buried
    assert "ConnectError" in buried


async def test_a_permanent_refusal_is_dead_lettered_at_once(env):
    outbox, tracker, store, _ = env
    await outbox.registration_pending(STAFF, "anna")
    await outbox.registration_pending(staff(18), "user18")
    tracker.fail = [TrackerError("HTTP 400 issuetype: invalid", retryable=False)]
    assert await outbox.run_once() == 1  # the refusal does not hold up the next person
    assert await store.outbox_counts() == (0, 1)


async def test_a_lost_answer_does_not_open_a_second_task(env):
    outbox, tracker, store, clock = env
    await outbox.registration_pending(STAFF, "anna")
    tracker.lose_answer = True
    assert await outbox.run_once() == 0
    assert len(tracker.tasks) == 1  # created, but the bot did not hear the key
    clock.now += 60
    assert await outbox.run_once() == 1
    assert tracker.calls == [("open", 17), ("find", 17)]  # found again, not created twice
    assert len(tracker.tasks) == 1
    assert await store.get_value(f"{TASK_KEY_PREFIX}17") == "HR-1"


async def test_an_open_whose_key_is_known_is_not_sent_again(env):
    outbox, tracker, store, _ = env
    # As after a crash between remembering the key and removing the event.
    await store.set_value(f"{TASK_KEY_PREFIX}17", "HR-9")
    await outbox.registration_pending(STAFF, "anna")
    assert await outbox.run_once() == 1
    assert tracker.calls == []
    assert await store.outbox_counts() == (0, 0)


async def test_one_deliverer_at_a_time(env):
    outbox, tracker, store, clock = env
    other = TaskOutbox(store=store, tracker=tracker, clock=clock)
    await outbox.registration_pending(STAFF, "anna")
    assert await store.claim("tasks:outbox-delivery", clock.now + 300, clock.now)  # held by another replica
    assert await other.run_once() == 0
    assert tracker.calls == []
    clock.now += 301  # its lease ended (it died): this one takes over
    assert await outbox.run_once() == 1


async def test_queue_failure_is_logged_and_never_raised(env, caplog, monkeypatch):
    outbox, _, store, _ = env

    async def broken(entry):
        raise OSError("disk full")

    monkeypatch.setattr(store, "outbox_add", broken)
    caplog.set_level(logging.ERROR, logger="bot.tasks")
    await outbox.registration_pending(STAFF, "anna")  # nothing raises into the registration
    assert any(r.message == "task event not queued" for r in caplog.records)


@pytest.fixture(params=["sqlite", "redis"])
async def any_store(request, tmp_path):
    url = str(tmp_path / "s.sqlite3") if request.param == "sqlite" else request.getfixturevalue("redis_url")
    store = open_store(url)
    await store.open()
    if request.param == "redis":
        await store._redis.flushdb()
    yield store
    await store.close()


async def test_store_outbox_keeps_order_updates_and_dead_letters(any_store):
    store = any_store
    first = await store.outbox_add({"kind": "open", "staff_id": 1})
    second = await store.outbox_add({"kind": "close", "staff_id": 1})
    assert second > first
    entries = await store.outbox_list(10)
    assert [(e["id"], e["kind"]) for e in entries] == [(first, "open"), (second, "close")]
    await store.outbox_save({**entries[0], "attempts": 2})
    assert (await store.outbox_list(1))[0]["attempts"] == 2
    await store.outbox_bury({**entries[0], "attempts": 3})
    assert await store.outbox_counts() == (1, 1)
    await store.outbox_remove(second)
    await store.outbox_save({**entries[1], "attempts": 1})  # removed: saving does not bring it back
    assert await store.outbox_list(10) == []
    assert await store.outbox_counts() == (0, 1)


async def test_close_progress_is_kept_so_a_retry_does_not_comment_twice(env):
    """With the real Jira adapter: the comment succeeds, the transition fails, the retry only transitions."""
    _, _, store, clock = env
    requests: list[tuple[str, str]] = []
    transitions_up = [False]

    def jira(request: httpx.Request) -> httpx.Response:
        requests.append((request.method, request.url.path))
        if request.url.path.endswith("/comment"):
            return httpx.Response(201, json={"id": "1"})
        if request.url.path.endswith("/transitions"):
            if not transitions_up[0]:
                return httpx.Response(503)
            if request.method == "GET":
                return httpx.Response(200, json={"transitions": [{"id": "31", "name": "Done"}]})
            return httpx.Response(204)
        return httpx.Response(201, json={"id": "100", "key": "HR-100"})

    tracker = JiraTracker(
        "http://jira.test", token="pat-123456789", project="HR", transport=httpx.MockTransport(jira)
    )
    outbox = TaskOutbox(store=store, tracker=tracker, clock=clock)
    await outbox.registration_pending(STAFF, "anna")
    await outbox.registration_decided(17, "approved", admin="root")
    assert await outbox.run_once() == 1  # opened; the close failed after its comment
    transitions_up[0] = True
    clock.now += 3600
    assert await outbox.run_once() == 1
    assert requests.count(("POST", "/rest/api/2/issue/HR-100/comment")) == 1
    assert requests[-1] == ("POST", "/rest/api/2/issue/HR-100/transitions")
    await tracker.aclose()


# --- the router's hooks -------------------------------------------------------------------------------


def dm(text, user="u1", username="ivan"):
    return IncomingMessage(
        message_id=f"m{next(message_ids)}",
        room_id=f"dm-{username}",
        room_type="d",
        text=text,
        user_id=user,
        username=username,
    )


@pytest.fixture
async def routed(tmp_path):
    store = SqliteStore(str(tmp_path / "state.sqlite3"))
    await store.open()
    tracker, clock = ScriptedTracker(), Clock()
    outbox = TaskOutbox(store=store, tracker=tracker, language="en", clock=clock)
    chat, erp = FakeChat(admins={"admin1"}), FakeErp()
    router = Router(
        store=store, erp=erp, chat=chat, identity=Identity("bot-id", "erpbot"), tasks=outbox, clock=clock
    )
    yield router, outbox, tracker, erp, chat, store
    await store.close()


async def register(router, user, username, position="2"):
    for text in ["регистрация", "Петров Пётр", position, f"{username}@example.com", "-", "да"]:
        outcome = await router.handle(dm(text, user, username))
    return outcome


async def test_router_opens_on_pending_and_closes_on_approve_even_with_the_tracker_down(routed):
    router, outbox, tracker, _, chat, _ = routed
    tracker.fail = [down()]
    assert await register(router, "u1", "petr") == "pending_approval"  # position DIR needs approval
    assert "одобрить 1" in chat.texts("#erp-admins")[-1]
    assert await outbox.run_once() == 0  # the tracker is down: the registration did not notice
    assert await router.handle(dm("approve 1", "admin1", "root")) == "approved"
    assert await register(router, "u2", "olga", position="1") == "created"  # no approval: no task
    outbox.clock.now += 3600
    assert await outbox.run_once() == 2
    (task,) = tracker.tasks.values()
    assert task["closed"]
    assert task["comments"] == ["Approved by @root through the bot. The employee has been told."]
    assert "483920" not in task["spec"].description + "".join(task["comments"])  # never the code


async def test_router_closes_a_task_decided_in_the_erp(routed):
    router, outbox, tracker, erp, _, _ = routed
    await register(router, "u1", "petr")
    await outbox.run_once()
    await erp.reject(1, "not hired")  # in the ERP, not through the bot
    assert await router.check_pending() == 1
    assert await outbox.run_once() == 1
    (task,) = tracker.tasks.values()
    assert task["comments"] == [
        "Decided in the ERP: the registration is now rejected. The employee has been told."
    ]


async def test_router_without_a_tracker_queues_nothing(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    router = Router(
        store=store, erp=FakeErp(), chat=FakeChat(admins={"admin1"}), identity=Identity("b", "erpbot")
    )
    assert await register(router, "u1", "petr") == "pending_approval"
    assert await router.handle(dm("approve 1", "admin1", "root")) == "approved"
    assert await store.outbox_counts() == (0, 0)
    await store.close()


async def test_a_slow_round_ends_within_half_the_lease(env):
    outbox, tracker, store, clock = env
    slow_open = tracker.open

    async def open_slowly(spec, event_id):
        clock.now += 200  # the tracker took 200 s of the 300 s lease
        return await slow_open(spec, event_id)

    tracker.open = open_slowly
    await outbox.registration_pending(staff(1), "user1")
    await outbox.registration_pending(staff(2), "user2")
    assert await outbox.run_once() == 1  # the second waits for the next round
    assert await outbox.run_once() == 1
    assert await store.outbox_counts() == (0, 0)
