"""Alembic environment: migrations run on the engine the API passes in (`api.db.upgrade`), or, from
the `alembic` command line, on `JIESHUI_DB_URL`."""

from __future__ import annotations

from alembic import context

from api.db import Base, make_engine
from jieshui.settings import Settings

engine = context.config.attributes.get("engine") or make_engine(Settings().db_url)
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
