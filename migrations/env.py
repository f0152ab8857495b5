"""Alembic environment of pyes.

Run through ``pyes db ...`` or :mod:`pyes.migrate`, which pass the connection string in
``config.attributes["pyes_dsn"]``; a caller may also pass an open SQLAlchemy connection in
``config.attributes["connection"]``. With neither, --dsn rules apply (PYES_DATABASE_URL, PG*).
"""

from alembic import context

from pyes.dsn import resolve_dsn
from pyes.migrate import VERSION_TABLE, engine_for

config = context.config


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(url="postgresql+psycopg://", version_table=VERSION_TABLE, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif given is not None:
    run(given)
else:
    engine = engine_for(resolve_dsn(config.attributes.get("pyes_dsn")))
    try:
        with engine.begin() as connection:
            run(connection)
    finally:
        engine.dispose()
