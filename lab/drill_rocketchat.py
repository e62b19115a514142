"""Failure drill of the multi-host lab (issue 11): Rocket.Chat down and back while an employee is in a
dialog with the bot, across hosts.

`python -m lab.multi --from drill --to drill` (a kept lab of inventory/lab) or the step `drill` of a
whole cycle, after the ERP alerts drill. The single-host drill of `make drill`
(tests/infra/test_drill_rocketchat.py) proves the same on one machine; here Rocket.Chat (the simulator,
which keeps its workspace in a state file across restarts) runs on the chat host, the bot on the bot host
and Prometheus with Alertmanager on the monitoring host, so every hop of the recovery crosses hosts:

1. a new employee (created with the stack's admin account through the public name) opens a direct message
   with the bot and starts the registration dialog; the bot asks its first question;
2. `docker stop` of Rocket.Chat on the chat host; the bot on the bot host must lose its stream (its own
   `bot_realtime_connected`, read in its container) and BotRocketChatDisconnected must fire in Prometheus
   on the monitoring host (inventory/lab waits 1m, monitoring_alert_for; the production rule 2m);
3. `docker start`; as soon as Rocket.Chat answers through the proxy, before the bot's backoff may have let
   it reconnect, the employee sends the next answer: the bot must pick it up (from its stream, or from the
   room's history when it catches up), and the dialog must finish with an activation code and every
   answer answered exactly once (the DM's history, after a settling time in which a duplicate would show);
4. the bot's metrics count a reconnect, its log says "realtime disconnected" and "realtime connected";
   the alert, which the bot refused to post while Rocket.Chat was down (503, so Alertmanager retries),
   reaches the admins group after Rocket.Chat returned, and resolves in Prometheus.

Rocket.Chat is started again also when the drill fails. Prints what it did, what it observed and how long
each part took; returns the timings for lab.multi's summary.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from lab import remote
from lab.drill_host_loss import DrillError, Stack, alert_events, first_event
from lab.topology import Lab, ansible_inventory
from rcchat.api import ChatError, RoomStream, Session

ROCKETCHAT = "photomatrix-rocketchat"  # rocketchat_container_name, on the rocketchat host
BOT = "photomatrix-chatbot"  # chatbot_container_name, on the bots host
BOT_USERNAME = "erp-bot"
ALERT = "BotRocketChatDisconnected"
# The registration dialog (tests/infra/test_chat_registration.py): command, name, position, e-mail, phone,
# confirmation. The e-mail is the employee's own.
ANSWERS = ("регистрация", "Петров Иван", "ENG", "{email}", "-", "да")
CODE = re.compile(r"(?:Код активации|Activation code): `(\d+)`")
# The bot's reconnect backoff tops out at BOT_RECONNECT_MAX_SECONDS (30 s), then one catch-up.
REPLY_TIMEOUT = 90.0
# Long enough for a duplicate to show: the catch-up replays from a few seconds before the gap.
SETTLE_SECONDS = 15.0
LOST_TIMEOUT = 60.0
# The rule's for: (2m in production, 1m in inventory/lab) plus scrape, evaluation and a loaded machine.
ALERT_TIMEOUT = 6 * 60.0
BACK_TIMEOUT = 180.0
# Alertmanager retries the refused post with a backoff; group_wait and the bot's post on top.
DELIVERY_TIMEOUT = 7 * 60.0
RESOLVE_TIMEOUT = 4 * 60.0
POLL_SECONDS = 5.0
# The drill's steps in lab.multi's summary (ops/figures.py LAB_STEPS reads them by these names).
STEP_ALERT = f"drill Rocket.Chat down: stopped on the chat host → {ALERT} firing in Prometheus"
STEP_ANSWER = "drill Rocket.Chat down: started → the employee's next answer answered by the bot"
STEP_DELIVERED = f"drill Rocket.Chat down: started → {ALERT} in the admins group"
STEP_WHOLE = "drill Rocket.Chat down, whole (the dialog's first answer to the alert resolved)"


def bot_get_code(path: str, timeout: float = 10) -> str:
    """The Python a bot replica runs (its own interpreter) to GET PATH from its own port and print the
    body: HTTPS when it serves it (BOT_HTTP_TLS_CERTFILE), the chain checked against the internal CA it has
    (BOT_HTTP_TLS_CAFILE, else /etc/bot/ca.crt; its certificate is for its names, which Prometheus and
    Alertmanager check), else plain HTTP. Also tests/plugins/infra.py bot_get."""
    return (
        "import os, ssl, urllib.request; tls = bool(os.environ.get('BOT_HTTP_TLS_CERTFILE')); "
        "c = ssl.create_default_context(cafile=os.environ.get('BOT_HTTP_TLS_CAFILE') or '/etc/bot/ca.crt') "
        "if tls else None\n"
        "if c: c.check_hostname = False\n"
        f"print(urllib.request.urlopen(('https' if tls else 'http') + '://127.0.0.1:8080{path}', "
        f"timeout={timeout}, context=c).read().decode())"
    )


def _log(message: str) -> None:
    print(f"drill rocketchat: {time.strftime('%H:%M:%S')} {message}", flush=True)


def parse_metrics(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text exposition, by name."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+) ([0-9.e+-]+)", line.strip())
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def answers_per_message(history: list[dict[str, Any]], user_id: str) -> list[tuple[str, int]]:
    """(employee's message, how many bot messages follow it before the employee's next one), oldest first.
    HISTORY is Rocket.Chat's im.history (newest first); system messages are left out."""
    counts: list[tuple[str, int]] = []
    for message in reversed(history):
        if message.get("t"):
            continue
        author = message.get("u") or {}
        if author.get("_id") == user_id:
            counts.append((str(message.get("msg", "")), 0))
        elif author.get("username") == BOT_USERNAME and counts:
            text, seen = counts[-1]
            counts[-1] = (text, seen + 1)
    return counts


