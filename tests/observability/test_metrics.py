"""ServiceMetrics: what a scrape shows after driving it, parsed back from the exposition text."""

from __future__ import annotations

import asyncio
import json
import math
import time

import httpx
import numpy as np
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import InvalidInputError
from api.http.access import DOCS_PATHS, STATIC_DOCS_PREFIX
from api.http.gateway import Gateway
from api.observability.metrics import (
    LATENCY_BUCKETS,
    MAX_ROUTE_LABELS,
    ServiceMetrics,
)
from tests.support.timing import undisturbed

FEATURES = ("tenure", "MonthlyCharges", "Contract")


def samples(metrics: ServiceMetrics) -> list[Sample]:
    """Every sample of a scrape, parsed from the rendered text."""
    payload, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return [s for fam in text_string_to_metric_families(payload.decode()) for s in fam.samples]


def value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    """The one sample called ``name`` whose labels are exactly ``labels``."""
    found = [s.value for s in samples(metrics) if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def label_values(metrics: ServiceMetrics, name: str, label: str) -> set[str]:
    return {s.labels[label] for s in samples(metrics) if s.name == name and label in s.labels}


def loaded(version: str = "20240101_000000", classes: list[object] | None = None) -> ServiceMetrics:
    metrics = ServiceMetrics(process_metrics=False)
    metrics.model_loaded(
        version=version,
        sha256="a" * 64,
        trigger="startup",
        features=FEATURES,
        classes=[0, 1] if classes is None else classes,
    )
    return metrics


def test_every_service_metric_is_prefixed_and_typed() -> None:
    payload, _ = ServiceMetrics(process_metrics=False).render()
    families = list(text_string_to_metric_families(payload.decode()))
    assert families
    for fam in families:
        assert fam.name.startswith("modelo_"), fam.name
        assert fam.type in {"counter", "gauge", "histogram"}, (fam.name, fam.type)


def test_process_metrics_are_included_by_default() -> None:
    names = {s.name for s in samples(ServiceMetrics())}
    assert "process_resident_memory_bytes" in names
    assert "python_info" in names


def test_instances_have_independent_registries() -> None:
    first, second = ServiceMetrics(process_metrics=False), ServiceMetrics(process_metrics=False)
    first.observe_request("/predict", "POST", 200, 0.01)
    labels = {"route": "/predict", "method": "POST", "status_class": "2xx"}
    assert value(first, "modelo_http_requests_total", **labels) == 1
    assert not [s for s in samples(second) if s.name == "modelo_http_requests_total"]


@pytest.mark.parametrize(
    ("status", "status_class"),
    [
        pytest.param(200, "2xx", id="ok"),
        pytest.param(204, "2xx", id="no-content"),
        pytest.param(307, "3xx", id="redirect"),
        pytest.param(422, "4xx", id="invalid"),
        pytest.param(503, "5xx", id="not-ready"),
        pytest.param(999, "other", id="nonsense"),
    ],
)
def test_http_status_is_labelled_by_class(status: int, status_class: str) -> None:
    metrics = ServiceMetrics(process_metrics=False)
    metrics.observe_request("/predict", "POST", status, 0.003)
    labels = {"route": "/predict", "method": "POST", "status_class": status_class}
    assert value(metrics, "modelo_http_requests_total", **labels) == 1
    assert value(metrics, "modelo_http_request_duration_seconds_count", **labels) == 1


def test_http_latency_histogram_buckets() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    for seconds in (0.00004, 0.0003, 0.0003, 0.02, 7.0, 30.0):
        metrics.observe_request("/predict", "POST", 200, seconds)
    base = {"route": "/predict", "method": "POST", "status_class": "2xx"}
    bucket = "modelo_http_request_duration_seconds_bucket"
    assert value(metrics, bucket, **base, le="5e-05") == 1
    assert value(metrics, bucket, **base, le="0.0005") == 3
    assert value(metrics, bucket, **base, le="0.025") == 4
    assert value(metrics, bucket, **base, le="10.0") == 5
    assert value(metrics, bucket, **base, le="+Inf") == 6
    assert value(metrics, "modelo_http_request_duration_seconds_sum", **base) == pytest.approx(37.02064)


def test_raw_paths_never_become_labels() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    for i in range(1000):
        path = f"/predict/{i}" if i % 2 else f"/customers/{i}?q={i}"
        metrics.observe_request(metrics.route_label(path), "GET", 404, 0.001)
    metrics.observe_request(metrics.route_label("/predict"), "POST", 200, 0.001)
    metrics.observe_request("/predict", "BREW", 405, 0.001)
    assert label_values(metrics, "modelo_http_requests_total", "route") == {"/predict", "other"}
    assert label_values(metrics, "modelo_http_requests_total", "method") == {"GET", "POST", "other"}
    assert value(metrics, "modelo_http_requests_total", route="other", method="GET", status_class="4xx") == (1000)


def test_route_labels_are_capped_even_for_a_catch_all_router() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    for i in range(3 * MAX_ROUTE_LABELS):
        metrics.observe_request(f"/template/{i}", "GET", 200, 0.001)
    routes = label_values(metrics, "modelo_http_requests_total", "route")
    assert len(routes) == MAX_ROUTE_LABELS + 1
    assert "other" in routes


def test_inference_phases_have_one_histogram_each() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    metrics.observe_phase("validation", 0.00007)
    metrics.observe_phase("prediction", 0.002)
    metrics.observe_phase("prediction", 0.004)
    phases = label_values(metrics, "modelo_inference_phase_seconds_count", "phase")
    assert phases == {"validation", "queue_wait", "preprocessing", "prediction", "explanation"}
    count = "modelo_inference_phase_seconds_count"
    assert value(metrics, count, phase="prediction") == 2
    assert value(metrics, count, phase="preprocessing") == 0
    bucket = "modelo_inference_phase_seconds_bucket"
    assert value(metrics, bucket, phase="validation", le="0.0001") == 1
    assert value(metrics, bucket, phase="prediction", le="0.0025") == 1
    les = {s.labels["le"] for s in samples(metrics) if s.name == bucket}
    assert len(les) == len(LATENCY_BUCKETS) + 1


def test_batch_rows_histograms() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    for rows in (1, 1, 50, 1000):
        metrics.observe_request_rows(rows)
    metrics.observe_model_call(64)
    assert value(metrics, "modelo_request_rows_bucket", le="1.0") == 2
    assert value(metrics, "modelo_request_rows_bucket", le="64.0") == 3
    assert value(metrics, "modelo_request_rows_sum") == 1052
    assert value(metrics, "modelo_model_call_rows_bucket", le="32.0") == 0
    assert value(metrics, "modelo_model_call_rows_bucket", le="64.0") == 1


def test_errors_by_code_are_preinitialised_and_bounded() -> None:
    metrics = ServiceMetrics(process_metrics=False, extra_error_codes=["rate_limited"])
    metrics.observe_error("invalid_input")
    metrics.observe_error("invalid_input")
    metrics.observe_error("rate_limited")
    metrics.observe_error("something the user typed")
    codes = label_values(metrics, "modelo_errors_total", "code")
    assert {"invalid_input", "not_ready", "overloaded", "payload_too_large", "other"} <= codes
    assert "something the user typed" not in codes
    assert value(metrics, "modelo_errors_total", code="invalid_input") == 2
    assert value(metrics, "modelo_errors_total", code="rate_limited") == 1
    assert value(metrics, "modelo_errors_total", code="other") == 1
    assert value(metrics, "modelo_errors_total", code="not_ready") == 0


def test_predictions_by_class_and_score_histogram() -> None:
    metrics = loaded(classes=["No", "Yes"])
    metrics.observe_predictions(np.array(["No", "Yes", "No", "Maybe"]), np.array([0.1, 0.9, 0.05, 1.0]))
    metrics.observe_predictions(["Yes"], [0.5])  # the one-row path
    assert value(metrics, "modelo_predictions_total", label="No") == 2
    assert value(metrics, "modelo_predictions_total", label="Yes") == 2
    assert value(metrics, "modelo_predictions_total", label="other") == 1
    bucket = "modelo_prediction_score_bucket"
    les = [s.labels["le"] for s in samples(metrics) if s.name == bucket]
    assert les[:3] == ["0.05", "0.1", "0.15"]
    assert les[-2:] == ["1.0", "+Inf"]
    assert value(metrics, bucket, le="0.05") == 1  # a bound holds its own value (le)
    assert value(metrics, bucket, le="0.1") == 2
    assert value(metrics, bucket, le="0.5") == 3
    assert value(metrics, bucket, le="0.95") == 4
    assert value(metrics, bucket, le="1.0") == 5
    assert value(metrics, "modelo_prediction_score_count") == 5
    assert value(metrics, "modelo_prediction_score_sum") == pytest.approx(2.55)


def test_integer_classes_and_numpy_labels_agree() -> None:
    metrics = loaded(classes=[np.int64(0), np.int64(1)])
    metrics.observe_predictions(np.array([0, 1, 1]))
    metrics.observe_predictions([np.int64(1)])
    assert value(metrics, "modelo_predictions_total", label="1") == 3
    assert value(metrics, "modelo_predictions_total", label="0") == 1


def test_regression_counts_rows_under_value() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    metrics.model_loaded(version="v1", sha256="b" * 64, trigger="startup", features=FEATURES, classes=None)
    metrics.observe_predictions(np.array([12.5, 99.0, 12.5]))
    assert label_values(metrics, "modelo_predictions_total", "label") == {"value"}
    assert value(metrics, "modelo_predictions_total", label="value") == 3


def test_nan_scores_are_not_observed() -> None:
    metrics = loaded()
    metrics.observe_predictions([1, 1], [float("nan"), 0.7])
    metrics.observe_predictions([1], [float("nan")])
    metrics.observe_predictions([1], [0.05])
    assert value(metrics, "modelo_prediction_score_count") == 2
    assert value(metrics, "modelo_prediction_score_bucket", le="0.05") == 1


def test_model_swap_leaves_one_info_series() -> None:
    metrics = loaded("20240101_000000")
    metrics.model_loaded(
        version="20240202_000000",
        sha256="c" * 64,
        trigger="reload",
        features=FEATURES,
        classes=[0, 1],
    )
    info = [s for s in samples(metrics) if s.name == "modelo_model_info"]
    assert [(s.labels, s.value) for s in info] == [({"version": "20240202_000000", "sha256": "c" * 64}, 1)]
    assert value(metrics, "modelo_model_loads_total", outcome="success", trigger="startup") == 1
    assert value(metrics, "modelo_model_loads_total", outcome="success", trigger="reload") == 1
    assert value(metrics, "modelo_model_last_load_timestamp_seconds") == pytest.approx(time.time(), abs=5)


def test_reloading_the_same_model_keeps_its_series() -> None:
    metrics = loaded("v1")
    metrics.model_loaded(version="v1", sha256="a" * 64, trigger="reload", features=FEATURES, classes=[0, 1])
    assert len([s for s in samples(metrics) if s.name == "modelo_model_info"]) == 1


def test_load_failures_and_readiness() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    assert value(metrics, "modelo_model_loads_total", outcome="failure", trigger="reload") == 0
    assert value(metrics, "modelo_ready") == 0
    metrics.model_load_failed("startup")
    metrics.set_ready(True)
    assert value(metrics, "modelo_model_loads_total", outcome="failure", trigger="startup") == 1
    assert value(metrics, "modelo_ready") == 1
    metrics.set_ready(False)
    assert value(metrics, "modelo_ready") == 0
    assert not [s for s in samples(metrics) if s.name == "modelo_model_info"]


def test_input_quality_is_bounded_by_the_schema() -> None:
    metrics = loaded()
    metrics.observe_input_quality(
        missing={"tenure": 2, "not_a_feature": 5},
        unknown_category={"Contract": 1},
        out_of_range={"MonthlyCharges": 3, "tenure": 0},
    )
    assert label_values(metrics, "modelo_input_missing_total", "feature") == {*FEATURES, "other"}
    assert value(metrics, "modelo_input_missing_total", feature="tenure") == 2
    assert value(metrics, "modelo_input_missing_total", feature="other") == 5
    assert value(metrics, "modelo_input_unknown_category_total", feature="Contract") == 1
    assert value(metrics, "modelo_input_out_of_range_total", feature="MonthlyCharges") == 3
    assert value(metrics, "modelo_input_out_of_range_total", feature="tenure") == 0


def test_schema_change_drops_old_features() -> None:
    metrics = loaded()
    metrics.set_drift({"tenure": 0.3, "Contract": 0.01}, 0.05, 500)
    metrics.model_loaded(
        version="v2",
        sha256="d" * 64,
        trigger="reload",
        features=["tenure", "gender"],
        classes=[0, 1],
    )
    assert label_values(metrics, "modelo_input_missing_total", "feature") == {
        "tenure",
        "gender",
        "other",
    }
    assert label_values(metrics, "modelo_drift_psi", "feature") == {"tenure"}
    metrics.model_loaded(version="v3", sha256="e" * 64, trigger="reload", features=["tenure"], classes=["No", "Yes"])
    assert label_values(metrics, "modelo_predictions_total", "label") == {"No", "Yes"}


def test_drift_gauges() -> None:
    metrics = loaded()
    metrics.set_drift({"tenure": 0.25, "Contract": 0.01, "injected": 9.0}, 0.12, 800)
    assert value(metrics, "modelo_drift_psi", feature="tenure") == 0.25
    assert label_values(metrics, "modelo_drift_psi", "feature") == {"tenure", "Contract"}
    assert value(metrics, "modelo_prediction_psi") == 0.12
    assert value(metrics, "modelo_drift_window_rows") == 800
    metrics.set_drift({"tenure": 0.05, "Contract": None}, None, 10)
    assert label_values(metrics, "modelo_drift_psi", "feature") == {"tenure"}
    assert math.isnan(value(metrics, "modelo_prediction_psi"))


def test_live_performance_and_feedback() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    assert math.isnan(value(metrics, "modelo_live_accuracy"))
    metrics.set_live_performance(labelled=250, accuracy=0.81, precision=0.7, recall=0.6, roc_auc=None)
    assert value(metrics, "modelo_live_accuracy") == 0.81
    assert value(metrics, "modelo_live_precision") == 0.7
    assert value(metrics, "modelo_live_recall") == 0.6
    assert math.isnan(value(metrics, "modelo_live_roc_auc"))
    assert value(metrics, "modelo_live_labelled") == 250
    metrics.observe_feedback("accepted", 3)
    metrics.observe_feedback("expired")
    assert value(metrics, "modelo_feedback_total", outcome="accepted") == 3
    assert value(metrics, "modelo_feedback_total", outcome="expired") == 1
    assert value(metrics, "modelo_feedback_total", outcome="unknown") == 0
    assert value(metrics, "modelo_feedback_total", outcome="duplicate") == 0


def test_openmetrics_is_negotiated() -> None:
    payload, content_type = ServiceMetrics(process_metrics=False).render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert payload.endswith(b"# EOF\n")


# --- middleware ----------------------------------------------------------------------
class _Route:
    path_format = "/items/{item_id}"


def _app(
    status: int, *, route: bool = False, fail: BaseException | None = None, fail_after_start: bool = False
) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if route:
            scope["route"] = _Route()  # what Starlette's router leaves in the shared scope
        if fail is not None and not fail_after_start:
            raise fail
        await send({"type": "http.response.start", "status": status, "headers": []})
        if fail is not None:
            raise fail
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def gateway(app: ASGIApp, metrics: ServiceMetrics) -> Gateway:
    return Gateway(app, metrics=metrics, docs_paths=DOCS_PATHS, static_prefix=STATIC_DOCS_PREFIX)


def _call(metrics: ServiceMetrics, app: ASGIApp, path: str, method: str = "GET", scheme: str = "http") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "headers": [], "scheme": scheme}
    asyncio.run(gateway(app, metrics)(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("app", "path", "route", "status_class"),
    [
        pytest.param(_app(200), "/predict", "/predict", "2xx", id="known-path"),
        pytest.param(_app(404), "/wp-admin.php", "other", "4xx", id="unknown-path"),
        pytest.param(_app(200, route=True), "/items/42", "/items/{item_id}", "2xx", id="template"),
    ],
)
def test_gateway_labels(app: ASGIApp, path: str, route: str, status_class: str) -> None:
    metrics = ServiceMetrics(process_metrics=False)
    _call(metrics, app, path)
    labels = {"route": route, "method": "GET", "status_class": status_class}
    assert value(metrics, "modelo_http_requests_total", **labels) == 1
    assert value(metrics, "modelo_http_requests_in_flight") == 0


def test_gateway_answers_a_crash_with_a_json_500_and_counts_it() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    sent = _call(metrics, _app(200, fail=RuntimeError("boom")), "/predict", "POST")
    assert sent[0]["status"] == 500
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"x-request-id"]
    body = json.loads(sent[1]["body"])
    assert body["error"] == {"code": "internal_error", "message": "internal server error"}
    assert (body["status"], body["title"], body["detail"]) == (500, "Internal server error", "internal server error")
    labels = {"route": "/predict", "method": "POST", "status_class": "5xx"}
    assert value(metrics, "modelo_http_requests_total", **labels) == 1
    assert value(metrics, "modelo_errors_total", code="internal_error") == 1
    assert value(metrics, "modelo_http_requests_in_flight") == 0


