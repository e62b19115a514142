"""Journey: a new employee completes the whole registration dialog with the bot.

Driven by the table in config.yaml (`journeys.registration.steps`): each row is one message the
person sends and one request line ("registration: <line>") timed until the bot's answer arrives on
the stream. Only the last answer is checked, loosely: it must carry the outcome (an activation code,
or the request number), so rewording the dialog does not break the scenario.
"""

from __future__ import annotations

import random
import re
from typing import Any

import gevent
from locust import User, task

from loadtests.journeys.base import STEP_ERRORS, AdminSession, Person, full_name, reply_timeout, think
from loadtests.settings import Target, journey

CONF = journey("registration")
# Where each seeded position leads (erp/positions.yaml): an account, an approval, or no ERP access.
POSITION_OUTCOMES = {"ENG": "account", "MGR": "account", "ACC": "approval", "HR": "approval"}


def pick_position(weights: dict[str, int]) -> str:
    codes = list(weights)
    return random.choices(codes, weights=[int(weights[c]) for c in codes])[0]


def run_dialog(person: Person, target: Target, position: str, line_prefix: str, conf: dict[str, Any]) -> str:
    """Every step of the table; returns the bot's last answer (checked against the outcome pattern)."""
    outcome = POSITION_OUTCOMES.get(position, "no_access")
    pattern = re.compile(str(CONF.get("outcome", {}).get(outcome, ".")))
    values = {
        "full_name": full_name(),
        "position": position,
        "email": f"{person.account.username}@example.com",
    }
    steps = CONF.get("steps") or []
    answer = ""
    for index, step in enumerate(steps):
        if index:
            gevent.sleep(think(conf.get("think", [2, 5])))
        last = index == len(steps) - 1
        answer = person.client.round_trip(
            person.dm,
            str(step["send"]).format(**values),
            target.bot_username,
            f"{line_prefix}: {step['line']}",
            reply_timeout(),
            match=pattern if last else None,
        )
    return answer


class NewEmployee(User):
    """Registers through the bot; a new Rocket.Chat account each time, removed afterwards."""

    weight = int(CONF.get("weight", 1))
    abstract = weight <= 0

    def wait_time(self) -> float:
        return think(CONF.get("pause", [3, 8]))

    def on_start(self) -> None:
        self.target = Target.from_env(self.host)
        self.fire = self.environment.events.request.fire
        self.awaiting_decision: list[Person] = []

    @task
    def register(self) -> None:
        admin = AdminSession.get(self.target, self.fire)
        position = pick_position(CONF.get("positions") or {"ENG": 1})
        try:
            person = Person.start(admin, self.target, self.fire, self.target.user_roles)
        except STEP_ERRORS:
            return
        keep = False
        try:
            run_dialog(person, self.target, position, "registration", CONF)
            # Someone waiting for an admin's decision keeps the account: the bot tells them the outcome.
            keep = POSITION_OUTCOMES.get(position) == "approval"
        except STEP_ERRORS:
            pass
        finally:
            if keep:
                self.awaiting_decision.append(person)
            else:
                person.finish(admin)

    def on_stop(self) -> None:
        admin = AdminSession.get(self.target, self.fire)
        for person in self.awaiting_decision:
            person.finish(admin)
        self.awaiting_decision.clear()
