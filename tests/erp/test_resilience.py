"""PostgreSQL connections dropped under the server (a database restart): no request fails."""

from __future__ import annotations

import os

import psycopg
import pytest
from plugins.erp import idem
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration
API = "/api/bot/v1"


def test_dropped_database_connections_are_replaced(erp_backend, erp_server, new_staff):
    if erp_backend != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no server connections to lose")
    body = new_staff()
    with erp_server.client(erp_server.bot_key) as client:
        assert client.post(f"{API}/staff", json=body, headers=idem()).status_code == 201
        params = {"rocketchat_username": body["rocketchat_username"]}
        assert client.get(f"{API}/staff", params=params).status_code == 200
        database = make_url(erp_server.env["ERP_DATABASE_URL"])
        admin_url = make_url(os.environ["ERP_TEST_POSTGRES_URL"]).set(drivername="postgresql")
        with psycopg.connect(admin_url.render_as_string(hide_password=False), autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database.database,),
            ).fetchone()[0]
        assert killed >= 1
        assert client.get(f"{API}/staff", params=params).status_code == 200
        assert client.post(f"{API}/staff", json=new_staff(), headers=idem()).status_code == 201
        assert client.get("/readyz").status_code == 200
