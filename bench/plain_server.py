"""The service's app under uvicorn's stock httptools protocol: the reference for the connection guard's cost.

Production (`python -m api`) serves through ``api.http.protocol``; this serves the same app, built
from the same settings, with ``http="httptools"`` and nothing else, so `make bench` can put a
same-run ratio on what the guard costs per request and per connection.

    python -m bench.plain_server     (APP_HOST, APP_PORT, MODEL_DIR, API_KEYS, ... as for the service)
"""

from __future__ import annotations

import uvicorn

from api.config import load_settings
from api.main import create_app


def main() -> None:
    settings = load_settings()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.app_host,
        port=settings.app_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,
        http="httptools",
        loop="uvloop",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
