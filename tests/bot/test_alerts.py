"""The Alertmanager receiver over ASGI with a fake chat: auth, bad input, formatting, Rocket.Chat down."""

import copy

import httpx
import pytest
from plugins.bot import FakeChat
from starlette.applications import Starlette

from bot import metrics
from bot.alerts import ALERTS_PATH, MAX_BODY_BYTES, AlertsReceiver
from bot.transport.rest import RestError

pytestmark = pytest.mark.unit

TOKEN = "alerts-token-9f2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def alert(name="ErpAuthFailureBurst", status="firing", severity="critical", **labels):
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, "job": "erp", **labels},
        "annotations": {
            "summary": f"{name} summary",
            "description": f"{name} description",
        },
        "startsAt": "2026-11-27T06:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "a1b2c3",
    }


def notification(*alerts, status="firing"):
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ErpAuthFailureBurst"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "chatbot",
        "groupLabels": {"alertname": "ErpAuthFailureBurst"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts) or [alert()],
    }


class BrokenChat(FakeChat):
    async def send_to_channel(self, channel, text):
        raise RestError(502, "bad gateway")


def client(chat, lang="en", max_lines=10):
    receiver = AlertsReceiver(
        chat=chat, admins_channel="erp-admins", token=TOKEN, language=lang, max_lines=max_lines
    )
    app = Starlette(routes=receiver.routes())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")


def counter(metric, *labels):
    return (metric.labels(*labels) if labels else metric)._value.get()


async def test_a_firing_alert_becomes_one_message_in_the_admins_channel():
    chat = FakeChat()
    posted, received = counter(metrics.ALERTS_POSTED), counter(metrics.ALERTS_RECEIVED, "firing")
    async with client(chat) as http:
        response = await http.post(ALERTS_PATH, json=notification(alert(instance="erp:8000")), headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"posted": True, "alerts": 1}
    (text,) = chat.texts("#erp-admins")
    assert "firing: 1" in text
    assert "FIRING [critical] *ErpAuthFailureBurst*: ErpAuthFailureBurst summary" in text
    assert "ErpAuthFailureBurst description" in text
    assert "instance=erp:8000, job=erp" in text
    assert "alertname=" not in text  # already the line's name
    assert counter(metrics.ALERTS_POSTED) == posted + 1
    assert counter(metrics.ALERTS_RECEIVED, "firing") == received + 1


async def test_resolved_notification_in_russian():
    chat = FakeChat()
    body = notification(alert(status="resolved"), status="resolved")
    async with client(chat, lang="ru") as http:
        assert (await http.post(ALERTS_PATH, json=body, headers=AUTH)).status_code == 200
    (text,) = chat.texts("#erp-admins")
    assert text.startswith("✅ *Мониторинг: проблема устранена*")
    assert "• снято [critical] *ErpAuthFailureBurst*" in text


async def test_many_alerts_are_cut_and_firing_ones_come_first():
    chat = FakeChat()
    alerts = [alert(f"Resolved{i}", status="resolved") for i in range(3)]
    alerts += [alert(f"Firing{i}") for i in range(12)]
    async with client(chat, max_lines=5) as http:
        assert (await http.post(ALERTS_PATH, json=notification(*alerts), headers=AUTH)).status_code == 200
    (text,) = chat.texts("#erp-admins")
    lines = text.splitlines()
    assert "firing: 12, resolved: 3" in lines[0]
    assert len(lines) == 1 + 5 + 1
    assert all("FIRING" in line for line in lines[1:6])
    assert lines[-1] == "… and 10 more"


async def test_mentions_in_labels_are_neutralised_and_long_lines_cut():
    chat = FakeChat()
    noisy = alert(team="@all", zz_note="x" * 2000)
    async with client(chat) as http:
        assert (await http.post(ALERTS_PATH, json=notification(noisy), headers=AUTH)).status_code == 200
    (text,) = chat.texts("#erp-admins")
    assert "@all" not in text
    assert "@\u200ball" in text
    assert max(len(line) for line in text.splitlines()) <= 400


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
)
async def test_a_wrong_or_missing_token_is_401_and_posts_nothing(headers):
    chat = FakeChat()
    before = counter(metrics.ALERTS_REJECTED, "unauthorized")
    async with client(chat) as http:
        response = await http.post(ALERTS_PATH, json=notification(), headers=headers)
    assert response.status_code == 401
    assert TOKEN not in response.text
    assert chat.sent == []
    assert counter(metrics.ALERTS_REJECTED, "unauthorized") == before + 1


def _without(key):
    body = notification()
    del body[key]
    return body


def _bad_alert(**changes):
    body = notification()
    body["alerts"] = [copy.deepcopy(body["alerts"][0]) | changes]
    return body


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (_without("status"), "status"),
        (_without("alerts"), "alerts"),
        (notification() | {"alerts": []}, "alerts"),
        (notification() | {"status": "exploded"}, "status"),
        (_bad_alert(status="pending"), "alerts.0.status"),
        (_bad_alert(labels="alertname=x"), "alerts.0.labels"),
        (_bad_alert(labels={"alertname": 5}), "alerts.0.labels.alertname"),
    ],
)
async def test_bad_input_is_400_with_the_field_named(content, field):
    chat = FakeChat()
    async with client(chat) as http:
        if isinstance(content, bytes):
            response = await http.post(
                ALERTS_PATH, content=content, headers=AUTH | {"Content-Type": "application/json"}
            )
        else:
            response = await http.post(ALERTS_PATH, json=content, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("not an Alertmanager notification")
    if field != "body":
        assert f": {field}:" in error
    assert chat.sent == []


async def test_an_oversized_body_is_413_without_reading_it_all():
    chat = FakeChat()
    async with client(chat) as http:
        response = await http.post(ALERTS_PATH, content=b"x" * (MAX_BODY_BYTES + 1), headers=AUTH)
        assert response.status_code == 413

        async def chunks():
            for _ in range(MAX_BODY_BYTES // 1024 + 2):
                yield b" " * 1024

        streamed = await http.post(ALERTS_PATH, content=chunks(), headers=AUTH)  # no Content-Length
        assert streamed.status_code == 413
    assert chat.sent == []


async def test_rocketchat_down_is_503_so_alertmanager_retries():
    before = counter(metrics.ALERTS_POST_FAILURES)
    async with client(BrokenChat()) as http:
        response = await http.post(ALERTS_PATH, json=notification(), headers=AUTH)
    assert response.status_code == 503
    assert "retry" in response.json()["error"]
    assert counter(metrics.ALERTS_POST_FAILURES) == before + 1


async def test_get_is_not_allowed():
    async with client(FakeChat()) as http:
        assert (await http.get(ALERTS_PATH, headers=AUTH)).status_code == 405
