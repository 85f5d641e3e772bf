"""`make migrate` / `python -m api.store.migrate`: bring DATABASE_URL's schema to the newest migration."""

from __future__ import annotations

import logging

from api.config import load_settings
from api.store.engine import database_url, describe, migrate, open_engine


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url = database_url(settings.database_url.get_secret_value() if settings.database_url else None, settings.data_dir)
    engine = open_engine(url)
    migrate(engine)
    engine.dispose()
    logging.getLogger("api.store").info("migrated %s to the newest schema", describe(url))


if __name__ == "__main__":
    main()
