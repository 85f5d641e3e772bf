"""`modelo-api` and `python -m api`: serve a bundle (a flag wins over its environment variable, then the default).

Only the standard library is imported until the arguments are parsed, so `--help` and
`--version` answer at once (and name a missing library clearly instead of a traceback).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from api import __version__

if TYPE_CHECKING:
    from api.config import Settings
    from api.model.loaded import LoadedModel
    from api.service import Service

EPILOG = """\
Every setting is also an environment variable (APP_HOST, APP_PORT, MODEL_DIR, LOG_LEVEL,
LOG_FORMAT, API_KEYS, MODEL_VERSION, ID_FIELD, ...; see README "Configuration"). A flag given
here wins over its variable. MODEL_DIR's own model_<YYYYMMDD_HHMMSS>.pkl files are served; its
demo/ folder only when it holds none. `make run` also builds the environment the bundle needs.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelo-api",
        description="Serve a fitted preprocessor + model bundle over HTTP (FastAPI + Uvicorn).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="interface to listen on (APP_HOST; default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="TCP port (APP_PORT; default 8000)")
    parser.add_argument("--model-dir", help="bundle directory (MODEL_DIR; default models)")
    parser.add_argument(
        "--log-level", help="debug, info, warning, error or critical, any case (LOG_LEVEL; default info)"
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        help="json lines or human console lines (LOG_FORMAT; default auto: console on a terminal)",
    )
    parser.add_argument("--version", action="version", version=f"modelo-api {__version__}")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    flags = {
        "app_host": args.host,
        "app_port": args.port,
        "model_dir": args.model_dir,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    return {name: value for name, value in flags.items() if value is not None}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from pydantic import ValidationError

        from api.config import load_settings
    except ImportError as exc:
        return _cannot_start(f"this Python environment lacks a library the service needs ({exc})")
    try:
        settings = load_settings(**_overrides(args))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return _cannot_start(f"invalid setting -- {problems}")
    try:
        serve(settings)
    except ImportError as exc:
        return _cannot_start(f"this Python environment lacks a library the service needs ({exc})")
    return 0


def _cannot_start(reason: str) -> int:
    sys.stderr.write(
        f"modelo-api: cannot start: {reason}.\n"
        "  `make run` builds and uses the environment the bundle needs; `modelo-api --help` lists the settings.\n"
    )
    return 2


def serve(settings: Settings) -> None:
    """Build the app from settings and run it under uvicorn until interrupted."""
    from api.auth import AuthConfigError
    from api.main import create_app
    from api.observability.logging import choose_format
    from api.server import serve as serve_until_stopped

    try:
        app = create_app(settings)
    except AuthConfigError as exc:
        sys.stderr.write(f"modelo-api: cannot start: {exc}\n")
        raise SystemExit(2) from None
    service: Service = app.state.service
    if choose_format(settings.log_format) == "console":

        def banner(model: LoadedModel, trigger: str) -> None:
            if trigger == "startup":
                sys.stdout.write(banner_text(settings, service, model))
                sys.stdout.flush()

        service.registry.on_swap(banner)
    serve_until_stopped(app, settings)


def banner_text(settings: Settings, service: Service, model: LoadedModel) -> str:
    """What a person at a terminal needs once the model is ready: where, how to authenticate, what is served."""
    scheme = "https" if settings.ssl_certfile else "http"
    host = "localhost" if settings.app_host in ("0.0.0.0", "::", "") else settings.app_host  # noqa: S104
    url = f"{scheme}://{host}:{settings.app_port}"
    mode = service.auth.mode
    key = {
        "generated": "generated for this run, printed once in the warning above "
        "(set API_KEYS=name:your-key to choose your own)",
        "disabled": "none: AUTH_DISABLED=true, every endpoint is open",
        "configured": "yours, from API_KEYS / API_KEYS_FILE / JWT_* (send X-API-Key: <key>)",
    }[mode]
    files = " + ".join(a.name for a in model.artifacts)
    lines = [
        "",
        f"  modelo-ml-api {__version__} is serving model {model.version} ({files})",
        f"    URL       {url}",
        f"    Docs      {url}/docs",
        f"    API key   {key}",
        f'    Try       curl -H "X-API-Key: $KEY" {url}/model',
    ]
    if model.files.demo:
        lines.append(
            "    NOTE      this is the DEMO bundle (synthetic data): MODEL_DIR holds no model_*.pkl of yours"
        )
    lines += ["  Stop with Ctrl+C.", ""]
    return "\n".join(lines) + "\n"
