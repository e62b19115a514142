"""Alertmanager notifies every bot replica (one webhook_config each): with two replicas on one Redis the
admins channel gets each notification once, whichever replica leads, and still after the leader died.

Real processes: the simulator, the ERP, redis-server and two bots; notifications sent like Alertmanager
sends them, to both replicas at once.
"""

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from plugins.bot import start_bot, start_bot_stack

pytestmark = pytest.mark.integration

TOKEN = "failover-alerts-5e2a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def notification(name: str, starts: str) -> dict:
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "receiver": "chatbot",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": name, "severity": "critical", "job": "bot"},
                "annotations": {"summary": f"{name} summary"},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"{name}-fp",
            }
        ],
    }


def to_every_replica(bots, body) -> list[int | None]:
    """Like Alertmanager: one POST per webhook_config, in parallel; None where the replica is gone."""

    def send(bot) -> int | None:
        try:
            return httpx.post(
                f"{bot.http_url}/alerts/alertmanager", json=body, headers=AUTH, timeout=40
            ).status_code
        except httpx.TransportError:
            return None

    with ThreadPoolExecutor(len(bots)) as pool:
        return list(pool.map(send, bots))


def posted(stack, name: str) -> list[str]:
    room = stack.admin.call("GET", "channels.info", params={"roomName": stack.admins_channel})["channel"][
        "_id"
    ]
    history = stack.admin.call("GET", "channels.history", params={"roomId": room, "count": 200})["messages"]
    return [m["msg"] for m in history if m["u"]["_id"] == stack.bot_user.user_id and name in m["msg"]]


def leads(bot) -> bool:
    return bool(bot.ready().json()["leader"])


def test_each_notification_is_posted_once_whichever_replica_leads(redis_url, tmp_path):
    state_url = redis_url.rsplit("/", 1)[0] + "/9"  # a database of its own: the lease is this test's
    env = {"BOT_STATE_URL": state_url, "BOT_LEASE_SECONDS": "6", "BOT_ALERTS_TOKEN": TOKEN}
    stack = start_bot_stack(tmp_path, bot_env=env)
    other = None
    try:
        other = start_bot(
            rocketchat_url=stack.rocketchat_url,
            erp_url=stack.erp.base_url,
            erp_key=stack.erp.admin_key,
            bot_user=stack.bot_user,
            state_dir=tmp_path / "replica-2",
            name="bot-replica-2",
            extra_env={"BOT_ADMINS_CHANNEL": stack.admins_channel, **env},
        )
        first, second = stack.bot, other
        assert leads(first)
        assert not leads(second)

        # Both replicas get it at once: one message.
        assert to_every_replica([first, second], notification("DiskAlmostFull", "2026-12-02T10:00:00Z")) == [
            200,
            200,
        ]
        time.sleep(0.5)
        assert len(posted(stack, "DiskAlmostFull")) == 1
        # Alertmanager's retry to either replica does not post it again.
        assert to_every_replica([second], notification("DiskAlmostFull", "2026-12-02T10:00:00Z")) == [200]
        # Only the standby reachable (the leader's network down, say): the standby posts it.
        assert to_every_replica([second], notification("QueueStuck", "2026-12-02T10:05:00Z")) == [200]
        time.sleep(0.5)
        assert len(posted(stack, "DiskAlmostFull")) == 1
        assert len(posted(stack, "QueueStuck")) == 1

        # The leader dies (no clean stop): the next notification, sent to both, is posted by the other
        # one at once, before its lease ran out and it took over.
        first.process.stop(signal.SIGKILL)
        started = time.monotonic()
        results = to_every_replica([first, second], notification("ChatbotDown", "2026-12-02T10:10:00Z"))
        took = time.monotonic() - started
        assert results == [None, 200]
        assert took < 5, f"the live replica answered after {took:.1f} s"
        time.sleep(0.5)
        assert len(posted(stack, "ChatbotDown")) == 1
        # The retry at least was answered from the store (the race of the first copies is either's).
        (line,) = [x for x in second.metrics().splitlines() if x.startswith("bot_alerts_duplicates_total ")]
        assert float(line.split()[1]) >= 1
    finally:
        if other is not None:
            other.stop()
        stack.stop()
