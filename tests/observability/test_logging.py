"""JSON logging, checked on the real stdout of a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from api.observability.logging import uvicorn_log_config

ROOT = Path(__file__).resolve().parents[2]
ECS_FIELDS = ("@timestamp", "log.level", "message", "ecs.version", "service.name")
TRICKY = 'quote " backslash \\ newline \n tab \t unicode ünï ☃ 𝄞 nul \x00 end'

SCRIPT = textwrap.dedent(
    """
    import logging, os, sys, warnings
    from api.observability.logging import (
        add_request_fields, bind_request, clear_request, configure_logging, get_logger, log_request,
    )

    configure_logging(os.environ["LOG_LEVEL"], os.environ.get("LOG_FORMAT", "json"))
    log = get_logger("modelo.test")
    tricky = TRICKY
    log.debug("debug line")
    log.info(tricky, detail=tricky, api_key="k-123", Authorization="Bearer t-456")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    logging.getLogger("uvicorn").warning("uvicorn parent %s", "logger")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /health HTTP/1.1" 200')
    logging.getLogger("some.library").info("stdlib %s", tricky)
    logging.getLogger("api.model.loader").warning(
        "compiled preprocessing not used", extra={"reason": tricky, "model_version": "20250717_214252",
                                                  "load_seconds": 0.25, "api_key": "k-789", "candidates": ["a.pkl"]}
    )
    bind_request("req-abc-123", method="POST", path="/predict")
    add_request_fields(user="alice", model_version="20240101_000000")
    try:
        raise ValueError(tricky)
    except ValueError:
        log.exception("structlog failure")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    warnings.warn("a library warning")
    log_request(method="POST", path="/predict", status_code=200, duration_ns=1234567)
    log.info("odd values", huge=2**80, surrogate="\\ud800", obj=object())
    clear_request()
    log.info("after the request")
    """
).replace("TRICKY", repr(TRICKY))


def run_script(level: str, **env: str) -> list[dict[str, Any]]:
    """Run SCRIPT in a subprocess; every stdout line must be one JSON object."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": level, **env},
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert result.stderr == b"", result.stderr.decode(errors="replace")
    lines = result.stdout.decode("utf-8").splitlines()
    assert lines
    records = [json.loads(line) for line in lines]
    assert all(isinstance(record, dict) for record in records)
    return records


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return run_script("INFO")


def by_message(records: list[dict[str, Any]], message: str) -> dict[str, Any]:
    found = [r for r in records if r["message"] == message]
    assert len(found) == 1, (message, [r["message"] for r in records])
    return found[0]


def test_every_line_has_the_ecs_fields(records: list[dict[str, Any]]) -> None:
    for record in records:
        for field in ECS_FIELDS:
            assert field in record, (field, record)
        assert record["service.name"] == "modelo-ml-api"
        assert record["@timestamp"].endswith("Z")


def test_tricky_messages_round_trip(records: list[dict[str, Any]]) -> None:
    record = by_message(records, TRICKY)
    assert record["detail"] == TRICKY
    assert record["log.level"] == "info"
    assert by_message(records, f"stdlib {TRICKY}")["log.logger"] == "some.library"


def test_secrets_are_redacted(records: list[dict[str, Any]]) -> None:
    record = by_message(records, TRICKY)
    assert record["api_key"] == "[REDACTED]"
    assert record["Authorization"] == "[REDACTED]"


def test_uvicorn_lines_are_json_and_access_log_is_off(records: list[dict[str, Any]]) -> None:
    assert by_message(records, "Started server process [4242]")["log.logger"] == "uvicorn.error"
    assert by_message(records, "uvicorn parent logger")["log.level"] == "warning"
    assert not [r for r in records if r["log.logger"] == "uvicorn.access"]


def test_level_filters_debug(records: list[dict[str, Any]]) -> None:
    assert not [r for r in records if r["message"] == "debug line"]


def test_exceptions_carry_error_fields(records: list[dict[str, Any]]) -> None:
    for message in ("structlog failure", "Exception in ASGI application"):
        record = by_message(records, message)
        assert record["log.level"] == "error"
        assert record["error.type"] == "ValueError"
        assert record["error.message"] == TRICKY
        assert record["error.stack_trace"].startswith("Traceback (most recent call last)")
        assert "line " in record["error.stack_trace"]  # -c source: no code line to show


