"""`python -m api`: the `modelo-api` command (serve with the settings from flags and the environment)."""

from __future__ import annotations

import sys

from api.cli import main

if __name__ == "__main__":
    sys.exit(main())
