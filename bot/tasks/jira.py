"""Jira (Server / Data Center) through REST API v2, authenticated with a personal access token.

- open:  `POST /rest/api/2/issue` with project, issue type, summary, description and labels
- find:  `GET /rest/api/2/search` by the per-staff label (used only when an earlier attempt's answer was lost)
- close: `POST /rest/api/2/issue/{key}/comment`, then `GET /rest/api/2/issue/{key}/transitions` and
  `POST` the transition named by the settings (e.g. "Done"; a transition leading to a status of that
  name also matches). A task someone already moved to a done status counts as closed.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.tasks.base import HttpTracker, TaskClosing, TaskSpec, TrackerError, json_body

API = "/rest/api/2"
COMMON_LABEL = "photomatrix-onboarding"


class JiraTracker(HttpTracker):
    name = "jira"

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        project: str,
        issue_type: str = "Task",
        done_transition: str = "Done",
        timeout: float = 10.0,
        ca_file: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            ca_file=ca_file,
            transport=transport,
        )
        self.project, self.issue_type, self.done_transition = project, issue_type, done_transition

    async def open(self, spec: TaskSpec, event_id: str) -> str:
        fields = {
            "project": {"key": self.project},
            "issuetype": {"name": self.issue_type},
            "summary": spec.title,
            "description": spec.description,
            "labels": [COMMON_LABEL, spec.label],
        }
        body = json_body(await self.call("POST", f"{API}/issue", json={"fields": fields}))
        key = body.get("key")
        if not isinstance(key, str) or not key:
            raise TrackerError("POST /issue: the answer has no issue key", retryable=True)
        return key

    async def find(self, spec: TaskSpec) -> str | None:
        project = self.project.replace("\\", "\\\\").replace('"', '\\"')
        jql = f'project = "{project}" AND labels = "{spec.label}" ORDER BY created ASC'
        response = await self.call(
            "GET", f"{API}/search", params={"jql": jql, "fields": "key", "maxResults": "1"}
        )
        issues = json_body(response).get("issues") or []
        return (
            str(issues[0]["key"]) if issues and isinstance(issues[0], dict) and issues[0].get("key") else None
        )

    async def close(self, closing: TaskClosing, event_id: str, progress: dict[str, Any]) -> None:
        key = closing.key
        if not progress.get("commented"):
            await self.call("POST", f"{API}/issue/{key}/comment", json={"body": closing.comment})
            progress["commented"] = True
        transitions = json_body(await self.call("GET", f"{API}/issue/{key}/transitions")).get("transitions")
        wanted = self.done_transition.casefold()
        # By the transition's own name, or else by the status it leads to (workflows name them differently).
        candidates = [t for t in transitions or [] if isinstance(t, dict)]
        match = next((t for t in candidates if str(t.get("name", "")).casefold() == wanted), None) or next(
            (t for t in candidates if str((t.get("to") or {}).get("name", "")).casefold() == wanted), None
        )
        if match is None:
            if await self._is_done(key):
                return  # closed already (by a person, or by an attempt whose answer was lost)
            names = ", ".join(str(t.get("name")) for t in candidates)
            raise TrackerError(
                f"{key}: no transition named {self.done_transition!r} (available: {names or 'none'})",
                retryable=False,
            )
        await self.call("POST", f"{API}/issue/{key}/transitions", json={"transition": {"id": match["id"]}})

    async def _is_done(self, key: str) -> bool:
        body = json_body(await self.call("GET", f"{API}/issue/{key}", params={"fields": "status"}))
        status = (body.get("fields") or {}).get("status") or {}
        return (status.get("statusCategory") or {}).get("key") == "done"
