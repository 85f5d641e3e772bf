"""`python -m api.healthcheck`: the container HEALTHCHECK, GET /ready on loopback (over TLS when served so)."""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("APP_PORT") or "8000"
    certfile, keyfile = os.environ.get("SSL_CERTFILE"), os.environ.get("SSL_KEYFILE")
    context: ssl.SSLContext | None = None
    scheme = "http"
    if certfile and keyfile:
        scheme = "https"
        # Loopback to our own process: the point is liveness, not the peer's identity.
        context = ssl._create_unverified_context()  # noqa: S323
        if os.environ.get("SSL_CA_CERTS"):
            # Under mutual TLS the service's own certificate is the client certificate we can offer.
            context.load_cert_chain(certfile, keyfile)
    try:
        with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/ready", timeout=4, context=context) as answer:  # noqa: S310
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
