"""Both state stores keep the same contract: dialogs, dedupe of message ids, the audit trail, values."""

import asyncio
import time

import pytest

from bot.store import RedisStore, SqliteStore, open_store

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "redis"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        store = open_store(str(tmp_path / "state" / "bot.sqlite3"))
        assert isinstance(store, SqliteStore)
    else:
        store = open_store(request.getfixturevalue("redis_url"))
        assert isinstance(store, RedisStore)
    await store.open()
    yield store
    await store.close()


async def test_dialogs_expire_and_survive_reopen(store):
    await store.put_dialog("u1", {"user_id": "u1", "step": "email"}, expires_at=100.0)
    await store.put_dialog("u2", {"user_id": "u2", "step": "name"}, expires_at=300.0)
    assert (await store.get_dialog("u1"))["step"] == "email"
    assert [d["user_id"] for d in await store.expired_dialogs(200.0)] == ["u1"]
    await store.delete_dialog("u1")
    assert await store.get_dialog("u1") is None
    assert await store.expired_dialogs(200.0) == []


async def test_seen_ids_audit_and_values(store):
    assert await store.mark_seen("m1") is True
    assert await store.mark_seen("m1") is False
    for i in range(5):
        await store.add_audit({"user_id": "u", "username": f"user{i}", "command": "status", "outcome": "ok"})
    entries = await store.list_audit(3)
    assert [e["username"] for e in entries] == ["user4", "user3", "user2"]
    assert await store.get_value("k") is None
    await store.set_value("k", "1.5")
    assert await store.get_value("k") == "1.5"
    assert await store.ping() is True


async def test_sqlite_state_survives_a_restart(tmp_path):
    path = str(tmp_path / "bot.sqlite3")
    first = SqliteStore(path)
    await first.open()
    await first.put_dialog("u1", {"step": "phone"}, 10.0)
    await first.mark_seen("m1")
    await first.close()
    second = SqliteStore(path)
    await second.open()
    assert (await second.get_dialog("u1"))["step"] == "phone"
    assert await second.mark_seen("m1") is False
    await second.close()


async def test_claims_are_taken_once_until_they_end_or_are_released(store):
    assert await store.claim("reminder:x", until=200.0, now=100.0) is True
    assert await store.claim("reminder:x", until=300.0, now=150.0) is False  # held until 200
    await store.release("reminder:x", until=999.0)  # not the holder's claim: nothing happens
    assert await store.claim("reminder:x", until=300.0, now=150.0) is False
    await store.release("reminder:x", until=200.0)
    assert await store.claim("reminder:x", until=300.0, now=150.0) is True
    assert await store.claim("reminder:x", until=400.0, now=300.0) is True  # the old claim has ended
    assert await store.claim("reminder:y", until=400.0, now=300.0) is True


async def test_sqlite_reads_on_the_loop_see_every_write_in_an_awkward_path(tmp_path):
    store = SqliteStore(str(tmp_path / "a dir?#%" / "bot.sqlite3"))
    await store.open()
    for i in range(3):
        await store.put_dialog("u1", {"step": f"s{i}"}, 10.0)
        assert (await store.get_dialog("u1"))["step"] == f"s{i}"
        await store.set_value("k", str(i))
        assert await store.get_value("k") == str(i)
    await store.delete_dialog("u1")
    assert await store.get_dialog("u1") is None
    await store.close()


async def test_a_lease_has_one_holder_until_it_runs_out_or_is_given_back(store):
    # Leases far longer than any pause between these calls on a loaded machine (a 0.3 s lease ran out
    # between two of them in CI): only the one meant to run out is short.
    assert await store.hold("leader", "replica-a", 30) is True
    assert await store.hold("leader", "replica-b", 30) is False  # a's lease runs
    assert await store.hold("leader", "replica-a", 30) is True  # renewed by its holder
    await store.let_go("leader", "replica-b")  # not b's to give back
    assert await store.hold("leader", "replica-b", 30) is False
    assert await store.hold("leader", "replica-a", 0.2) is True  # renewed for 0.2 s only
    await asyncio.sleep(0.6)  # not renewed: it ran out
    assert await store.hold("leader", "replica-b", 30) is True
    assert await store.hold("leader", "replica-a", 30) is False
    await store.let_go("leader", "replica-b")
    assert await store.hold("leader", "replica-a", 30) is True


async def test_a_message_is_claimed_by_one_live_replica_and_marked_handled_after(store):
    """Two phases: the claim holds while its holder is alive (its lease checks refresh that), the mark
    comes only with finish_handling(done=True); a dead holder's claim is void, an unfinished one free."""
    message = f"m-{id(store)}-{time.monotonic_ns()}"
    await store.hold("claims-test", "replica-a", 1.5)  # replica-a is alive for 1.5 s (standby or not)
    assert await store.begin_handling(message, "replica-a") == "new"
    assert await store.begin_handling(message, "replica-b") == "busy"
    assert await store.begin_handling(message, "replica-a") == "busy"  # not twice in one replica either
    await store.finish_handling(message, "replica-a", done=False)  # the reply could not be posted
    assert await store.begin_handling(message, "replica-b") == "new"
    await store.finish_handling(message, "replica-b", done=True)
    assert await store.begin_handling(message, "replica-a") == "done"
    assert await store.mark_seen(message) is False  # the same mark as before the two phases

    dying = message + "-dies"
    assert await store.begin_handling(dying, "replica-a") == "new"
    assert await store.begin_handling(dying, "replica-b") == "busy"
    await asyncio.sleep(1.7)  # replica-a's lease checks stopped: its alive mark runs out with its lease
    await store.hold("claims-test", "replica-b", 30)
    assert await store.begin_handling(dying, "replica-b") == "new"
    await store.finish_handling(dying, "replica-a", done=False)  # a late give-back: b's claim stays
    assert await store.begin_handling(dying, "replica-c") == "busy"  # replica-b has it now
    await store.let_go("claims-test", "replica-b")


async def test_a_claim_of_a_holder_never_seen_alive_is_void_for_others(store):
    message = f"n-{id(store)}-{time.monotonic_ns()}"
    assert await store.begin_handling(message, "ghost") == "new"
    assert await store.begin_handling(message, "other") == "new"
    assert await store.begin_handling(message, "ghost") == "new"  # other's claim: other was never alive
