"""LOG_FORMAT=console: the same events as the JSON lines, as short human lines (the default on a terminal)."""

from __future__ import annotations

import sys
from typing import Final

import orjson
from structlog.typing import EventDict, WrappedLogger

from api.observability.logging import ORJSON_OPTIONS, JsonFormatter

_CONSOLE_DROP: Final = ("@timestamp", "log.level", "message", "ecs.version", "service.name", "log.logger")
_COLOURS: Final = {"debug": "\x1b[2m", "info": "\x1b[32m", "warning": "\x1b[33m", "error": "\x1b[31m",
                   "critical": "\x1b[1;31m"}


def _console_line(_: WrappedLogger, __: str, event: EventDict) -> str:
    """`12:04:05 INFO    model ready  model_version=… load_seconds=…` (+ the traceback, if any)."""
    level = str(event.get("log.level", "info"))
    stack = event.pop("error.stack_trace", None)
    fields = "  ".join(f"{key.removeprefix('labels.')}={_console_value(value)}" for key, value in event.items()
                       if key not in _CONSOLE_DROP)
    tag = f"{level.upper():<8}"
    if sys.stdout.isatty():
        tag = f"{_COLOURS.get(level, '')}{tag}\x1b[0m"
    line = f"{str(event.get('@timestamp', ''))[11:19]} {tag}{event.get('message', '')}"
    line += f"  {fields}" if fields else ""
    return f"{line}\n{stack.rstrip()}" if isinstance(stack, str) else line


def _console_value(value: object) -> str:
    """Plain text as it is; anything else (or text with newlines/control characters) as JSON, on one line."""
    if isinstance(value, str) and value.isprintable():
        return value
    try:
        return orjson.dumps(value, default=repr, option=ORJSON_OPTIONS).decode()
    except TypeError:
        return repr(value)


class ConsoleFormatter(JsonFormatter):
    """The same events as short human lines (LOG_FORMAT=console; the default on a terminal)."""

    renderer = staticmethod(_console_line)