def dialog_problems(counts: list[tuple[str, int]], answers: list[str]) -> list[str]:
    """What is wrong with the dialog as the DM's history shows it (nothing: [])."""
    problems = []
    sent = [text for text, _ in counts]
    if sent != answers:
        problems.append(f"the DM holds the employee's messages {sent}, not {answers}")
    twice = [f"{text!r} answered {seen} times" for text, seen in counts if seen != 1]
    if twice:
        problems.append("not answered exactly once: " + "; ".join(twice))
    return problems


@dataclass
class Timeline:
    rule_wait: str = ""
    dialog_started: float = 0.0
    stopped: float = 0.0
    lost: float | None = None
    firing: float | None = None
    started: float = 0.0
    running_again: bool = False
    answering: float | None = None
    connected_at_send: float | None = None
    first_answer: float | None = None
    finished: float | None = None
    delivered: float | None = None
    resolved: float | None = None
    reconnects: float = 0.0
    caught_up: float = 0.0
    duplicates: float = 0.0
    counts: list[tuple[str, int]] = field(default_factory=list)
    alert_line: str = ""


class Drill:
    """What the drill reaches: Rocket.Chat on the chat host, the bot on the bot host, Prometheus on the
    monitoring host (through lab.drill_host_loss.Stack), the public name."""

    def __init__(self, lab: Lab) -> None:
        data = ansible_inventory(lab.inventory, DrillError)
        bots = data.get("bots", {}).get("hosts", [])
        if not bots:
            raise DrillError("the Rocket.Chat drill needs a bots host")
        self.lab, self.stack, self.bot = lab, Stack.of(lab), bots[0]
        self.chat = self.stack.chat
        self.ca_file = str(lab.state_dir / "secrets" / "ca.crt")
        self.url = f"https://{self.stack.domain}"

    def bot_metrics(self) -> dict[str, float]:
        command = f"sudo docker exec {BOT} python -c {shlex.quote(bot_get_code('/metrics'))}"
        return parse_metrics(remote.capture(self.lab, self.bot, command, timeout=60))

    def firing(self) -> bool:
        return bool(self.stack.query(f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}'))

    def docker(self, action: str) -> None:
        timeout = "--time 10 " if action == "stop" else ""
        remote.capture(self.lab, self.chat, f"sudo docker {action} {timeout}{ROCKETCHAT}", timeout=120)

    def bot_log(self, since: str) -> str:
        command = f"sudo docker logs --since {since} {BOT} 2>&1"
        return remote.capture(self.lab, self.bot, command, timeout=60)


async def _wait(what: str, probe: Callable[[], Any], within: float, origin: float) -> float:
    """Poll PROBE (blocking: run in a thread, so the open stream keeps answering pings) until it returns
    something truthy; returns the Unix time it did."""
    deadline = time.monotonic() + within
    while True:
        try:
            if await asyncio.to_thread(probe):
                now = time.time()
                _log(f"{what}: after {now - origin:.0f} s")
                return now
        except (remote.RemoteError, OSError, ValueError, KeyError, DrillError) as exc:
            _log(f"{what}: not yet ({type(exc).__name__}: {str(exc)[:120]})")
        if time.monotonic() > deadline:
            raise DrillError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(POLL_SECONDS)


async def bot_reply(stream: RoomStream, within: float) -> str:
    """The bot's next message in the stream's room."""
    async for message in stream.messages(duration=within):
        if message.username == BOT_USERNAME and not message.system:
            return message.text
    raise DrillError(f"the bot did not answer within {within:.0f} s")


async def answers_rocketchat(session: Session) -> bool:
    try:
        response = await session.http.get("/api/info")
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def new_employee(drill: Drill) -> tuple[str, str, str]:
    """(username, password, e-mail) of a fresh employee, created by the workspace admin."""
    username = f"drill{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12) + "aA1"
    email = f"{username}@example.com"
    admin_password = await asyncio.to_thread(drill.stack.admin_password)
    async with Session(drill.url, ca_file=drill.ca_file, timeout=30) as admin:
        await admin.login("admin", admin_password)
        await admin.create_user(username, name="Sidorov Petr", email=email, password=password, roles=["user"])
    return username, password, email


async def _run(drill: Drill, line: Timeline) -> None:
    username, password, email = await new_employee(drill)
    answers = [answer.format(email=email) for answer in ANSWERS]
    _log(
        f"employee {username} created; the bot {BOT} on {drill.bot}, Rocket.Chat {ROCKETCHAT} on {drill.chat}"
    )
    async with Session(drill.url, ca_file=drill.ca_file, timeout=30) as employee:
        await employee.login(username, password)
        room = await employee.resolve_room(f"@{BOT_USERNAME}")
        line.dialog_started = time.time()
        async with employee.stream(room) as stream:
            await employee.send(room, answers[0])
            first = await bot_reply(stream, REPLY_TIMEOUT)
            _log(f"the dialog is open: {first.splitlines()[0][:100]!r}")
        before = await asyncio.to_thread(drill.bot_metrics)
        since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        line.stopped = time.time()
        await asyncio.to_thread(drill.docker, "stop")
        _log(f"docker stop {ROCKETCHAT} on {drill.chat}")
        try:
            line.lost = await _wait(
                f"{drill.bot}: the bot lost its stream (bot_realtime_connected 0)",
                lambda: drill.bot_metrics().get("bot_realtime_connected") == 0,
                LOST_TIMEOUT,
                line.stopped,
            )
            line.firing = await _wait(
                f"{drill.stack.mon}: {ALERT} firing in Prometheus", drill.firing, ALERT_TIMEOUT, line.stopped
            )
        finally:
            line.started = time.time()
            await asyncio.to_thread(drill.docker, "start")
            line.running_again = True
            _log(f"docker start {ROCKETCHAT} on {drill.chat}")
        deadline = time.monotonic() + BACK_TIMEOUT
        while not await answers_rocketchat(employee):
            if time.monotonic() > deadline:
                raise DrillError(
                    f"Rocket.Chat does not answer through the proxy {BACK_TIMEOUT:.0f} s after start"
                )
            await asyncio.sleep(1)
        line.answering = time.time()
        _log(f"Rocket.Chat answers through the proxy after {line.answering - line.started:.0f} s")

        # At once, before the bot's backoff may have let it reconnect.
        async with employee.stream(room) as stream:
            await employee.send(room, answers[1])
            line.connected_at_send = (await asyncio.to_thread(drill.bot_metrics)).get(
                "bot_realtime_connected"
            )
            replies = [await bot_reply(stream, REPLY_TIMEOUT)]
            line.first_answer = time.time()
            _log(
                f"answer sent with the bot "
                f"{'connected' if line.connected_at_send == 1 else 'not yet connected'}; "
                f"answered after {line.first_answer - line.started:.0f} s from the start"
            )
            for answer in answers[2:]:
                await employee.send(room, answer)
                replies.append(await bot_reply(stream, REPLY_TIMEOUT))
        line.finished = time.time()
        if not CODE.search(replies[-1]):
            raise DrillError(f"the dialog ended without an activation code: {replies[-1][:300]!r}")
        await asyncio.sleep(SETTLE_SECONDS)
        history = await employee.call("GET", "im.history", params={"roomId": room, "count": 100})
        line.counts = answers_per_message(history.get("messages", []), employee.user_id)
        problems = dialog_problems(line.counts, answers)
        if problems:
            raise DrillError("; ".join(problems))

    after = await asyncio.to_thread(drill.bot_metrics)
    for name, attr in (
        ("bot_reconnects_total", "reconnects"),
        ("bot_caught_up_messages_total", "caught_up"),
        ("bot_duplicate_messages_total", "duplicates"),
    ):
        setattr(line, attr, after.get(name, 0.0) - before.get(name, 0.0))
    if after.get("bot_realtime_connected") != 1:
        raise DrillError("the bot is not connected after the drill")
    if line.reconnects < 1:
        raise DrillError(f"the bot counted no reconnect (bot_reconnects_total {before} → {after})")
    log = await asyncio.to_thread(drill.bot_log, since)
    for needle in ("realtime disconnected", "realtime connected"):
        if needle not in log:
            raise DrillError(f"the bot's log since the stop does not say {needle!r}: {log[-1500:]}")

    def delivered() -> float | None:
        return first_event(alert_events(drill.stack.admins_messages(), ALERT, ""), "firing", line.stopped)

    await _wait(f"admins group: {ALERT}", delivered, DELIVERY_TIMEOUT, line.started)
    line.delivered = delivered()
    line.alert_line = next(
        (m["msg"] for m in drill.stack.admins_messages() if f"*{ALERT}*" in m.get("msg", "")), ""
    )
    line.resolved = await _wait(
        f"{ALERT} resolved in Prometheus", lambda: not drill.firing(), RESOLVE_TIMEOUT, line.started
    )


def _after(when: float | None, origin: float) -> str:
    return f"{when - origin:.0f} s" if when is not None else "not seen"


def report(line: Timeline, drill: Drill) -> list[str]:
    """What the drill did, what it observed, how long each part took."""
    t0, t1 = line.stopped, line.started
    shown = next((x for x in line.alert_line.splitlines() if f"*{ALERT}*" in x), "")
    sent = (
        "connected"
        if line.connected_at_send == 1
        else "not yet connected"
        if line.connected_at_send is not None
        else "not read"
    )
    return [
        "drill rocketchat: did",
        f"  an employee opened the registration dialog with {BOT_USERNAME} through https://{drill.stack.domain}",
        f"  docker stop {ROCKETCHAT} on {drill.chat}; started again once {ALERT} fired",
        "  the employee's next answer sent as soon as Rocket.Chat answered through the proxy, then the rest",
        "drill rocketchat: observed",
        f"  {drill.bot}: the bot lost its stream {_after(line.lost, t0)} after the stop; "
        f"{drill.stack.mon}: {ALERT} (for {line.rule_wait}) firing after {_after(line.firing, t0)}",
        f"  Rocket.Chat answered through the proxy {_after(line.answering, t1)} after the start; "
        f"the next answer was sent with the bot {sent} and answered {_after(line.first_answer, t1)} "
        "after the start",
        f"  the dialog: {len(line.counts)} answers, "
        f"{'each answered once' if line.counts and all(n == 1 for _, n in line.counts) else line.counts}; "
        f"finished {_after(line.finished, t1)} after the start",
        f"  the bot: {line.reconnects:.0f} reconnect attempt(s), {line.caught_up:.0f} message(s) caught up "
        f"from history, {line.duplicates:.0f} duplicate(s) dropped",
        f"  admins group: {ALERT} {_after(line.delivered, t1)} after the start: {shown[:160]}",
        f"  {ALERT} resolved in Prometheus {_after(line.resolved, t1)} after the start",
    ]


def run(lab: Lab) -> dict[str, tuple[float, float]]:
    """The drill on the kept lab; returns its timings by name, for lab.multi's summary: (seconds, this
    machine's 1-minute load average at the end)."""
    drill = Drill(lab)
    metrics = drill.bot_metrics()
    if metrics.get("bot_realtime_connected") != 1:
        raise DrillError(f"the bot on {drill.bot} is not connected to Rocket.Chat before the drill")
    if drill.firing():
        raise DrillError(f"{ALERT} is already firing before the drill")
    line = Timeline(rule_wait=drill.stack.alert_wait(ALERT))
    _log(f"{ALERT} fires after {line.rule_wait} without a stream (the deployed rule's for:)")
    drill.stack.login()
    try:
        asyncio.run(_run(drill, line))
    except ChatError as exc:
        raise DrillError(f"Rocket.Chat: {exc}") from exc
    finally:
        if line.stopped and not line.running_again:
            _log(f"docker start {ROCKETCHAT} on {drill.chat} (the drill did not finish)")
            try:
                drill.docker("start")
            except remote.RemoteError as exc:
                _log(f"Rocket.Chat could not be started again: {exc}")
        for text in report(line, drill):
            print(text, flush=True)
    load = os.getloadavg()[0]
    if not (line.firing and line.first_answer and line.delivered and line.resolved):
        raise DrillError("the drill ended without the alert, the answer, the delivery or the resolution")
    _log("passed")
    return {
        STEP_ALERT: (line.firing - line.stopped, load),
        STEP_ANSWER: (line.first_answer - line.started, load),
        STEP_DELIVERED: (line.delivered - line.started, load),
        STEP_WHOLE: (line.resolved - line.dialog_started, load),
    }
