"""JSON logs on stdout with ECS field names, for structlog, stdlib and uvicorn alike.

Every line is one JSON object rendered by orjson (newlines, quotes and tracebacks escaped).
``LOG_FORMAT=console`` renders the same events as short human lines instead (the default on a
terminal); a stdlib call's ``extra={...}`` fields appear in both, under ECS names or ``labels.*``.
The per-request fields live in a context variable that holds one mutable dict per request,
so fields added in a threadpool dependency (which runs in a copied context) still reach the
access line the middleware writes at the end.
"""

from __future__ import annotations

import functools
import logging
import logging.config
import sys
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

SERVICE_NAME: Final = "modelo-ml-api"
ECS_VERSION: Final = "8.11.0"
ACCESS_LOGGER: Final = "modelo.access"
# Short keyword names callers may use; anything else lands under `labels.` (ECS custom).
_ECS_NAMES: Final = {
    "request_id": "http.request.id",
    "method": "http.request.method",
    "path": "url.path",
    "status_code": "http.response.status_code",
    "duration_ns": "event.duration",
    "user": "user.name",
    "client_ip": "client.ip",
    "model_version": "labels.model_version",
}
_SECRET_HINTS: Final = (
    "authorization",
    "api_key",
    "apikey",
    "password",
    "secret",
    "token",
    "cookie",
)
ORJSON_OPTIONS: Final = orjson.OPT_NON_STR_KEYS
# What every LogRecord carries; anything else on a record came from `extra=`. uvicorn adds
# `color_message` (its message with ANSI colours), which says nothing new.
_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message", "taskName"}
LogFormat = Literal["json", "console"]

_request_fields: ContextVar[dict[str, object] | None] = ContextVar("modelo_request", default=None)


# --- request context -----------------------------------------------------------------
def _ecs_key(name: str) -> str:
    if "." in name:
        return name
    return _ECS_NAMES.get(name, f"labels.{name}")


def bind_request(request_id: str, **fields: object) -> None:
    """Start the log context of one request: its id plus fields such as ``method``, ``path``."""
    context: dict[str, object] = {"http.request.id": request_id}
    context.update({_ecs_key(k): v for k, v in fields.items()})
    _request_fields.set(context)


def add_request_fields(**fields: object) -> None:
    """Add fields (e.g. ``user``, ``model_version``) to the current request's log context."""
    context = _request_fields.get()
    if context is not None:
        # Mutated in place: copied contexts (threadpool) share this dict with the middleware.
        context.update({_ecs_key(k): v for k, v in fields.items()})


def clear_request() -> None:
    """End the current request's log context."""
    _request_fields.set(None)


def current_request_id() -> str | None:
    """The id bound by :func:`bind_request`, if a request is in progress."""
    context = _request_fields.get()
    value = context.get("http.request.id") if context is not None else None
    return value if isinstance(value, str) else None


def get_logger(name: str) -> Any:
    """A structlog logger writing through the stdlib logger ``name``."""
    return structlog.stdlib.get_logger(name)


# One lazy proxy, created once: structlog caches the bound logger on first use, where a fresh
# get_logger() per request walks the call stack for a logger name every time.
_ACCESS_LOG = structlog.stdlib.get_logger(ACCESS_LOGGER)
_ACCESS_STDLIB = logging.getLogger(ACCESS_LOGGER)


def log_request(*, method: str, path: str, status_code: int, duration_ns: int, **fields: object) -> None:
    """Write the one access line of a request (path without query string: it may hold secrets)."""
    if not _ACCESS_STDLIB.isEnabledFor(logging.INFO):
        return  # LOG_LEVEL above INFO: skip building an event nobody writes
    event = {
        "http.request.method": method,
        "url.path": path,
        "http.response.status_code": status_code,
        "event.duration": duration_ns,
    }
    event.update({_ecs_key(k): v for k, v in fields.items()})
    _ACCESS_LOG.info("request finished", **event)


