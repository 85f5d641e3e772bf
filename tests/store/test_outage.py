"""A real outage: the store's PostgreSQL behind a TCP proxy the test stops and restarts."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from tests.store.conftest import records, running, store_settings
from tests.support.databases import TcpProxy, postgres_database, psql


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


@pytest.mark.slow
def test_rows_are_buffered_during_an_outage_and_caught_up_after(default_bundle: Path, tmp_path: Path) -> None:
    rows = records(90, seed=21)
    with postgres_database("modelo_outage") as url:
        proxy = TcpProxy(("127.0.0.1", 5432))
        proxy.start()
        through_proxy = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")

        async def scenario() -> tuple[float, float, float, int]:
            async with running(store_settings(default_bundle, tmp_path, through_proxy)) as (_, clients):
                client = clients["client"]
                for row in rows[:30]:
                    assert (await client.post("/predict", json=row)).status_code == 200
                await asyncio.sleep(0.5)
                proxy.stop()  # the database is gone
                for row in rows[30:]:
                    answer = await client.post("/predict", json=row)
                    assert answer.status_code == 200, "the service keeps answering without its store"
                deadline = time.monotonic() + 30
                while True:
                    metrics = (await client.get("/metrics")).text
                    failures = _metric(metrics, "modelo_store_write_failures_total")
                    backlog = _metric(metrics, "modelo_store_backlog_rows")
                    if (failures > 0 and backlog == 60) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                during = int(psql(url, "SELECT count(*) FROM predictions"))
                proxy.start()  # back
                deadline = time.monotonic() + 60
                while _metric((await client.get("/metrics")).text, "modelo_store_backlog_rows") > 0:
                    assert time.monotonic() < deadline, "the store did not catch up"
                    await asyncio.sleep(0.2)
                dropped = _metric((await client.get("/metrics")).text, "modelo_store_dropped_rows_total")
                return failures, backlog, dropped, during

        try:
            failures, backlog, dropped, during = asyncio.run(scenario())
        finally:
            proxy.stop()
        assert failures > 0 and backlog == 60 and dropped == 0
        assert during == 30
        assert int(psql(url, "SELECT count(*) FROM predictions")) == 90


@pytest.mark.slow
def test_a_database_down_at_start_does_not_stop_the_service(default_bundle: Path, tmp_path: Path) -> None:
    rows = records(20, seed=22)
    with postgres_database("modelo_outage_start") as url:
        proxy = TcpProxy(("127.0.0.1", 5432))  # not started: nothing listens there yet
        through_proxy = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")

        async def scenario() -> tuple[int, float]:
            async with running(store_settings(default_bundle, tmp_path, through_proxy)) as (_, clients):
                statuses = [(await clients["client"].post("/predict", json=row)).status_code for row in rows]
                assert statuses == [200] * 20
                proxy.start()
                deadline = time.monotonic() + 60
                while True:
                    metrics = (await clients["client"].get("/metrics")).text
                    if _metric(metrics, "modelo_store_written_rows_total") == 20 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                return len(statuses), _metric(metrics, "modelo_store_backlog_rows")

        try:
            answered, backlog = asyncio.run(scenario())
        finally:
            proxy.stop()
        assert answered == 20 and backlog == 0
        assert int(psql(url, "SELECT count(*) FROM predictions")) == 20
