"""Journey: a new employee registers (a position that needs no approval), takes the login and the
activation code from the bot's answer and activates the account at the ERP (`LOAD_ERP_URL`).

Without LOAD_ERP_URL the journey is off (weight 0) and the run says so. The ERP limits activation
attempts per client address; each person has an address of its own on loopback targets.
"""

from __future__ import annotations

import os
import re
import secrets
import string

import gevent
from locust import User, task

from loadtests.client import JourneyError, Timer
from loadtests.journeys import registration
from loadtests.journeys.base import STEP_ERRORS, AdminSession, Person, think
from loadtests.settings import Target, journey

CONF = journey("activation")
ENABLED = bool(os.environ.get("LOAD_ERP_URL"))


def new_password(login: str) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(16)) + "a1"
        if login.lower() not in password.lower():
            return password


class ActivatingEmployee(User):
    weight = int(CONF.get("weight", 1)) if ENABLED else 0
    abstract = weight <= 0

    def wait_time(self) -> float:
        return think(CONF.get("pause", [3, 8]))

    def on_start(self) -> None:
        self.target = Target.from_env(self.host)
        self.fire = self.environment.events.request.fire
        self.code_re = re.compile(str(CONF.get("code_pattern", r"`(\d{4,10})`")))
        self.login_re = re.compile(str(CONF.get("login_pattern", r"`([A-Za-z0-9._-]+)`")))

    @task
    def register_and_activate(self) -> None:
        admin = AdminSession.get(self.target, self.fire)
        try:
            person = Person.start(admin, self.target, self.fire, self.target.user_roles)
        except STEP_ERRORS:
            return
        try:
            answer = registration.run_dialog(
                person, self.target, str(CONF.get("position", "ENG")), "activation", CONF
            )
            code = self.code_re.search(answer)
            logins = [m for m in self.login_re.findall(answer) if not code or m != code.group(1)]
            with Timer(self.fire, "ERP", "activation: activate") as timer:
                if code is None or not logins:
                    raise JourneyError("no login and activation code in the bot's answer")
                response = person.client.session.post(
                    f"{self.target.erp_url}/api/v1/account/activate",
                    json={"login": logins[0], "code": code.group(1), "password": new_password(logins[0])},
                    timeout=15,
                )
                timer.length = len(response.content)
                if response.status_code != 200:
                    problem = response.json().get("code", "") if response.content else ""
                    raise JourneyError(f"HTTP {response.status_code} {problem}")
            gevent.sleep(think(CONF.get("think", [2, 5])))
        except STEP_ERRORS:
            pass
        finally:
            person.finish(admin)
