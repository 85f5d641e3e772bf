"""`python -m api`: run the service with the settings from the environment."""

from __future__ import annotations

from api.config import load_settings
from api.main import create_app
from api.observability.logging import configure_logging
from api.server import serve


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
