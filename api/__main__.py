"""`python -m api`: run the service with the settings from the environment."""

from __future__ import annotations

import uvicorn

from api.config import load_settings
from api.main import create_app
from api.observability.logging import configure_logging


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.app_host,
        port=settings.app_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # configured above, once
        http="httptools",
        loop="uvloop",
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        ssl_ca_certs=str(settings.ssl_ca_certs) if settings.ssl_ca_certs else None,
        ssl_cert_reqs=2 if settings.ssl_ca_certs else 0,
        # uvicorn's default cipher string ("TLSv1") offers CBC-SHA1, anonymous and NULL suites on TLS 1.2.
        ssl_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20",
    )


if __name__ == "__main__":
    main()