def test_request_context_reaches_every_logger(records: list[dict[str, Any]]) -> None:
    for message in ("structlog failure", "Exception in ASGI application", "request finished"):
        record = by_message(records, message)
        assert record["http.request.id"] == "req-abc-123"
        assert record["user.name"] == "alice"
        assert record["labels.model_version"] == "20240101_000000"
    assert "http.request.id" not in by_message(records, TRICKY)
    assert "http.request.id" not in by_message(records, "after the request")


def test_access_line(records: list[dict[str, Any]]) -> None:
    record = by_message(records, "request finished")
    assert record["log.logger"] == "modelo.access"
    assert record["http.request.method"] == "POST"
    assert record["url.path"] == "/predict"
    assert record["http.response.status_code"] == 200
    assert record["event.duration"] == 1234567


def test_warnings_and_unserialisable_values(records: list[dict[str, Any]]) -> None:
    warning = [r for r in records if r["log.logger"] == "py.warnings"]
    assert len(warning) == 1
    assert "a library warning" in warning[0]["message"]
    odd = by_message(records, "odd values")
    assert odd["huge"] == str(2**80)
    assert odd["surrogate"] == "\\ud800"


def test_stdlib_extra_fields_reach_the_line(records: list[dict[str, Any]]) -> None:
    """`log.warning(msg, extra={...})`: every field in the JSON line, under ECS names or labels.*, secrets redacted."""
    record = by_message(records, "compiled preprocessing not used")
    assert record["labels.reason"] == TRICKY
    assert record["labels.model_version"] == "20250717_214252"
    assert record["labels.load_seconds"] == 0.25
    assert record["labels.candidates"] == ["a.pkl"]
    assert record["labels.api_key"] == "[REDACTED]"
    assert "k-789" not in json.dumps(records)
    assert not [r for r in records if any("color_message" in key for key in r)]


def test_console_format_is_human_and_keeps_the_fields() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "info", "LOG_FORMAT": "console"},
        capture_output=True,
        timeout=60,
        check=True,
    )
    text = result.stdout.decode()
    (line,) = [ln for ln in text.splitlines() if "compiled preprocessing not used" in ln]
    assert " WARNING " in line and "model_version=20250717_214252" in line and "load_seconds=0.25" in line
    assert "api_key=[REDACTED]" in line and "k-789" not in text
    assert "Traceback (most recent call last)" in text  # exceptions keep their traceback, on their own lines
    assert not [ln for ln in text.splitlines() if ln.startswith("{")]


def test_log_level_honoured() -> None:
    levels = {r["log.level"] for r in run_script("ERROR")}
    assert levels == {"error"}
    assert "debug line" in {r["message"] for r in run_script("debug")}


def test_access_line_follows_the_level() -> None:
    def access_lines(level: str) -> list[dict[str, Any]]:
        return [r for r in run_script(level) if r.get("log.logger") == "modelo.access"]

    assert access_lines("WARNING") == []
    (line,) = access_lines("INFO")
    assert line["url.path"] == "/predict" and line["http.response.status_code"] == 200


def test_ascii_stdout_still_gives_utf8_json() -> None:
    record = by_message(run_script("INFO", PYTHONIOENCODING="ascii"), TRICKY)
    assert record["detail"] == TRICKY


def test_uvicorn_log_config_is_json_from_the_first_line(tmp_path: Path) -> None:
    """A real uvicorn given the dict: its own startup and shutdown lines are JSON."""
    script = textwrap.dedent(
        """
        import asyncio, uvicorn
        from api.observability.logging import configure_logging, uvicorn_log_config

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return

        configure_logging("INFO")
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=uvicorn_log_config("INFO"), access_log=False
        )
        server = uvicorn.Server(config)

        async def main():
            task = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            server.should_exit = True
            await task

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.decode().splitlines()
    records = [json.loads(line) for line in lines]
    messages = [r["message"] for r in records]
    assert any(m.startswith("Started server process") for m in messages), messages
    assert any(m.startswith("Uvicorn running on") for m in messages), messages
    assert all(r["log.logger"].startswith("uvicorn") for r in records)
    assert result.stderr == b""


def test_uvicorn_log_config_shape() -> None:
    config = uvicorn_log_config("warning")
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.access"]["propagate"] is False
    # uvicorn writes use_colors into these two formatters when --use-colors is given.
    assert {"default", "access"} <= config["formatters"].keys()
    with pytest.raises(ValueError, match="unknown log level"):
        uvicorn_log_config("LOUD")