def test_gateway_answers_an_escaped_service_error_with_its_own_status() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    error = InvalidInputError("tenure: expected a number", details=[{"field": "tenure"}])
    sent = _call(metrics, _app(200, fail=error), "/predict", "POST")
    assert sent[0]["status"] == 422
    assert json.loads(sent[1]["body"])["error"]["details"] == [{"field": "tenure"}]
    assert value(metrics, "modelo_http_requests_total", route="/predict", method="POST", status_class="4xx") == 1


def test_gateway_lets_a_crash_after_the_response_started_reach_the_server() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    with pytest.raises(RuntimeError):
        _call(metrics, _app(200, fail=RuntimeError("late"), fail_after_start=True), "/predict", "POST")
    assert value(metrics, "modelo_http_requests_total", route="/predict", method="POST", status_class="2xx") == 1
    assert value(metrics, "modelo_http_requests_in_flight") == 0


@pytest.mark.parametrize(
    ("path", "scheme", "csp_prefix", "hsts"),
    [
        pytest.param("/predict", "http", b"default-src 'none'", False, id="api"),
        pytest.param("/docs", "http", b"default-src 'self'", False, id="docs"),
        pytest.param("/predict", "https", b"default-src 'none'", True, id="api-tls"),
    ],
)
def test_gateway_sets_security_headers_and_keeps_the_app_s_own(
    path: str, scheme: str, csp_prefix: bytes, hsts: bool
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"cache-control", b"max-age=5")]})
        await send({"type": "http.response.body", "body": b"{}"})

    sent = _call(ServiceMetrics(process_metrics=False), app, path, scheme=scheme)
    headers = dict(sent[0]["headers"])
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"content-security-policy"].startswith(csp_prefix)
    assert headers[b"cache-control"] == b"max-age=5"  # the app's own value wins
    assert [name for name, _ in sent[0]["headers"]].count(b"cache-control") == 1
    assert (b"strict-transport-security" in headers) is hsts


