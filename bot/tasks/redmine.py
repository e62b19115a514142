"""Redmine through its REST API, authenticated with the `X-Redmine-API-Key` header.

- open:  `POST /issues.json` `{"issue": {project_id, tracker_id?, subject, description}}` → the issue id
- close: `PUT /issues/{id}.json` `{"issue": {"notes": <comment>, "status_id": <closed status>}}`: the
  comment and the status change are one journal entry, so a retry cannot comment twice.

Redmine cannot search issues by a marker of ours, so a created issue whose answer was lost cannot be
found again: see "Task tracker" in docs/bot-admin-guide.md for this residual risk.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.tasks.base import HttpTracker, TaskClosing, TaskSpec, TrackerError, json_body


class RedmineTracker(HttpTracker):
    name = "redmine"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        project: str,
        tracker_id: int | None = None,
        closed_status_id: int = 5,
        timeout: float = 10.0,
        ca_file: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            headers={"X-Redmine-API-Key": api_key},
            timeout=timeout,
            ca_file=ca_file,
            transport=transport,
        )
        self.project, self.tracker_id, self.closed_status_id = project, tracker_id, closed_status_id

    async def open(self, spec: TaskSpec, event_id: str) -> str:
        issue: dict[str, Any] = {
            "project_id": int(self.project) if self.project.isdigit() else self.project,
            "subject": spec.title,
            "description": spec.description,
        }
        if self.tracker_id is not None:
            issue["tracker_id"] = self.tracker_id
        body = json_body(await self.call("POST", "/issues.json", json={"issue": issue}))
        issue_id = (body.get("issue") or {}).get("id")
        if not isinstance(issue_id, int):
            raise TrackerError("POST /issues.json: the answer has no issue id", retryable=True)
        return str(issue_id)

    async def close(self, closing: TaskClosing, event_id: str, progress: dict[str, Any]) -> None:
        key = closing.key
        await self.call(
            "PUT",
            f"/issues/{key}.json",
            json={"issue": {"notes": closing.comment, "status_id": self.closed_status_id}},
        )
        progress["commented"] = True
