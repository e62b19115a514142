"""Alembic environment: the database URL comes from the ERP settings, never from alembic.ini."""

from alembic import context

from erp.db import build_engine
from erp.models import Base
from erp.settings import get_settings

target_metadata = Base.metadata


def run_migrations() -> None:
    settings = get_settings()
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        _run(connectable, settings.is_sqlite)
        return
    engine = build_engine(settings)
    try:
        with engine.execution_options(erp_write=True).connect() as connection:
            _run(connection, settings.is_sqlite)
            connection.commit()
    finally:
        engine.dispose()


def _run(connection, is_sqlite: bool) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=is_sqlite)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=get_settings().database_url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations()
