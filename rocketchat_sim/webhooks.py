"""Integrations at work: incoming webhooks (/hooks/<id>/<token>) and outgoing webhook POSTs.

Outgoing payloads, trigger selection, reply handling and retries follow Rocket.Chat's
triggerHandler.ts / processWebhookMessage.ts (facts.md §4). Every POST has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import certifi
import httpx
from starlette.requests import Request
from starlette.responses import Response

from . import views
from .errors import ApiError, meteor_error, not_logged_in
from .rest.base import json_response
from .rest.chat import message_fields, resolve_channel
from .util import iso, new_id, now_ms

if TYPE_CHECKING:
    from .app import Simulator

log = logging.getLogger("rocketchat_sim.webhooks")

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2227.0 Safari/537.36"
)
_JSON_TYPES = ("application/json", "text/javascript", "application/javascript", "application/x-javascript")
_RETRY_DELAYS = {
    "powers-of-ten": lambda n: 0.1 * 10**n,
    "powers-of-two": lambda n: 2.0 ** (n + 1),
    "increments-of-two": lambda n: 2.0 * (n + 1),
}


def node_trust(extra_ca_file: str) -> ssl.SSLContext:
    """What Node.js (Rocket.Chat's fetch) verifies an outgoing HTTPS call against: its well-known roots
    (Mozilla's list, which certifi carries too) plus the PEM file named by NODE_EXTRA_CA_CERTS. Like Node,
    a file that is missing or malformed is reported once and otherwise ignored: the call then verifies
    against the well-known roots alone, and a server with a certificate from another CA is refused."""
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca_file:
        try:
            context.load_verify_locations(cafile=extra_ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning(
                "NODE_EXTRA_CA_CERTS %s not loaded (%s): only the well-known roots are trusted",
                extra_ca_file,
                type(exc).__name__,
            )
    return context


def _failure(exc: httpx.HTTPError) -> str:
    """The reason a POST failed, for the log: a refused certificate is said so (Node's fetch fails the
    same way: the delivery is recorded as an HTTP error and not retried)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"{type(exc).__name__}: TLS certificate verification failed ({cause.verify_message})"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def post_as_integration(
    sim: Simulator, integration: dict[str, Any], data: dict[str, Any], default_room: dict[str, Any] | None
) -> dict[str, Any]:
    """processWebhookMessage: a message from the integration's user, marked bot: {i: <integration id>}."""
    user = sim.state.users.get(integration["userId"])
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user")
    fields = message_fields(
        {
            "text": data.get("text", data.get("msg", "")),
            "attachments": data.get("attachments"),
            "alias": data.get("alias") or data.get("username") or integration.get("alias"),
            "emoji": data.get("emoji") or data.get("icon_emoji") or integration.get("emoji"),
            "avatar": data.get("avatar") or data.get("icon_url") or integration.get("avatar"),
            "tmid": data.get("tmid"),
            "customFields": data.get("customFields"),
            "groupable": data.get("groupable", False),
        }
    )
    fields["parseUrls"] = bool(data.get("parseUrls", not data.get("attachments")))
    fields["bot"] = {"i": integration["_id"]}
    target = data.get("roomId") or data.get("channel")
    if target:
        refs = target if isinstance(target, list) else [target]
        rooms = [resolve_channel(sim.workspace, user, str(ref)) for ref in refs]
    elif default_room is not None:
        rooms = [default_room]
    else:
        rooms = [resolve_channel(sim.workspace, user, ref) for ref in integration.get("channel", [])]
    if not rooms:
        raise meteor_error("invalid-channel")
    message = None
    for room in rooms:
        # The integration's user posts where it is configured to, member or not (Rocket.Chat does the same).
        if room["t"] != "d" and (room["_id"], user["_id"]) not in sim.state.subscriptions:
            sim.workspace.add_member(room, user)
        message = sim.workspace.send_message(user, room, dict(fields))
    if message is None:
        raise meteor_error("invalid-channel")
    return message


async def incoming_hook(sim: Simulator, request: Request) -> Response:
    integration_id = request.path_params["integration_id"]
    token = unquote(request.path_params["token"].split("/")[-1])
    integration = sim.state.integrations.get(integration_id)
    if integration is None or integration["type"] != "webhook-incoming" or integration.get("token") != token:
        return _error(not_logged_in())
    headers: dict[str, str] = {}
    try:
        settings = sim.workspace.settings
        if sim.ratelimiter.enabled(settings):
            client = request.client.host if request.client else "unknown"
            headers = sim.ratelimiter.check(settings, client, "POST/hooks")
        if not integration.get("enabled"):
            return json_response(503, {"success": False, "error": "Service Unavailable"}, headers)
        data = await _hook_body(request)
        if not data:
            return json_response(200, {"success": True}, headers)
        if (data.get("channel") or data.get("roomId")) and not integration.get(
            "overrideDestinationChannelEnabled"
        ):
            return json_response(
                400,
                {
                    "success": False,
                    "error": "overriding destination channel is disabled for this integration",
                },
                headers,
            )
        message = post_as_integration(sim, integration, data, None)
        if data.get("separateResponse"):
            room = sim.state.rooms[message["rid"]]
            body = {
                "success": True,
                "responses": [
                    {"channel": room.get("name") or room["_id"], "message": views.message_rest(message)}
                ],
            }
            return json_response(200, body, headers)
        return json_response(200, {"success": True}, headers)
    except ApiError as exc:
        error = exc.body.get("errorType") or exc.body.get("error") or "unknown-error"
        return json_response(exc.status, {"success": False, "error": error}, {**headers, **exc.headers})
    except Exception:
        log.exception("incoming webhook %s failed", integration_id)
        return json_response(500, {"success": False, "error": "Internal server error"}, headers)


def _origin(url: str) -> str:
    """scheme://host:port only: webhook URLs may carry credentials in their path or query."""
    parts = urlsplit(url)
    return (
        f"{parts.scheme}://{parts.hostname}:{parts.port}"
        if parts.port
        else f"{parts.scheme}://{parts.hostname}"
    )


def _error(exc: ApiError) -> Response:
    return json_response(exc.status, exc.body, exc.headers)


async def _hook_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        form = parse_qs(raw.decode(errors="replace"))
        raw = form.get("payload", [""])[0].encode()
        if not raw:
            return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, {"success": False, "error": "unknown-error"}) from None
    if not isinstance(data, dict):
        raise ApiError(400, {"success": False, "error": "unknown-error"})
    return data


class OutgoingWebhooks:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _outgoing(self, event: str) -> list[dict[str, Any]]:
        return [
            i
            for i in self.sim.state.integrations.values()
            if i["type"] == "webhook-outgoing" and i.get("enabled") and i.get("event") == event
        ]

    @staticmethod
    def _matches_room(integration: dict[str, Any], room: dict[str, Any], sender: str | None) -> bool:
        channels = integration.get("channel") or []
        if not channels:
            return room["t"] == "c"
        if room["t"] == "d":
            names = {"all_direct_messages"}
            for uid, username in zip(room.get("uids", []), room.get("usernames", []), strict=False):
                if username != sender:
                    names.update({f"@{uid}", f"@{username}"})
        elif room["t"] == "c":
            names = {"all_public_channels", f"#{room['_id']}", f"#{room.get('name')}"}
        else:
            names = {"all_private_groups", f"#{room['_id']}", f"#{room.get('name')}"}
        return not names.isdisjoint(channels)

    def message_saved(self, room: dict[str, Any], msg: dict[str, Any], *, edited: bool) -> None:
        integrations = self._outgoing("sendMessage")
        if not integrations or msg.get("t"):
            return
        for integration in integrations:
            if edited and not integration.get("runOnEdits"):
                continue
            if msg.get("bot", {}).get("i") == integration["_id"]:
                continue  # never feed an integration its own replies
            if not self._matches_room(integration, room, msg["u"]["username"]):
                continue
            trigger_word = None
            words = integration.get("triggerWords") or []
            if words:
                text = msg.get("msg", "")
                anywhere = integration.get("triggerWordAnywhere")
                trigger_word = next(
                    (w for w in words if (w in text if anywhere else text.startswith(w))), None
                )
                if trigger_word is None:
                    continue
            data: dict[str, Any] = {
                "token": integration["token"],
                "bot": bool(msg.get("bot")),
                "channel_id": room["_id"],
                "channel_name": room.get("name"),
                "message_id": msg["_id"],
                "timestamp": iso(msg["ts"]),
                "user_id": msg["u"]["_id"],
                "user_name": msg["u"]["username"],
                "text": msg.get("msg", ""),
                "siteUrl": self.sim.workspace.settings.get("Site_Url"),
            }
            if data["channel_name"] is None:
                del data["channel_name"]
            if trigger_word is not None:
                data["trigger_word"] = trigger_word
            if msg.get("alias"):
                data["alias"] = msg["alias"]
            if msg.get("editedAt"):
                data["isEdited"] = True
            if msg.get("tmid"):
                data["tmid"] = msg["tmid"]
            self._spawn(integration, data, room)

    def room_event(self, event: str, room: dict[str, Any], user: dict[str, Any]) -> None:
        for integration in self._outgoing(event):
            if event != "roomCreated" and not self._matches_room(integration, room, None):
                continue
            data = {
                "token": integration["token"],
                "bot": False,
                "timestamp": iso(now_ms()),
                "owner": views.user_rest(user, full=False),
                "room": views.room_rest(room),
                "siteUrl": self.sim.workspace.settings.get("Site_Url"),
            }
            self._spawn(integration, data, None)

    def user_created(self, user: dict[str, Any]) -> None:
        for integration in self._outgoing("userCreated"):
            data = {
                "token": integration["token"],
                "bot": False,
                "user": views.user_rest(user, full=True),
                "siteUrl": self.sim.workspace.settings.get("Site_Url"),
            }
            self._spawn(integration, data, None)

    def _spawn(self, integration: dict[str, Any], data: dict[str, Any], room: dict[str, Any] | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # bootstrap, before the server runs: nothing listens yet
        task = loop.create_task(self._deliver(integration, data, room))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, integration: dict[str, Any], data: dict[str, Any], room: dict[str, Any] | None
    ) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.sim.config.SIM_WEBHOOK_TIMEOUT,
                verify=node_trust(self.sim.config.NODE_EXTRA_CA_CERTS),
            )
        # Rocket.Chat's executeTriggerUrl starts the POST to a URL and goes on to the next without
        # waiting for its answer, and schedules a retry with a timer: a URL that is down or slow delays
        # no other URL of the integration (several replicas behind one outgoing webhook).
        await asyncio.gather(*(self._deliver_to(integration, data, room, url) for url in integration["urls"]))

    async def _deliver_to(
        self, integration: dict[str, Any], data: dict[str, Any], room: dict[str, Any] | None, url: str
    ) -> None:
        attempt = 0
        record = self._history(integration, data, url)
        while True:
            response = None
            try:
                response = await self._client.post(
                    url, json=data, headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                log.warning(
                    "outgoing webhook %s to %s failed: %s",
                    integration["name"],
                    _origin(url),
                    _failure(exc),
                )
            record["_updatedAt"] = now_ms()
            if response is None:
                # Rocket.Chat records a failed request (fetch's catch) and does not retry it.
                record.update(step="after-http-error", httpError={"name": "RequestError"}, finished=True)
                return
            record.update(step="after-process-http-status", httpResult={"statusCode": response.status_code})
            if response.status_code in (200, 201, 202):
                record["finished"] = True
                self._handle_reply(integration, response, room)
                return
            if response.status_code == 410:
                integration["enabled"] = False
                self.sim.state.mark_dirty()
                log.warning(
                    "outgoing webhook %s disabled: %s answered 410", integration["name"], _origin(url)
                )
                return
            if response.status_code == 500 and response.content:
                return  # logged by Rocket.Chat, never retried (an empty 500 is retried like other failures)
            if not integration.get("retryFailedCalls") or attempt >= int(integration.get("retryCount", 6)):
                return
            delay = _RETRY_DELAYS.get(
                integration.get("retryDelay", "powers-of-ten"), _RETRY_DELAYS["powers-of-ten"]
            )
            await asyncio.sleep(delay(attempt))
            attempt += 1
            if not integration.get("enabled"):
                return  # Rocket.Chat checks the trigger is still enabled before each try

    def _history(self, integration: dict[str, Any], data: dict[str, Any], url: str) -> dict[str, Any]:
        """integrations.history: one record per delivery; the integration's token is never stored."""
        now = now_ms()
        record = {
            "_id": new_id(),
            "type": "outgoing-webhook",
            "step": "start-execute-trigger",
            "integration": {"_id": integration["_id"]},
            "event": integration.get("event"),
            "_createdAt": now,
            "_updatedAt": now,
            "url": url,
            "data": {k: v for k, v in data.items() if k != "token"},
            "finished": False,
            "ranPrepareScript": False,
        }
        if data.get("trigger_word"):
            record["triggerWord"] = data["trigger_word"]
        history = self.sim.state.integration_history
        history.append(record)
        if len(history) > 1000:  # bounded, like the rest of the in-memory state
            del history[:100]
        return record

    def replay(self, integration: dict[str, Any], record: dict[str, Any]) -> None:
        data = {**record.get("data", {}), "token": integration["token"]}
        room = self.sim.state.rooms.get(data.get("channel_id") or "")
        self._spawn(integration, data, room)

    def _handle_reply(
        self, integration: dict[str, Any], response: httpx.Response, room: dict[str, Any] | None
    ) -> None:
        ctype = response.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in _JSON_TYPES or not response.content:
            return
        try:
            reply = response.json()
        except ValueError:
            return
        if not isinstance(reply, dict) or not (reply.get("text") or reply.get("attachments")):
            return
        target = room
        if integration.get("targetRoom"):
            target = None
            reply.setdefault("channel", integration["targetRoom"])
        try:
            post_as_integration(self.sim, integration, reply, target)
        except ApiError as exc:
            log.warning("outgoing webhook %s reply not posted: %s", integration["name"], exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()
