"""`make migrate` / `python -m api.store.migrate`: bring DATABASE_URL's schema to the newest migration."""

from __future__ import annotations

import logging
import sys

from sqlalchemy.exc import SQLAlchemyError

from api.config import load_settings
from api.store.engine import database_url, describe, migrate, open_engine


def main() -> int:
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("api.store")
    url = database_url(settings.database_url.get_secret_value() if settings.database_url else None, settings.data_dir)
    engine = open_engine(url)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        log.error("cannot migrate %s: %s", describe(url), str(exc).splitlines()[0])
        return 1
    finally:
        engine.dispose()
    log.info("migrated %s to the newest schema", describe(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