def test_gateway_overhead_is_small() -> None:
    """Generous bounds for shared CI machines; measured ~10 µs on two idle cores.

    CPU time of this thread carries the bound (a loaded machine makes the thread wait, not work
    more); a looser wall-time bound still catches a blocking call that costs no CPU.
    """
    metrics = ServiceMetrics(process_metrics=False)
    inner = _app(200)
    wrapped = gateway(inner, metrics)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        return None

    async def per_call(app: ASGIApp, n: int) -> tuple[float, float]:
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(n):
            await app({"type": "http", "path": "/predict", "method": "POST", "headers": []}, receive, send)
        return (time.thread_time() - cpu) / n, (time.perf_counter() - wall) / n

    async def measure() -> tuple[float, float]:
        best_cpu = best_wall = math.inf
        for _ in range(5):
            (cpu, wall), (bare_cpu, bare_wall) = await per_call(wrapped, 2000), await per_call(inner, 2000)
            best_cpu, best_wall = min(best_cpu, cpu - bare_cpu), min(best_wall, wall - bare_wall)
        return best_cpu, best_wall

    attempts = []
    for _ in range(3):  # a regression is slow in every attempt, a busy machine in some
        with undisturbed():  # coverage's tracer (make test) multiplies every traced line's cost
            attempts.append(asyncio.run(measure()))
        if attempts[-1][0] < 60e-6 and attempts[-1][1] < 1e-3:
            break
    assert min(cpu for cpu, _ in attempts) < 60e-6, attempts
    assert min(wall for _, wall in attempts) < 1e-3, attempts


