"""A stand-in for the company's task tracker: the subset of Jira's REST API v2 the bot uses, as a real
HTTP server on a loopback port (a thread of the test process), with a bearer token. It can be taken
down (the port refuses connections) and brought back on the same port."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from plugins.processes import free_port

TRANSITIONS_OPEN = [{"id": "11", "name": "In Progress"}, {"id": "31", "name": "Done"}]
TRANSITIONS_DONE = [{"id": "41", "name": "Reopen"}]


@dataclass
class Issue:
    key: str
    fields: dict[str, Any]
    comments: list[str] = field(default_factory=list)
    done: bool = False


class StandInJira:
    def __init__(self, project: str = "HR") -> None:
        self.project = project
        self.token = "pat-" + secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issues: dict[str, Issue] = {}
        self.requests: list[tuple[str, str, str]] = []  # method, path, body
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---
    def start(self) -> StandInJira:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-jira", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the API ---
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        with self._lock:
            if path == "/rest/api/2/issue" and method == "POST":
                fields = body["fields"]
                if fields["project"]["key"] != self.project or not fields.get("summary"):
                    return 400, {"errorMessages": [], "errors": {"project": "invalid"}}
                key = f"{self.project}-{len(self.issues) + 1}"
                self.issues[key] = Issue(key, fields)
                return 201, {
                    "id": str(10000 + len(self.issues)),
                    "key": key,
                    "self": f"{self.url}/issue/{key}",
                }
            if path == "/rest/api/2/search" and method == "GET":
                label = re.search(r'labels = "([^"]+)"', query.get("jql", [""])[0])
                found = [
                    i for i in self.issues.values() if label and label.group(1) in i.fields.get("labels", [])
                ]
                return 200, {"total": len(found), "issues": [{"key": i.key} for i in found[:1]]}
            match = re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)(/comment|/transitions)?", path)
            if not match or match.group(1) not in self.issues:
                return 404, {"errorMessages": ["Issue Does Not Exist"], "errors": {}}
            issue, action = self.issues[match.group(1)], match.group(2)
            if action is None and method == "GET":
                category = "done" if issue.done else "new"
                status = {"name": "Done" if issue.done else "To Do", "statusCategory": {"key": category}}
                return 200, {"key": issue.key, "fields": {"status": status}}
            if action == "/comment" and method == "POST":
                issue.comments.append(body["body"])
                return 201, {"id": str(len(issue.comments)), "body": body["body"]}
            if action == "/transitions" and method == "GET":
                return 200, {"transitions": TRANSITIONS_DONE if issue.done else TRANSITIONS_OPEN}
            if action == "/transitions" and method == "POST":
                allowed = TRANSITIONS_DONE if issue.done else TRANSITIONS_OPEN
                wanted = body["transition"]["id"]
                if wanted not in {t["id"] for t in allowed}:
                    return 400, {"errorMessages": [f"Transition id '{wanted}' is not valid for this issue."]}
                issue.done = wanted == "31"
                return 204, None
            return 405, {"errorMessages": ["method not allowed"]}


def _handler(jira: StandInJira) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            jira.requests.append((self.command, url.path, raw))
            if self.headers.get("Authorization") != f"Bearer {jira.token}":
                status, answer = 401, {"errorMessages": ["You are not authenticated."]}
            else:
                try:
                    status, answer = jira.handle(
                        self.command, url.path, parse_qs(url.query), json.loads(raw or "null")
                    )
                except (KeyError, TypeError, ValueError):
                    status, answer = 400, {"errorMessages": ["malformed request"]}
            payload = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stand_in_jira() -> Iterator[StandInJira]:
    jira = StandInJira().start()
    yield jira
    jira.stop()
