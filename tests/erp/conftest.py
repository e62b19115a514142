"""ERP suite fixtures: every integration test runs on SQLite and on PostgreSQL (when available)."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from plugins.erp import ErpServer, start_erp_server, temporary_postgres_database

BACKENDS = ["sqlite", "postgresql"]
_counter = itertools.count(1)


@pytest.fixture(scope="session", params=BACKENDS)
def erp_backend(request: pytest.FixtureRequest) -> str:
    """The backend name; PostgreSQL needs ERP_TEST_POSTGRES_URL (CI must provide it, so it fails there)."""
    if request.param == "postgresql" and not os.environ.get("ERP_TEST_POSTGRES_URL"):
        message = "ERP_TEST_POSTGRES_URL is not set (source .ci/services.d/10-postgresql.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return request.param


class ServerFactory:
    """Starts ERP servers on the current backend, each with its own fresh database."""

    def __init__(self, backend: str, tmp: pytest.TempPathFactory, stack: ExitStack) -> None:
        self.backend = backend
        self.tmp = tmp
        self.stack = stack

    def __call__(self, settings: dict[str, str] | None = None, name: str = "erp") -> ErpServer:
        database_url = None
        if self.backend == "postgresql":
            database_url = self.stack.enter_context(
                temporary_postgres_database(os.environ["ERP_TEST_POSTGRES_URL"])
            )
        server = start_erp_server(
            self.tmp.mktemp(f"{name}-{self.backend}"), database_url=database_url, settings=settings, name=name
        )
        self.stack.callback(server.stop)
        return server


@pytest.fixture(scope="session")
def erp_server_factory(erp_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    with ExitStack() as stack:
        yield ServerFactory(erp_backend, tmp_path_factory, stack)


@pytest.fixture(scope="session")
def erp_server(erp_server_factory: ServerFactory) -> ErpServer:
    """The default-settings ERP server on the current backend (shared by the suite)."""
    return erp_server_factory()


@pytest.fixture
def new_staff() -> Callable[..., dict[str, Any]]:
    """A registration body with unique Rocket.Chat identity and email; override any field."""

    def make(**overrides: Any) -> dict[str, Any]:
        n = f"{next(_counter)}{secrets.token_hex(3)}"
        body = {
            "full_name": "Петров Пётр Петрович",
            "email": f"petrov{n}@example.com",
            "phone": "+79991234567",
            "position_code": "ENG",
            "rocketchat_user_id": f"rcid{n}",
            "rocketchat_username": f"petrov{n}",
        }
        body.update(overrides)
        return body

    return make
