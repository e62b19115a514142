"""Journey: an employee already in Rocket.Chat asks the bot for the registration status now and then."""

from __future__ import annotations

from locust import User, task

from loadtests.journeys.base import STEP_ERRORS, AdminSession, Person, reply_timeout, think
from loadtests.settings import Target, journey

CONF = journey("status")


class Employee(User):
    """One account for the whole run; `status` every few seconds, the answer awaited on the stream."""

    weight = int(CONF.get("weight", 1))
    abstract = weight <= 0

    def wait_time(self) -> float:
        return think(CONF.get("think", [8, 15]))

    def on_start(self) -> None:
        self.target = Target.from_env(self.host)
        self.fire = self.environment.events.request.fire
        self.person: Person | None = None

    @task
    def ask_status(self) -> None:
        admin = AdminSession.get(self.target, self.fire)
        try:
            if self.person is None:
                self.person = Person.start(admin, self.target, self.fire, self.target.user_roles)
            self.person.client.round_trip(
                self.person.dm,
                str(CONF.get("send", "status")),
                self.target.bot_username,
                "status",
                reply_timeout(),
            )
        except STEP_ERRORS:
            if self.person is not None:  # start afresh next time (a broken stream stays broken)
                self.person.finish(admin)
                self.person = None

    def on_stop(self) -> None:
        if self.person is not None:
            self.person.finish(AdminSession.get(self.target, self.fire))
            self.person = None