# --- processors ----------------------------------------------------------------------
def _stdlib_extra(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """A stdlib record's `extra=` fields, under their ECS names (or `labels.<name>`)."""
    record = event.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                event.setdefault(_ecs_key(key), value)
    return event


def _merge_request(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    context = _request_fields.get()
    if context:
        for key, value in context.items():
            event.setdefault(key, value)
    return event


def _error_fields(exc_info: object) -> dict[str, str]:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[0] is None:
        return {}
    exc_type, exc, tb = exc_info
    return {
        "error.type": exc_type.__qualname__
        if exc_type.__module__ == "builtins"
        else f"{exc_type.__module__}.{exc_type.__qualname__}",
        "error.message": str(exc),
        "error.stack_trace": "".join(traceback.format_exception(exc_type, exc, tb)),
    }


def _to_ecs(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Rename the event to ECS: timestamp, level, message, service and error fields."""
    record: logging.LogRecord | None = event.pop("_record", None)
    event.pop("_from_structlog", None)
    created = record.created if record is not None else datetime.now(UTC).timestamp()
    message = event.pop("event", "")
    out: dict[str, object] = {
        "@timestamp": datetime.fromtimestamp(created, UTC).isoformat(timespec="microseconds")[:-6] + "Z",
        "log.level": (record.levelname if record is not None else "INFO").lower(),
        "message": message if isinstance(message, str) else str(message),
        "ecs.version": ECS_VERSION,
        "service.name": SERVICE_NAME,
        "log.logger": record.name if record is not None else "",
    }
    exc_info = event.pop("exc_info", None)
    if exc_info:
        out.update(_error_fields(exc_info))
    stack = event.pop("stack_info", None)
    if stack:
        out.setdefault("error.stack_trace", stack)
    for key, value in event.items():
        out.setdefault(key, "[REDACTED]" if _names_a_secret(key) else value)
    return out


@functools.lru_cache(maxsize=1024)
def _names_a_secret(key: str) -> bool:
    """Whether a field name hints at a secret (cached: the same few names come with every line)."""
    lowered = key.lower()
    return any(hint in lowered for hint in _SECRET_HINTS)


def _dumps(event: Mapping[str, object], **_: Any) -> str:
    """orjson, falling back to all-strings for what it refuses (huge ints, lone surrogates)."""
    try:
        return orjson.dumps(event, default=repr, option=ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        safe = {
            str(k): (v if isinstance(v, str) else repr(v)).encode("utf-8", "backslashreplace").decode()
            for k, v in event.items()
        }
        return orjson.dumps(safe).decode()


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """The one formatter: any record (structlog or stdlib) to one ECS JSON line."""

    renderer: Any = structlog.processors.JSONRenderer(serializer=_dumps)

    def __init__(self, **_ignored: object) -> None:
        # `_ignored` swallows uvicorn's `use_colors`, which it injects into its formatters.
        super().__init__(
            processors=[
                structlog.contextvars.merge_contextvars,
                _merge_request,
                _to_ecs,
                self.renderer,
            ],
            foreign_pre_chain=[_stdlib_extra],
        )


# --- configuration -------------------------------------------------------------------
def _level_name(level: str) -> str:
    name = level.strip().upper()
    if name not in logging.getLevelNamesMapping() or name == "NOTSET":
        raise ValueError(f"unknown log level {level!r}")
    return name


def choose_format(requested: str | None) -> LogFormat:
    """`json` or `console`; unset (or `auto`) means console on a terminal, JSON everywhere else."""
    value = (requested or "auto").strip().lower()
    if value == "auto":
        return "console" if sys.stdout.isatty() else "json"
    if value not in ("json", "console"):
        raise ValueError(f"unknown log format {requested!r}: use json or console")
    return "console" if value == "console" else "json"


def uvicorn_log_config(level: str, fmt: str | None = "json") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: root and uvicorn loggers as JSON (or console lines) on stdout.

    uvicorn's access logger is silenced: the app writes one access line per request.
    """
    name = _level_name(level)
    console = choose_format(fmt) == "console"
    formatter = {"()": "api.observability.console.ConsoleFormatter" if console else f"{__name__}.JsonFormatter"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # uvicorn writes `use_colors` into formatters named "default" and "access".
        "formatters": {"default": dict(formatter), "access": dict(formatter)},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": [], "level": name, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": name, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["stdout"], "level": name},
    }


def _utf8_stdout() -> None:
    """Make stdout UTF-8 so unicode messages cannot fail to encode under a C/ASCII locale."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if encoding != "utf8" and reconfigure is not None:
        reconfigure(encoding="utf-8")


_configured: list[tuple[str, str | None]] = []  # the last (level, format): configuring again is a no-op


def configure_logging(level: str, fmt: str | None = "json") -> None:
    """Send structlog, the stdlib root and uvicorn's loggers to stdout as ECS JSON (or console) lines."""
    config = uvicorn_log_config(level, fmt)
    if _configured == [(level, fmt)]:
        return
    _configured[:] = [(level, fmt)]
    _utf8_stdout()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
