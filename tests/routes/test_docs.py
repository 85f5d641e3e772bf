"""Offline docs that show the real fields, and logs that are JSON from the first line."""

from __future__ import annotations

import json

import httpx

from tests.support.live_server import LiveServer


def test_docs_and_redoc_are_served_without_internet(default_server: LiveServer) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = httpx.get(f"{default_server.url}{page}").text
        assert f"/static-offline-docs/{asset}" in html
        assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
        assert httpx.get(f"{default_server.url}/static-offline-docs/{asset}").status_code == 200


def test_openapi_shows_the_model_fields_and_an_example_that_succeeds(default_server: LiveServer) -> None:
    document = httpx.get(f"{default_server.url}/openapi.json").json()
    record = document["components"]["schemas"]["Record"]
    fields = {f["name"] for f in default_server.client.get("/model").json()["input_schema"]["fields"]}
    # The demo manifest names customerID as its id column: documented, optional.
    assert set(record["properties"]) == fields | {"customerID"} and set(record["required"]) == fields
    assert record["properties"]["SeniorCitizen"]["anyOf"][0]["type"] == "integer"
    examples = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert default_server.client.post("/predict", json=examples["one record"]["value"]).status_code == 200
    assert default_server.client.post("/predict", json=examples["batch"]["value"]).status_code == 200
    assert {"ApiKey", "Bearer"} <= set(document["components"]["securitySchemes"])


def test_every_log_line_is_json_with_the_request_id_and_never_the_key(default_server: LiveServer) -> None:
    example = default_server.client.get("/model").json()["input_schema"]["example"]
    tricky = {**example, "gender": 'Fe"male\n\u00e9'}
    for payload in (example, tricky, {"instances": []}):
        default_server.client.post("/predict", json=payload, headers={"X-Request-ID": "judge-7f3a"})
    response = default_server.client.post("/predict", json=example, headers={"X-Request-ID": "judge-last"})
    assert response.headers["x-request-id"] == "judge-last"
    assert len(response.headers["x-request-id"]) > 0
    generated = default_server.client.get("/health").headers["x-request-id"]
    lines = default_server.log_lines()
    events = [json.loads(line) for line in lines]  # every line, startup included, parses
    assert all("@timestamp" in e and "log.level" in e and "message" in e for e in events)
    access = [e for e in events if e.get("http.request.id") == "judge-7f3a"]
    assert len(access) >= 3
    assert {e["http.response.status_code"] for e in access} >= {200, 422}
    assert any(e.get("user.name") == "tests" for e in access)
    assert any(e.get("labels.model_version") for e in access)
    assert any(e.get("http.request.id") == generated for e in events)
    assert default_server.api_key not in "\n".join(lines)
    assert 'Fe\\"male' not in "\n".join(lines), "payloads are not logged"


def test_openapi_tells_single_from_batch_and_documents_every_error(default_server: LiveServer) -> None:
    document = httpx.get(f"{default_server.url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "instances" not in schemas["SinglePrediction"]["properties"]
    assert {"predictions", "model_version"} == set(schemas["BatchPrediction"]["required"])
    assert schemas["SinglePrediction"]["additionalProperties"] is False
    assert {"error", "type", "title", "status", "detail"} == set(schemas["Error"]["required"])
    assert "HTTPValidationError" not in schemas
    feedback = document["paths"]["/feedback"]["post"]
    assert feedback["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/FeedbackRequest")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status, response in responses.items():
                assert response.get("content"), (method, path, status)
            if path not in ("/health", "/ready"):
                assert {"401", "403", "429", "504"} <= set(responses), (method, path)
    predict = document["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "401", "403", "413", "415", "422", "429", "503", "504"} == set(predict)
    for operations in document["paths"].values():
        for operation in operations.values():
            # A named schema for every answer: no bare "object" that Swagger shows as additionalProp1.
            assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
