"""Graceful shutdown: on SIGTERM /ready turns 503 first, requests are still answered, in-flight ones finish, exit."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import free_port, start_process, wait_ready
from tests.support.load import LoadGenerator

DRAIN = 2.0


def test_sigterm_drains_then_finishes_in_flight_requests(default_bundle: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {
        "MODEL_DIR": str(default_bundle),
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "API_KEYS": "tests:key",
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN),
        "LOG_LEVEL": "INFO",
    }
    process = start_process(env, log)
    try:
        wait_ready(url, process, log)
        client = httpx.Client(base_url=url, headers={"X-API-Key": "key"}, timeout=30)
        example = client.get("/model").json()["input_schema"]["example"]
        body = json.dumps({"instances": [example] * 200}).encode()
        slow: dict[str, Any] = {}

        def chunks() -> Iterator[bytes]:
            step = len(body) // 10 + 1
            for start in range(0, len(body), step):
                yield body[start : start + step]
                time.sleep(0.15)

        def late_slow_request() -> None:
            # Started before the drain ends, its body still arriving after: in flight when accepting stops.
            time.sleep(DRAIN - 0.8)
            with httpx.Client(base_url=url, headers={"X-API-Key": "key"}, timeout=30) as own:
                slow["started"] = time.monotonic()
                answer = own.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
                slow.update(status=answer.status_code, ended=time.monotonic())
                slow["rows"] = len(answer.json()["predictions"]) if answer.status_code == 200 else answer.text

        with LoadGenerator(url, "key", [example], threads=3, batch_sizes=(1,), pause=0.005) as load:
            load.wait_for(30)
            late = threading.Thread(target=late_slow_request)
            process.send_signal(signal.SIGTERM)
            terminated = time.monotonic()
            late.start()
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "draining"
            during = client.post("/predict", json=example)
            assert during.status_code == 200 and during.headers["connection"] == "close"
            process.wait(timeout=DRAIN + 30)
            exited = time.monotonic()
            late.join()
        assert slow["status"] == 200 and slow["rows"] == 200, slow
        assert slow["started"] < terminated + DRAIN < slow["ended"]  # in flight across the end of the drain
        answered = [a for a in load.answers if a.status is not None]
        assert all(a.status == 200 for a in answered), [a for a in answered if a.status != 200][:3]
        # Nothing failed while draining: connections are refused only once the drain is over.
        refused = [a for a in load.answers if a.status is None]
        assert all(a.sent >= terminated + DRAIN - 0.2 for a in refused), refused[:3]
        assert any(terminated < a.sent < terminated + DRAIN - 0.2 and a.status == 200 for a in load.answers)
        print(f"exit after {exited - terminated:.2f}s, {len(load.answers)} answers")  # noqa: T201
        assert DRAIN - 0.2 <= exited - terminated < DRAIN + 20
        assert process.returncode in (0, -signal.SIGTERM)
        text = log.read_text()
        assert "draining before shutdown" in text and "Application shutdown complete" in text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
