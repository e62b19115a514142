"""The ERP's expired idempotency records (encrypted responses that may hold personal data) are deleted by
`python -m erp purge-expired`, which the backup role's cron runs in the ERP container every hour.
Real databases: SQLite and the CI PostgreSQL (ERP_TEST_POSTGRES_URL)."""

from __future__ import annotations

import datetime as dt
import os
from contextlib import ExitStack
from pathlib import Path

import pytest
from plugins.erp import run_cli, temporary_postgres_database
from sqlalchemy import create_engine, insert, select

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'erp.sqlite3'}"
        return
    base = os.environ.get("ERP_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail("ERP_TEST_POSTGRES_URL is not set (source .ci/services.d/10-postgresql.sh)")
        pytest.skip("ERP_TEST_POSTGRES_URL is not set")
    with ExitStack() as stack:
        yield stack.enter_context(temporary_postgres_database(base))


def test_purge_expired_deletes_only_records_older_than_the_ttl(database_url: str) -> None:
    from erp.models import ApiKey, IdempotencyRecord

    env = {"ERP_DATABASE_URL": database_url, "ERP_SECRET_KEY": "x" * 40, "ERP_IDEMPOTENCY_TTL_HOURS": "24"}
    run_cli(env, "migrate")
    run_cli(env, "keys", "create", "--name", "bot", "--scope", "bot")
    now = dt.datetime.now(dt.UTC)
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            key_id = conn.execute(select(ApiKey.id).where(ApiKey.name == "bot")).scalar_one()
            for name, age in (("old-1", 48), ("old-2", 25), ("fresh-1", 23), ("fresh-2", 0.1)):
                conn.execute(
                    insert(IdempotencyRecord).values(
                        api_key_id=key_id,
                        key=name,
                        request_hash="0" * 64,
                        status_code=200,
                        response_body="encrypted",
                        created_at=now - dt.timedelta(hours=age),
                    )
                )
        first = run_cli(env, "purge-expired")
        assert "2 expired removed" in first.stdout, first.stdout + first.stderr
        with engine.connect() as conn:
            left = sorted(conn.execute(select(IdempotencyRecord.key)).scalars())
        assert left == ["fresh-1", "fresh-2"]
        again = run_cli(env, "purge-expired")
        assert "0 expired removed" in again.stdout
    finally:
        engine.dispose()
