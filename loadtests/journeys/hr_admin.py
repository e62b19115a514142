"""Journey: an HR admin works the admins channel: approves the requests the bot posts there, asks for
the registrations report and for the list of people waiting (in the DM with the bot).

The admin accounts have the `admin` role: the bot's admin commands require it (BOT_ADMIN_ROLE), and
Rocket.Chat exempts it from the REST limiter, as it does for a real HR team.
"""

from __future__ import annotations

import random
import re
from collections import deque

from locust import User, task

from loadtests.journeys.base import STEP_ERRORS, AdminSession, Person, reply_timeout, think
from loadtests.settings import Target, journey

CONF = journey("hr_admin")
# Requests seen in the admins channel and not yet taken by an admin of this process.
OPEN_REQUESTS: deque[str] = deque(maxlen=10_000)
SEEN: set[str] = set()


class HrAdmin(User):
    weight = int(CONF.get("weight", 1))
    abstract = weight <= 0

    def wait_time(self) -> float:
        return think(CONF.get("think", [4, 10]))

    def on_start(self) -> None:
        self.target = Target.from_env(self.host)
        self.fire = self.environment.events.request.fire
        self.person: Person | None = None
        self.channel = ""
        self.pattern = re.compile(str(CONF.get("request_pattern", r"#(\d+)")))
        weights = CONF.get("tasks") or {"approve": 1, "report": 1, "pending": 1}
        self.task_names, self.task_weights = list(weights), [int(w) for w in weights.values()]

    def _ensure_person(self, admin: AdminSession) -> Person:
        if self.person is None:
            self.channel = admin.admins_channel_id()
            person = Person.start(admin, self.target, self.fire, ("user", "admin"))
            try:
                admin.invite(self.channel, person.account)
                person.client.watch_room(self.channel)
            except BaseException:
                person.finish(admin)
                raise
            self.person = person
        return self.person

    def _collect_requests(self, person: Person) -> None:
        queue = person.client.messages[self.channel]
        while not queue.empty():
            _arrived, message = queue.get_nowait()
            if (message.get("u") or {}).get("username") != self.target.bot_username:
                continue
            found = self.pattern.search(str(message.get("msg", "")))
            if found and found.group(1) not in SEEN:
                SEEN.add(found.group(1))
                OPEN_REQUESTS.append(found.group(1))

    @task
    def work(self) -> None:
        admin = AdminSession.get(self.target, self.fire)
        try:
            person = self._ensure_person(admin)
            self._collect_requests(person)
            choice = random.choices(self.task_names, weights=self.task_weights)[0]
            if choice == "approve":
                if not OPEN_REQUESTS:
                    return
                staff_id = OPEN_REQUESTS.popleft()
                command = str(CONF.get("approve", "approve {id}")).format(id=staff_id)
                # In the channel the bot is addressed by mention; its answer names the request.
                person.client.round_trip(
                    self.channel,
                    f"@{self.target.bot_username} {command}",
                    self.target.bot_username,
                    "hr_admin: approve",
                    reply_timeout(),
                    match=re.compile(rf"\b{staff_id}\b"),
                )
            else:
                person.client.round_trip(
                    person.dm,
                    str(CONF.get(choice, "report")),
                    self.target.bot_username,
                    f"hr_admin: {choice}",
                    reply_timeout(),
                )
        except STEP_ERRORS:
            if self.person is not None:
                self.person.finish(admin)
                self.person = None

    def on_stop(self) -> None:
        if self.person is not None:
            self.person.finish(AdminSession.get(self.target, self.fire))
            self.person = None
