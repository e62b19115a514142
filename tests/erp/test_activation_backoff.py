"""The per-login activation backoff in the database (erp/services/activation_backoff.py), in-process on
a database made by the real migration: SQLite file and PostgreSQL (ERP_TEST_POSTGRES_URL). Also that
every new code (an account made, a code reissued) ends its login's backoff (erp/services/users.py).

Times are passed in, so waits, forgetting after a day and pruning are checked without sleeping. Two
engines on one database stand for two ERP replicas."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from plugins.erp import run_cli, temporary_postgres_database
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from erp.db import build_engine, reset_engine
from erp.schemas import StaffCreate
from erp.services import activation_backoff as backoff
from erp.services import staff as staff_service
from erp.services import users as users_service
from erp.services.activation_backoff import TABLE, LoginBackoff, Policy
from erp.settings import Settings, get_settings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
SECRET = "activation-backoff-test-secret-0123456789"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def database_url(erp_backend: str, tmp_path) -> Iterator[str]:
    with ExitStack() as stack:
        if erp_backend == "postgresql":
            url = stack.enter_context(temporary_postgres_database(os.environ["ERP_TEST_POSTGRES_URL"]))
        else:
            url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
        run_cli({"ERP_DATABASE_URL": url, "ERP_SECRET_KEY": SECRET, "ERP_ENVIRONMENT": "test"}, "migrate")
        yield url


@pytest.fixture
def replicas(database_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines (connection pools) on one database, writing the way the ERP writes."""
    settings = Settings(database_url=database_url, environment="test", secret_key=SECRET)
    engines = [build_engine(settings) for _ in range(2)]
    yield engines[0].execution_options(erp_write=True), engines[1].execution_options(erp_write=True)
    for engine in engines:
        engine.dispose()


def fail(engine: Engine, login: str, policy: Policy, now: datetime) -> int:
    with engine.begin() as conn:
        return backoff.record_failure(conn, login, policy, now)


def wait(engine: Engine, login: str, policy: Policy, now: datetime) -> float:
    with engine.connect() as conn:
        return backoff.retry_after(conn, login, policy, now)


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(TABLE)).scalar_one()


def test_free_failures_then_doubling_waits_capped_across_replicas(replicas) -> None:
    one, two = replicas
    policy = Policy(free=3, max_seconds=4.0)
    waits, counts = [], []
    for n in range(7):
        counts.append(fail(replicas[n % 2], "ivanov.i", policy, at(0)))
        waits.append(wait(replicas[(n + 1) % 2], "ivanov.i", policy, at(0)))  # seen by the other one
    assert counts == [1, 2, 3, 4, 5, 6, 7]
    assert waits == [0, 0, 1, 2, 4, 4, 4]
    with one.begin() as conn:
        backoff.reset(conn, "ivanov.i")
    assert wait(two, "ivanov.i", policy, at(0)) == 0.0
    assert fail(two, "ivanov.i", policy, at(0)) == 1  # counted from scratch


def test_the_wait_runs_out_and_an_idle_login_is_forgotten_after_a_day(replicas) -> None:
    one, two = replicas
    policy = Policy(free=1, max_seconds=300.0)
    for _ in range(5):
        fail(one, "petrov.p", policy, at(0))
    assert wait(two, "petrov.p", policy, at(0)) == 16.0
    assert wait(two, "petrov.p", policy, at(10)) == 6.0
    assert wait(two, "petrov.p", policy, at(16.5)) == 0.0
    # A replica whose clock is behind the one that wrote: the wait is never longer than the policy's.
    assert wait(two, "petrov.p", policy, at(-30)) == 16.0
    day = policy.forget_seconds
    assert fail(two, "petrov.p", policy, at(day - 1)) == 6  # within the day: still counting
    assert fail(two, "petrov.p", policy, at(2 * day)) == 1  # idle for a day: a fresh start
    assert wait(one, "petrov.p", policy, at(2 * day)) == 1.0  # the wait of one failure, not of seven


def test_logins_are_keyed_case_folded_and_known_or_not_alike(replicas) -> None:
    one, _ = replicas
    policy = Policy(free=2, max_seconds=60.0)
    assert fail(one, "Strasse.A", policy, at(0)) == 1
    assert fail(one, "STRAẞE.a", policy, at(0)) == 2  # ẞ folds to ss
    assert wait(one, "strasse.a", policy, at(0)) == 1.0
    assert wait(one, "strasse.b", policy, at(0)) == 0.0
    # Nothing here looks at accounts: a login no one has is counted the same (no existence oracle).
    assert rows(one) == 1
    with one.connect() as conn, pytest.raises(ValueError, match="1 to 64"):
        backoff.record_failure(conn, "x" * 65, policy, at(0))


