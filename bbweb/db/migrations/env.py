"""Alembic environment: run migrations on the connection bbweb hands over."""

from alembic import context

from bbweb.db.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI with a URL
    import sqlalchemy as sa

    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # bbweb.db.migrate always sets it
        raise RuntimeError("alembic: sqlalchemy.url is not set")
    engine = sa.create_engine(url)
    connection = engine.connect()

context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
