"""Task-tracker adapters against a faked network (httpx.MockTransport): the requests each one sends,
and how tracker answers and network failures map to retryable or permanent errors."""

import hashlib
import hmac
import json

import httpx
import pytest

from bot.tasks.base import TaskClosing, TaskSpec, TrackerError
from bot.tasks.jira import JiraTracker
from bot.tasks.redmine import RedmineTracker
from bot.tasks.webhook import WebhookTracker, sign

pytestmark = pytest.mark.unit

TOKEN = "jira-pat-0123456789abcdef"
SPEC = TaskSpec(
    17, "Approve the ERP registration of Anna Petrova (Accountant)", "Staff id: 17", "photomatrix-staff-17"
)
CLOSING = TaskClosing(17, "ERP-5", "approved", "Approved by @root through the bot.")


class Net:
    """Records requests; answers from a list of responses (or exceptions) in order."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def body(self, index):
        return json.loads(self.requests[index].content)


def jira(net, **kwargs):
    return JiraTracker(
        "https://jira.example.com/",
        token=TOKEN,
        project="HR",
        issue_type="Task",
        done_transition="Done",
        transport=httpx.MockTransport(net),
        **kwargs,
    )


async def test_jira_open_posts_the_issue_with_bearer_token_and_returns_its_key():
    net = Net(
        httpx.Response(
            201, json={"id": "10002", "key": "HR-7", "self": "https://jira/rest/api/2/issue/10002"}
        )
    )
    tracker = jira(net)
    assert await tracker.open(SPEC, "ev-1") == "HR-7"
    request = net.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://jira.example.com/rest/api/2/issue"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert net.body(0) == {
        "fields": {
            "project": {"key": "HR"},
            "issuetype": {"name": "Task"},
            "summary": SPEC.title,
            "description": SPEC.description,
            "labels": ["photomatrix-onboarding", "photomatrix-staff-17"],
        }
    }
    await tracker.aclose()


async def test_jira_close_comments_then_takes_the_named_transition():
    net = Net(
        httpx.Response(201, json={"id": "1"}),
        httpx.Response(
            200, json={"transitions": [{"id": "11", "name": "In Progress"}, {"id": "31", "name": "done"}]}
        ),
        httpx.Response(204),
    )
    progress: dict = {}
    await jira(net).close(CLOSING, "ev-2", progress)
    assert [(r.method, r.url.path) for r in net.requests] == [
        ("POST", "/rest/api/2/issue/ERP-5/comment"),
        ("GET", "/rest/api/2/issue/ERP-5/transitions"),
        ("POST", "/rest/api/2/issue/ERP-5/transitions"),
    ]
    assert net.body(0) == {"body": CLOSING.comment}
    assert net.body(2) == {"transition": {"id": "31"}}  # matched by name, case-insensitively
    assert progress == {"commented": True}


async def test_jira_transition_found_by_the_status_it_leads_to():
    transitions = [
        {"id": "11", "name": "Start", "to": {"name": "In Progress"}},
        {"id": "51", "name": "Close Issue", "to": {"name": "Done"}},
    ]
    net = Net(httpx.Response(200, json={"transitions": transitions}), httpx.Response(204))
    await jira(net).close(CLOSING, "ev-2", {"commented": True})
    assert net.body(1) == {"transition": {"id": "51"}}


async def test_jira_close_after_a_failed_transition_does_not_comment_twice():
    net = Net(httpx.Response(200, json={"transitions": [{"id": "31", "name": "Done"}]}), httpx.Response(204))
    await jira(net).close(CLOSING, "ev-2", {"commented": True})
    assert [r.url.path for r in net.requests] == ["/rest/api/2/issue/ERP-5/transitions"] * 2


async def test_jira_close_of_an_issue_already_done_succeeds_without_the_transition():
    net = Net(
        httpx.Response(201, json={}),
        httpx.Response(200, json={"transitions": [{"id": "41", "name": "Reopen"}]}),
        httpx.Response(
            200,
            json={
                "key": "ERP-5",
                "fields": {"status": {"name": "Closed", "statusCategory": {"key": "done"}}},
            },
        ),
    )
    await jira(net).close(CLOSING, "ev-2", {})
    assert net.requests[2].url.params["fields"] == "status"


async def test_jira_missing_transition_is_a_permanent_error_naming_what_exists():
    net = Net(
        httpx.Response(201, json={}),
        httpx.Response(200, json={"transitions": [{"id": "41", "name": "Start"}]}),
        httpx.Response(200, json={"fields": {"status": {"statusCategory": {"key": "new"}}}}),
    )
    with pytest.raises(TrackerError) as caught:
        await jira(net).close(CLOSING, "ev-2", {})
    assert not caught.value.retryable
    assert "'Done'" in str(caught.value)
    assert "Start" in str(caught.value)


async def test_jira_find_searches_by_the_staff_label():
    net = Net(
        httpx.Response(200, json={"issues": [{"key": "HR-7"}], "total": 1}),
        httpx.Response(200, json={"issues": []}),
    )
    tracker = jira(net)
    assert await tracker.find(SPEC) == "HR-7"
    assert await tracker.find(SPEC) is None
    params = net.requests[0].url.params
    assert net.requests[0].url.path == "/rest/api/2/search"
    assert params["jql"] == 'project = "HR" AND labels = "photomatrix-staff-17" ORDER BY created ASC'


@pytest.mark.parametrize(
    ("answer", "retryable", "words"),
    [
        (httpx.ConnectError("refused"), True, "ConnectError"),
        (httpx.ReadTimeout("slow"), True, "timeout"),
        (httpx.Response(503, text="<html>down</html>"), True, "HTTP 503"),
        (httpx.Response(429, headers={"Retry-After": "30"}), True, "HTTP 429"),
        (
            httpx.Response(401, json={"errorMessages": ["You are not authenticated"]}),
            True,
            "not authenticated",
        ),
        (
            httpx.Response(400, json={"errorMessages": [], "errors": {"issuetype": "invalid"}}),
            False,
            "issuetype: invalid",
        ),
        (
            httpx.Response(404, json={"errorMessages": ["No project could be found with key 'HR'."]}),
            False,
            "No project",
        ),
        (httpx.Response(200, text="not json"), True, "not JSON"),
        (httpx.Response(201, json={"id": "1"}), True, "no issue key"),
    ],
)
async def test_jira_error_mapping(answer, retryable, words):
    with pytest.raises(TrackerError) as caught:
        await jira(Net(answer)).open(SPEC, "ev-1")
    assert caught.value.retryable is retryable
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value)
    if isinstance(answer, httpx.Response) and answer.status_code == 429:
        assert caught.value.retry_after == 30.0


async def test_redirects_are_not_followed_with_the_token():
    net = Net(httpx.Response(302, headers={"Location": "https://elsewhere.example/"}))
    with pytest.raises(TrackerError) as caught:
        await jira(net).open(SPEC, "ev-1")
    assert "HTTP 302" in str(caught.value)
    assert len(net.requests) == 1


def redmine(net, **kwargs):
    return RedmineTracker(
        "https://redmine.example.com",
        api_key="rm-key-abcdef",
        project="onboarding",
        transport=httpx.MockTransport(net),
        **kwargs,
    )


async def test_redmine_open_and_close():
    net = Net(httpx.Response(201, json={"issue": {"id": 4021, "subject": SPEC.title}}), httpx.Response(204))
    tracker = redmine(net, tracker_id=3, closed_status_id=6)
    assert await tracker.open(SPEC, "ev-1") == "4021"
    progress: dict = {}
    await tracker.close(TaskClosing(17, "4021", "rejected", "Rejected."), "ev-2", progress)
    first, second = net.requests
    assert (first.method, str(first.url)) == ("POST", "https://redmine.example.com/issues.json")
    assert first.headers["X-Redmine-API-Key"] == "rm-key-abcdef"
    assert "Authorization" not in first.headers
    assert net.body(0) == {
        "issue": {
            "project_id": "onboarding",
            "tracker_id": 3,
            "subject": SPEC.title,
            "description": SPEC.description,
        }
    }
    assert (second.method, second.url.path) == ("PUT", "/issues/4021.json")
    assert net.body(1) == {"issue": {"notes": "Rejected.", "status_id": 6}}
    assert progress == {"commented": True}


async def test_redmine_numeric_project_and_validation_errors():
    net = Net(httpx.Response(422, json={"errors": ["Subject cannot be blank"]}))
    tracker = RedmineTracker(
        "https://rm.example", api_key="k" * 20, project="12", transport=httpx.MockTransport(net)
    )
    with pytest.raises(TrackerError) as caught:
        await tracker.open(SPEC, "ev-1")
    assert net.body(0)["issue"]["project_id"] == 12
    assert "tracker_id" not in net.body(0)["issue"]
    assert not caught.value.retryable
    assert "Subject cannot be blank" in str(caught.value)
    assert await tracker.find(SPEC) is None  # Redmine cannot look a lost task up


async def test_webhook_events_are_signed_with_hmac_sha256():
    net = Net(httpx.Response(200, json={"key": "OPS-9"}), httpx.Response(204), httpx.Response(202))
    secret = "whsec-4f1c9a7e2b"
    tracker = WebhookTracker(
        "https://hooks.example.com/tasks",
        secret=secret,
        transport=httpx.MockTransport(net),
        clock=lambda: 1764230400.25,
    )
    assert await tracker.open(SPEC, "ev-1") == "OPS-9"
    await tracker.close(CLOSING, "ev-2", {})
    assert await tracker.open(SPEC, "ev-3") == "webhook-17"  # no key in the answer
    request = net.requests[0]
    assert str(request.url) == "https://hooks.example.com/tasks"
    assert request.headers["X-Photomatrix-Event"] == "task.open"
    assert request.headers["X-Photomatrix-Delivery"] == "ev-1"
    assert request.headers["X-Photomatrix-Timestamp"] == "1764230400"
    assert request.headers["X-Photomatrix-Signature"] == sign(secret, "1764230400", request.content)
    # What a receiver does: recompute over "<timestamp>.<body>" with the shared secret.
    expected = hmac.new(secret.encode(), b"1764230400." + request.content, hashlib.sha256).hexdigest()
    assert request.headers["X-Photomatrix-Signature"] == f"sha256={expected}"
    assert net.body(0) == {
        "event": "task.open",
        "event_id": "ev-1",
        "sent_at": 1764230400.25,
        "staff_id": 17,
        "title": SPEC.title,
        "description": SPEC.description,
    }
    assert net.body(1) | {"sent_at": 0} == {
        "event": "task.close",
        "event_id": "ev-2",
        "sent_at": 0,
        "staff_id": 17,
        "key": "ERP-5",
        "comment": CLOSING.comment,
        "outcome": "approved",
    }
    assert all(secret not in r.content.decode() and secret not in str(r.headers) for r in net.requests)


async def test_webhook_refusal_is_mapped():
    net = Net(httpx.Response(500), httpx.Response(400))
    tracker = WebhookTracker("http://127.0.0.1:9/hook", secret="s" * 16, transport=httpx.MockTransport(net))
    with pytest.raises(TrackerError) as first:
        await tracker.open(SPEC, "ev-1")
    with pytest.raises(TrackerError) as second:
        await tracker.open(SPEC, "ev-1")
    assert first.value.retryable
    assert not second.value.retryable