def test_two_replicas_failing_at_once_both_count(replicas) -> None:
    """The upsert is atomic: 4 threads on 2 engines, 15 failures each, no failure lost."""
    policy = Policy(free=5, max_seconds=300.0)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def hammer(engine: Engine) -> None:
        try:
            start.wait()
            for _ in range(15):
                fail(engine, "sidorov.s", policy, at(1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(replicas[n % 2],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert fail(replicas[0], "sidorov.s", policy, at(1)) == 61


def test_pruning_forgets_idle_rows_and_keeps_the_newest_within_the_bound(replicas) -> None:
    one, two = replicas
    policy = Policy(free=1, max_seconds=10.0, max_rows=100)
    for n in range(30):  # idle for more than a day by the time of the prune
        fail(one, f"old{n}", policy, at(n))
    for n in range(250):
        fail(two, f"login{n}", policy, at(policy.forget_seconds + n))
    with one.begin() as conn:
        deleted = backoff.prune(conn, policy, at(policy.forget_seconds + 300))
    assert deleted == 30 + 150
    assert rows(two) == 100
    assert wait(two, "login249", policy, at(policy.forget_seconds + 249)) == 1.0  # the newest stay
    assert wait(two, "login149", policy, at(policy.forget_seconds + 149)) == 0.0  # the oldest went


@pytest.fixture
def app_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process-wide engine (erp.db) on the migrated database, as a running ERP has it."""
    monkeypatch.setenv("ERP_DATABASE_URL", database_url)
    monkeypatch.setenv("ERP_SECRET_KEY", SECRET)
    monkeypatch.setenv("ERP_ENVIRONMENT", "test")
    get_settings.cache_clear()
    reset_engine()
    yield database_url
    get_settings.cache_clear()  # leave no settings or engine to the next test
    reset_engine()


def test_a_replica_prunes_on_a_failure_at_most_once_per_interval(app_database: str, replicas) -> None:
    one, _ = replicas
    now = [at(3 * 86400)]
    handle = LoginBackoff(Policy(free=2, max_seconds=60.0), prune_interval_seconds=3600, clock=lambda: now[0])
    fail(one, "stale.a", handle.policy, at(0))
    assert handle.fail("fresh.a") == 1  # the first failure in this process prunes
    assert rows(one) == 1
    fail(one, "stale.b", handle.policy, at(0))
    assert handle.fail("fresh.a") == 2  # within the interval: no prune
    assert rows(one) == 2
    assert handle.retry_after("Fresh.A") == 1.0


@pytest.fixture
def seeded_database(database_url: str) -> str:
    run_cli(
        {"ERP_DATABASE_URL": database_url, "ERP_SECRET_KEY": SECRET, "ERP_ENVIRONMENT": "test"},
        "seed-positions",
    )
    return database_url


def register(engine: Engine, full_name: str, position: str, settings: Settings):  # type: ignore[no-untyped-def]
    n = secrets.token_hex(4)
    data = StaffCreate(
        full_name=full_name,
        email=f"e{n}@example.com",
        position_code=position,
        rocketchat_user_id=f"rc{n}",
        rocketchat_username=f"u{n}",
    )
    with engine.begin() as conn:
        return staff_service.register(conn, data, settings)


def test_a_new_code_ends_the_backoff_of_its_login_only(seeded_database: str, replicas) -> None:
    """Wrong codes a stranger tries on a login before its account exists (logins are predictable) are
    forgotten when the account is made, by the bot's registration or an admin's approval, and wrong codes
    against a code are forgotten when an admin issues a new one; other logins keep theirs."""
    one, two = replicas
    settings = Settings(database_url=seeded_database, environment="test", secret_key=SECRET)
    policy = Policy(free=2, max_seconds=300.0)
    for login, count in (("ivanov.i", 4), ("ivanov.i2", 3), ("sidorov.s", 2)):
        for _ in range(count):
            fail(one, login, policy, at(0))
    assert [wait(two, login, policy, at(0)) for login in ("ivanov.i", "ivanov.i2")] == [4.0, 2.0]

    first, registered = register(two, "Иванов Иван", "ENG", settings)  # account and code at once
    assert wait(one, "ivanov.i", policy, at(0)) == 0.0
    assert (registered.login, registered.backoff_cleared) == ("ivanov.i", 4)
    assert "backoff_cleared" not in registered.model_dump_json()  # for the audit, never in a response
    assert wait(one, "ivanov.i2", policy, at(0)) == 2.0  # the namesake's login: no account yet

    pending, none = register(two, "Иванов Игорь", "ACC", settings)  # waits for an admin
    assert none is None
    assert wait(one, "ivanov.i2", policy, at(0)) == 2.0
    with Session(one) as session, session.begin():
        approved = staff_service.approve(session, staff_service.get(session, pending.id, lock=True), settings)
    assert approved is not None
    assert wait(two, "ivanov.i2", policy, at(0)) == 0.0
    assert (approved.login, approved.backoff_cleared) == ("ivanov.i2", 3)

    assert [fail(two, "ivanov.i", policy, at(1)) for _ in range(3)] == [1, 2, 3]  # from scratch
    with Session(two) as session, session.begin():
        staff = staff_service.get(session, first.id, lock=True)
        reissued = users_service.reissue_code(session, staff, settings)
    assert wait(one, "ivanov.i", policy, at(1)) == 0.0
    assert (reissued.login, reissued.backoff_cleared) == ("ivanov.i", 3)
    assert fail(one, "ivanov.i", policy, at(2)) == 1  # the old code's wrong guesses do not carry over
    assert wait(one, "sidorov.s", policy, at(0)) == 1.0  # untouched
