"""Rocket.Chat's Prometheus exporter: `GET /metrics` on its own port when `Prometheus_Enabled` is true.

As apps/meteor/app/metrics/server/lib/collectMetrics.ts serves it: an HTTP server on
`BIND_IP:(PROMETHEUS_PORT || Prometheus_Port)`, `/metrics` (any method, and paths under it) answers the
text exposition with `Content-Type: text/plain`, every other path answers a small HTML index page.
Metric names are those of its metrics.ts. Rocket.Chat copies the workspace counts every 5 s from its last
saved statistics (saved at start, daily and by `statistics?refresh=true`); the simulator counts its state
at scrape time, as its `statistics` endpoint does, so a scrape always shows the state of that moment.

`workspace_counts` is shared with the `statistics` endpoint: one pass over users, rooms and DDP
connections (milliseconds for thousands of users), on the event loop like every other request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Simulator

log = logging.getLogger("rocketchat_sim.metrics")

CONTENT_TYPE = "text/plain"  # what collectMetrics.ts sets, not prom-client's versioned content type

INDEX_HTML = (
    "<html><head><title>Rocket.Chat Prometheus Exporter</title></head><body>"
    '<h1>Rocket.Chat Prometheus Exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>'
)


def exporter_port(sim: Simulator) -> int | None:
    """The port to serve on when `Prometheus_Enabled` is true at start, else None.

    `PROMETHEUS_PORT` (env) wins over the `Prometheus_Port` setting, as in Rocket.Chat.
    """
    if sim.workspace.settings.get("Prometheus_Enabled") is not True:
        return None
    port = sim.config.PROMETHEUS_PORT or sim.workspace.settings.get("Prometheus_Port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        log.error("Prometheus_Enabled is true but the port %r is not a TCP port; no exporter", port)
        return None
    return port


def workspace_counts(sim: Simulator) -> dict[str, int]:
    """The user, room and message counts of Rocket.Chat's statistics (statistics.ts), from the state.

    Online means a DDP connection logged in as the user (the simulator's presence); messages are the
    rooms' `msgs` counters by room type, discussions apart, as statistics.ts adds them up.
    """
    online_ids = {c.user_id for c in sim.realtime.connections if c.user_id}
    total = active = guests = inactive = apps = online = 0
    for user in sim.state.users.values():
        total += 1
        is_active = user.get("active", True)
        if is_active and user.get("type") != "bot":
            active += 1
        if not is_active:
            inactive += 1
        if "guest" in user.get("roles", ()):
            guests += 1
        if user.get("type") == "app":
            apps += 1
        if user["_id"] in online_ids:
            online += 1
    rooms = {"c": 0, "p": 0, "d": 0, "l": 0}
    msgs = {"c": 0, "p": 0, "d": 0, "l": 0, "discussions": 0}
    for room in sim.state.rooms.values():
        kind = room.get("t")
        if kind not in rooms:
            continue
        rooms[kind] += 1
        count = room.get("msgs", 0)
        msgs["discussions" if room.get("prid") and kind in ("c", "p") else kind] += count
    return {
        "totalUsers": total,
        "activeUsers": active,
        "activeGuests": guests,
        "nonActiveUsers": inactive,
        "appUsers": apps,
        "onlineUsers": online,
        "awayUsers": 0,
        "busyUsers": 0,
        "offlineUsers": total - online,
        "totalRooms": len(sim.state.rooms),
        "totalChannels": rooms["c"],
        "totalPrivateGroups": rooms["p"],
        "totalDirect": rooms["d"],
        "totalLivechat": rooms["l"],
        "totalChannelMessages": msgs["c"],
        "totalPrivateGroupMessages": msgs["p"],
        "totalDiscussionsMessages": msgs["discussions"],
        "totalDirectMessages": msgs["d"],
        "totalLivechatMessages": msgs["l"],
        "totalMessages": sum(msgs.values()),
    }


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, Any], int]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
    return "\n".join(lines)


# (metric name, statistics field, help): the gauges Rocket.Chat sets from its statistics
_COUNT_GAUGES = (
    ("rocketchat_users_total", "totalUsers", "users in the workspace"),
    ("rocketchat_users_active", "activeUsers", "active users, bots excluded"),
    ("rocketchat_users_non_active", "nonActiveUsers", "deactivated users"),
    ("rocketchat_users_online", "onlineUsers", "users online"),
    ("rocketchat_users_away", "awayUsers", "users away"),
    ("rocketchat_users_offline", "offlineUsers", "users offline"),
    ("rocketchat_rooms_total", "totalRooms", "rooms of every type"),
    ("rocketchat_channels_total", "totalChannels", "public channels"),
    ("rocketchat_private_groups_total", "totalPrivateGroups", "private groups"),
    ("rocketchat_direct_total", "totalDirect", "direct message rooms"),
    ("rocketchat_livechat_total", "totalLivechat", "omnichannel rooms"),
    ("rocketchat_messages_total", "totalMessages", "messages in all rooms"),
    ("rocketchat_channel_messages_total", "totalChannelMessages", "messages in public channels"),
    ("rocketchat_private_group_messages_total", "totalPrivateGroupMessages", "messages in private groups"),
    ("rocketchat_direct_messages_total", "totalDirectMessages", "messages in direct rooms"),
    ("rocketchat_livechat_messages_total", "totalLivechatMessages", "messages in omnichannel rooms"),
)


class Exporter:
    """The exporter's HTTP app (plain ASGI): `/metrics` and the index page, nothing else."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.requests = 0  # rocketchat_metrics_requests: counted after each response is built
        self.last_size = 0  # rocketchat_metrics_size: the previous response's length

    def render(self) -> str:
        sim = self.sim
        settings = sim.workspace.settings
        version = sim.config.SIM_VERSION
        sessions = [c for c in sim.realtime.connections if c.connected and not c.closed]
        authenticated = [c for c in sessions if c.user_id]
        counts = workspace_counts(sim)
        families = [
            _family(
                "rocketchat_metrics_requests",
                "counter",
                "scrapes of this endpoint",
                [({}, self.requests)] if self.requests else [],
            ),
            _family(
                "rocketchat_metrics_size", "gauge", "characters in the last response", [({}, self.last_size)]
            ),
            _family(
                "rocketchat_info",
                "gauge",
                "Rocket.Chat server information",
                [
                    (
                        {
                            "version": version,
                            "unique_id": settings.get("uniqueID") or "",
                            "site_url": settings.get("Site_Url") or "",
                        },
                        1,
                    )
                ],
            ),
            _family("rocketchat_version", "gauge", "Rocket.Chat version", [({"version": version}, 1)]),
            _family("rocketchat_instance_count", "gauge", "server instances", [({}, 1)]),
            _family("rocketchat_ddp_sessions_count", "gauge", "open DDP sessions", [({}, len(sessions))]),
            _family(
                "rocketchat_ddp_sessions_auth", "gauge", "logged-in DDP sessions", [({}, len(authenticated))]
            ),
            _family(
                "rocketchat_ddp_connected_users",
                "gauge",
                "distinct users with a logged-in DDP session",
                [({}, len({c.user_id for c in authenticated}))],
            ),
            _family("rocketchat_apps_installed", "gauge", "installed apps", [({}, 0)]),
            _family("rocketchat_apps_enabled", "gauge", "enabled apps", [({}, 0)]),
            _family("rocketchat_apps_failed", "gauge", "apps that failed to load", [({}, 0)]),
        ]
        families += [
            _family(name, "gauge", text, [({}, counts[field])]) for name, field, text in _COUNT_GAUGES
        ]
        return "\n\n".join(families) + "\n"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers: list[tuple[bytes, bytes]]
        if _is_metrics_path(scope.get("path", "")):
            text = self.render()
            self.requests += 1
            self.last_size = len(text)
            body = text.encode()
            headers = [(b"content-type", CONTENT_TYPE.encode())]
        else:
            body = INDEX_HTML.encode()
            headers = []  # Rocket.Chat writes the page without a Content-Type
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _is_metrics_path(path: str) -> bool:
    """connect's `app.use('/metrics')` match: that path or one under it, case-insensitive."""
    lowered = path.lower()
    if not lowered.startswith("/metrics"):
        return False
    rest = lowered[len("/metrics") :]
    return rest == "" or rest[0] in "/."
