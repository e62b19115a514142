"""Alertmanager notifications end to end: the bot as a process posting to the simulator's admins channel."""

import time

import httpx
import pytest

pytestmark = pytest.mark.integration

TOKEN = "integration-alerts-7d41"

PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="ErpAuthFailureBurst"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "chatbot",
    "groupLabels": {"alertname": "ErpAuthFailureBurst"},
    "commonLabels": {"alertname": "ErpAuthFailureBurst", "severity": "warning"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "ErpAuthFailureBurst", "severity": "warning", "job": "erp"},
            "annotations": {"summary": "Many failed ERP API authentications"},
            "startsAt": "2026-11-27T06:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "0f1e2d3c",
        }
    ],
}


def alert_messages(stack):
    room = stack.admin.call("GET", "channels.info", params={"roomName": stack.admins_channel})["channel"][
        "_id"
    ]
    history = stack.admin.call("GET", "channels.history", params={"roomId": room, "count": 200})["messages"]
    return [
        m["msg"]
        for m in history
        if m["u"]["_id"] == stack.bot_user.user_id and "ErpAuthFailureBurst" in m["msg"]
    ]


def test_alert_notifications_reach_the_admins_channel(fresh_bot_stack):
    stack = fresh_bot_stack
    url = f"{stack.bot.http_url}/alerts/alertmanager"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # Without a token configured the feature is off.
    assert httpx.post(url, json=PAYLOAD, headers=auth, timeout=10).status_code == 404

    stack.restart_bot(BOT_ALERTS_TOKEN=TOKEN)
    url = f"{stack.bot.http_url}/alerts/alertmanager"
    refused = httpx.post(url, json=PAYLOAD, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert refused.status_code == 401
    assert httpx.post(url, content=b"{", headers=auth, timeout=10).status_code == 400

    response = httpx.post(url, json=PAYLOAD, headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    (text,) = alert_messages(stack)
    assert text.startswith("🔥 *Оповещение мониторинга*")
    assert "*ErpAuthFailureBurst*: Many failed ERP API authentications" in text

    # The same notification again (Alertmanager's copy to another replica, or a retry): not posted twice.
    again = httpx.post(url, json=PAYLOAD, headers=auth, timeout=10)
    assert again.json() == {"posted": False, "duplicate": True}
    assert len(alert_messages(stack)) == 1

    # Rocket.Chat refuses to post: 503, so Alertmanager retries; nothing half-posted; the retry posts.
    later = PAYLOAD | {"alerts": [PAYLOAD["alerts"][0] | {"startsAt": "2026-11-27T07:00:00Z"}]}
    fault = {"path": "/api/v1/chat.sendMessage", "status": 503, "count": 1}
    stack.rc.control("/faults/error", fault).raise_for_status()
    assert httpx.post(url, json=later, headers=auth, timeout=10).status_code == 503
    assert len(alert_messages(stack)) == 1
    assert httpx.post(url, json=later, headers=auth, timeout=10).status_code == 200
    assert len(alert_messages(stack)) == 2
    resolved = PAYLOAD | {
        "status": "resolved",
        "alerts": [PAYLOAD["alerts"][0] | {"status": "resolved", "endsAt": "2026-11-27T06:10:00Z"}],
    }
    assert httpx.post(url, json=resolved, headers=auth, timeout=10).status_code == 200
    time.sleep(0.2)
    texts = alert_messages(stack)
    assert len(texts) == 3
    assert any("проблема устранена" in t for t in texts)

    metrics = stack.bot.metrics()
    assert 'bot_alerts_received_total{status="firing"} 4.0' in metrics
    assert 'bot_alerts_received_total{status="resolved"} 1.0' in metrics
    assert "bot_alerts_posted_total 3.0" in metrics
    assert "bot_alerts_duplicates_total 1.0" in metrics
    assert "bot_alerts_post_failures_total 1.0" in metrics
    assert 'bot_alerts_rejected_total{reason="unauthorized"} 1.0' in metrics
