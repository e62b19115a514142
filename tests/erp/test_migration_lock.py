"""`erp migrate` (and `erp serve --migrate`) on ERP hosts that share one PostgreSQL: the schema upgrade
runs under an advisory lock, so hosts started together do not race (one upgrades, the others wait and
find the schema at head). Real PostgreSQL (ERP_TEST_POSTGRES_URL), real CLI processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from plugins.erp import ROOT, temporary_postgres_database
from sqlalchemy import create_engine, inspect, text

from erp.cli import MIGRATION_LOCK_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def database_url() -> Iterator[str]:
    base = os.environ.get("ERP_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail("ERP_TEST_POSTGRES_URL is not set (source .ci/services.d/10-postgresql.sh)")
        pytest.skip("ERP_TEST_POSTGRES_URL is not set")
    with temporary_postgres_database(base) as url:
        yield url


def _migrate(url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ERP_DATABASE_URL": url, "ERP_SECRET_KEY": "x" * 40, "ERP_ENVIRONMENT": "test"}
    return subprocess.Popen(
        [sys.executable, "-m", "erp", "migrate"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


def _head() -> str:
    from alembic.script import ScriptDirectory

    from erp.cli import _alembic_config

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def test_migrate_waits_for_the_lock_another_host_holds(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as holder:
            holder.execution_options(isolation_level="AUTOCOMMIT")
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            process = _migrate(database_url)
            try:
                time.sleep(3)
                assert process.poll() is None, process.communicate()[0]
                assert _revision(database_url) is None  # nothing upgraded while another holds the lock
            finally:
                holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            output, _ = process.communicate(timeout=120)
    finally:
        engine.dispose()
    assert process.returncode == 0, output
    assert _revision(database_url) == _head()


def test_hosts_migrating_together_all_succeed_on_one_schema(database_url: str) -> None:
    processes = [_migrate(database_url) for _ in range(3)]
    outputs = [process.communicate(timeout=180)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert _revision(database_url) == _head()