def test_middleware_on_a_real_fastapi_app_labels_by_template() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    app = FastAPI()
    router = APIRouter(prefix="/monitoring")

    @router.get("/drift")
    def drift() -> dict[str, str]:
        return {}

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/predict")
    def predict() -> dict[str, str]:
        return {}

    app.include_router(router)
    app.add_middleware(Gateway, metrics=metrics, docs_paths=DOCS_PATHS, static_prefix=STATIC_DOCS_PREFIX)

    async def drive() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for i in range(200):
                await client.get(f"/items/{i}")
                await client.get(f"/scan/{i}")
            await client.get("/items/not-an-int")
            await client.get("/monitoring/drift")
            await client.get("/predict")
            await client.post("/predict")

    asyncio.run(drive())
    total = "modelo_http_requests_total"
    assert label_values(metrics, total, "route") == {"/items/{item_id}", "/monitoring/drift", "/predict", "other"}
    assert value(metrics, total, route="/items/{item_id}", method="GET", status_class="2xx") == 200
    assert value(metrics, total, route="/items/{item_id}", method="GET", status_class="4xx") == 1
    assert value(metrics, total, route="other", method="GET", status_class="4xx") == 200
    assert value(metrics, total, route="/predict", method="GET", status_class="4xx") == 1  # 405
    assert value(metrics, total, route="/predict", method="POST", status_class="2xx") == 1
