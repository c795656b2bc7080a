"""Alembic environment: run migrations on the connection bbweb hands over."""

from alembic import context

from bbweb.db.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI with a URL
    import sqlalchemy as sa

    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"))
    connection = engine.connect()

context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
