"""The Open Inference Protocol (V2), driven by a real client (tritonclient, JSON mode) against a live service.

Every answer is checked against the protocol's published OpenAPI document
(tests/support/open_inference_rest.yaml); predictions are compared with POST /predict's on the same
records, which the acceptance tests tie to the offline pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from tritonclient.utils import InferenceServerException

from tests.support.live_server import LiveServer, live_server
from tests.support.open_inference import validate_response

NAME = "churn"
NUMPY = {"BYTES": np.object_, "INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}
KIND_TO_DATATYPE = {"string": "BYTES", "integer": "INT64", "number": "FP64", "boolean": "BOOL"}


@pytest.fixture(scope="module")
def server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(default_bundle, tmp_path_factory.mktemp("v2"), model_name=NAME) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    connection = triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60)
    yield connection
    connection.close()


def _headers(server: LiveServer) -> dict[str, str]:
    return {"X-API-Key": server.api_key}


def _get(server: LiveServer, path: str, **kwargs: Any) -> httpx.Response:
    """GET a V2 path and check the answer against the protocol's document."""
    response = server.client.get(path, **kwargs)
    validate_response("GET", path, response.status_code, response.json())
    return response


def _post(server: LiveServer, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    response = server.client.post(path, json=body, **kwargs)
    validate_response("POST", path, response.status_code, response.json())
    return response


def _records(server: LiveServer, count: int) -> list[dict[str, Any]]:
    """Varied valid records: the model's example with each categorical column cycling through its categories."""
    described = server.client.get("/model").json()["input_schema"]
    example, fields = described["example"], described["fields"]
    records = []
    for row in range(count):
        record = dict(example)
        for position, field in enumerate(fields):
            if field["kind"] == "categorical":
                categories = [c for c in field["categories"] if c is not None]
                record[field["name"]] = categories[(row + position) % len(categories)]
            elif isinstance(record[field["name"]], int | float):
                record[field["name"]] = float(record[field["name"]]) * (1 + row / 10)
        record["customerID"] = f"v2-{row}"
        records.append(record)
    return records


def _inputs(metadata: dict[str, Any], records: list[dict[str, Any]], id_field: str | None = None) -> list[Any]:
    """One InferInput per metadata input (and the id field), JSON-encoded by tritonclient."""
    tensors = [(t["name"], t["datatype"]) for t in metadata["inputs"]]
    if id_field is not None and id_field not in {name for name, _ in tensors}:
        tensors.append((id_field, "BYTES"))
    inputs = []
    for name, datatype in tensors:
        column = np.array([[record[name]] for record in records], dtype=NUMPY[datatype])
        tensor = triton.InferInput(name, list(column.shape), datatype)
        tensor.set_data_from_numpy(column, binary_data=False)
        inputs.append(tensor)
    return inputs


def _outputs(*names: str) -> list[Any]:
    return [triton.InferRequestedOutput(name, binary_data=False) for name in names]


def _body(metadata: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The same request as raw JSON (for the error cases a client library would refuse to build)."""
    return {
        "inputs": [
            {
                "name": t["name"],
                "datatype": t["datatype"],
                "shape": [len(records), 1],
                "data": [r[t["name"]] for r in records],
            }
            for t in metadata["inputs"]
        ]
    }


@pytest.fixture(scope="module")
def metadata(server: LiveServer, client: triton.InferenceServerClient) -> dict[str, Any]:
    described: dict[str, Any] = client.get_model_metadata(NAME, headers=_headers(server))
    assert _get(server, f"/v2/models/{NAME}").json() == described
    return described


def test_server_live_ready_and_metadata(server: LiveServer, client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()  # open, like /health and /ready
    described = client.get_server_metadata(headers=_headers(server))
    assert described["name"] == "modelo-ml-api" and described["extensions"] == []
    for path in ("/v2", "/v2/", "/v2/health/live", "/v2/health/ready"):
        assert _get(server, path).status_code == 200


def test_metadata_has_one_input_per_column_and_the_class_order(
    server: LiveServer, client: triton.InferenceServerClient, metadata: dict[str, Any]
) -> None:
    model = server.client.get("/model").json()
    fields = model["input_schema"]["fields"]
    assert [t["name"] for t in metadata["inputs"]] == [f["name"] for f in fields]
    for tensor, field in zip(metadata["inputs"], fields, strict=True):
        expected = "FP64" if field["kind"] == "numeric" else KIND_TO_DATATYPE[field["type"]]
        assert (tensor["datatype"], tensor["shape"]) == (expected, [-1, 1]), tensor
    outputs = {t["name"]: t for t in metadata["outputs"]}
    assert outputs["probabilities"]["datatype"] == "FP64"
    assert outputs["probabilities"]["parameters"]["classes"] == model["classes"]
    assert outputs["probabilities"]["shape"] == [-1, len(model["classes"])]
    assert metadata["versions"] == [model["model_version"]]
    versioned = client.get_model_metadata(NAME, model["model_version"], headers=_headers(server))
    assert versioned == metadata
    assert _get(server, f"/v2/models/{NAME}/versions/{model['model_version']}").json() == metadata


def test_model_ready_with_and_without_version(server: LiveServer, client: triton.InferenceServerClient) -> None:
    version = server.client.get("/model").json()["model_version"]
    assert client.is_model_ready(NAME, headers=_headers(server))
    assert client.is_model_ready(NAME, version, headers=_headers(server))
    assert not client.is_model_ready(NAME, "19990101_000000", headers=_headers(server))
    assert _get(server, f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}
    assert _get(server, f"/v2/models/{NAME}/versions/19990101_000000/ready").status_code == 404


@pytest.mark.parametrize("rows", [pytest.param(1, id="one-row"), pytest.param(40, id="40-rows")])
@pytest.mark.parametrize("versioned", [pytest.param(False, id="latest"), pytest.param(True, id="versioned")])
def test_infer_answers_what_predict_answers(
    server: LiveServer, client: triton.InferenceServerClient, metadata: dict[str, Any], rows: int, versioned: bool
) -> None:
    records = _records(server, rows)
    expected = server.client.post("/predict", json={"instances": records}).json()
    version = expected["model_version"] if versioned else ""
    result = client.infer(
        NAME,
        _inputs(metadata, records, id_field="customerID"),
        model_version=version,
        outputs=_outputs("label", "probabilities", "prediction_id", "customerID"),
        request_id="request-1",
        parameters={"content_type": "pd"},
        headers=_headers(server),
    )
    response = result.get_response()
    path = f"/v2/models/{NAME}" + (f"/versions/{version}" if versioned else "") + "/infer"
    assert validate_response("POST", path, 200, response) == "inference_response"
    assert (response["model_name"], response["model_version"], response["id"]) == (
        NAME,
        expected["model_version"],
        "request-1",
    )
    classes = next(t for t in metadata["outputs"] if t["name"] == "probabilities")["parameters"]["classes"]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (rows, len(classes))
    want = [[row["probabilities"][c] for c in classes] for row in expected["predictions"]]
    assert probabilities.tolist() == want  # exactly: the same path as /predict
    assert result.as_numpy("label")[:, 0].tolist() == [row["prediction"] for row in expected["predictions"]]
    assert [str(v) for v in result.as_numpy("customerID")[:, 0]] == [r["customerID"] for r in records]
    assert len(set(result.as_numpy("prediction_id")[:, 0].tolist())) == rows


def test_default_outputs_and_the_prediction_log(server: LiveServer, metadata: dict[str, Any]) -> None:
    """Without 'outputs' the answer holds every output; its prediction ids are in the prediction log."""
    response = _post(server, f"/v2/models/{NAME}/infer", _body(metadata, _records(server, 3))).json()
    outputs = {o["name"]: o for o in response["outputs"]}
    assert list(outputs) == ["label", "probabilities", "prediction_id"]
    label = outputs["label"]["data"][0]
    feedback = server.client.post(
        "/feedback", json={"items": [{"prediction_id": outputs["prediction_id"]["data"][0], "label": label}]}
    )
    assert feedback.status_code == 200, feedback.text
    assert feedback.json()["accepted"] == 1


def test_unknown_categories_are_answered_with_a_warning_naming_the_row(
    server: LiveServer, metadata: dict[str, Any]
) -> None:
    body = _body(metadata, _records(server, 2))
    text = next(t for t in body["inputs"] if t["datatype"] == "BYTES")
    text["data"][1] = "never-seen-in-training"
    response = _post(server, f"/v2/models/{NAME}/infer", body).json()
    assert response["parameters"]["warnings"].startswith(f"row 1: {text['name']}: 'never-seen-in-training'")


def _mutated(metadata: dict[str, Any], records: list[dict[str, Any]], case: str) -> tuple[dict[str, Any], str]:
    """A request broken one way, and the name the error must carry."""
    body = _body(metadata, records)
    numeric = next(t for t in body["inputs"] if t["datatype"] == "FP64")
    text = next(t for t in body["inputs"] if t["datatype"] == "BYTES")
    if case == "bad-datatype":
        numeric["datatype"], numeric["data"] = "BYTES", [str(v) for v in numeric["data"]]
    elif case == "value-not-of-its-datatype":
        numeric["data"] = ["12.5", *numeric["data"][1:]]
    elif case == "wrong-shape":
        numeric["shape"] = [1, len(records)]
    elif case == "shape-and-data-disagree":
        numeric["data"] = numeric["data"][:-1]
    elif case == "rows-differ-between-inputs":
        numeric["shape"], numeric["data"] = [1, 1], numeric["data"][:1]
    elif case == "missing-column":
        body["inputs"].remove(text)
    elif case == "unknown-output":
        body["outputs"] = [{"name": "no-such-output"}]
        return body, "no-such-output"
    elif case == "unsupported-content-type":
        body["parameters"] = {"content_type": "np"}
        return body, "content_type"
    elif case == "binary-output-asked":
        body["parameters"] = {"binary_data_output": True}
        return body, "binary tensor data"
    return body, numeric["name"] if case != "missing-column" else text["name"]


ERROR_CASES = [
    pytest.param("bad-datatype", 422, id="bad-datatype"),
    pytest.param("value-not-of-its-datatype", 422, id="value-not-of-its-datatype"),
    pytest.param("wrong-shape", 422, id="wrong-shape"),
    pytest.param("shape-and-data-disagree", 422, id="shape-and-data-disagree"),
    pytest.param("rows-differ-between-inputs", 422, id="rows-differ-between-inputs"),
    pytest.param("missing-column", 422, id="missing-column"),
    pytest.param("unknown-output", 422, id="unknown-output"),
    pytest.param("unsupported-content-type", 422, id="unsupported-content-type"),
    pytest.param("binary-output-asked", 400, id="binary-output-asked"),
]


@pytest.mark.parametrize(("case", "status"), ERROR_CASES)
def test_bad_requests_get_a_v2_error_naming_the_input(
    server: LiveServer, metadata: dict[str, Any], case: str, status: int
) -> None:
    body, named = _mutated(metadata, _records(server, 2), case)
    response = _post(server, f"/v2/models/{NAME}/infer", body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert named in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        pytest.param("/v2/models/no-such-model/infer", "no-such-model", id="unknown-model"),
        pytest.param(f"/v2/models/{NAME}/versions/19990101_000000/infer", "19990101_000000", id="wrong-version"),
    ],
)
def test_unknown_model_or_version_is_404(server: LiveServer, metadata: dict[str, Any], path: str, named: str) -> None:
    response = _post(server, path, _body(metadata, _records(server, 1)))
    assert response.status_code == 404
    assert named in response.json()["error"]
    assert _get(server, path.removesuffix("/infer")).status_code == 404


def test_the_client_sees_errors_with_their_status(
    server: LiveServer, client: triton.InferenceServerClient, metadata: dict[str, Any]
) -> None:
    records = _records(server, 2)
    inputs = _inputs(metadata, records)
    with pytest.raises(InferenceServerException) as missing:
        client.infer(NAME, inputs[1:], outputs=_outputs("label"), headers=_headers(server))
    assert missing.value.status() == "422" and metadata["inputs"][0]["name"] in missing.value.message()
    binary = _inputs(metadata, records)
    for tensor, spec in zip(binary, metadata["inputs"], strict=True):
        tensor.set_data_from_numpy(np.array([[r[spec["name"]]] for r in records], dtype=NUMPY[spec["datatype"]]))
    with pytest.raises(InferenceServerException) as refused:
        client.infer(NAME, binary, headers=_headers(server))  # binary tensors, binary outputs: the defaults
    assert refused.value.status() == "400" and "binary_data=False" in refused.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.infer(NAME, inputs, model_version="19990101_000000", headers=_headers(server))
    assert unknown.value.status() == "404"


def test_credentials_are_required(
    server: LiveServer, client: triton.InferenceServerClient, metadata: dict[str, Any]
) -> None:
    with pytest.raises(InferenceServerException) as refused:
        client.infer(NAME, _inputs(metadata, _records(server, 1)), outputs=_outputs("label"))
    assert refused.value.status() == "401"
    anonymous = httpx.Client(base_url=server.url)
    for path in ("/v2", f"/v2/models/{NAME}", f"/v2/models/{NAME}/ready"):
        response = anonymous.get(path)
        assert response.status_code == 401
        validate_response("GET", path, 401, response.json())
    response = anonymous.post(f"/v2/models/{NAME}/infer", json=_body(metadata, _records(server, 1)))
    assert response.status_code == 401
    validate_response("POST", f"/v2/models/{NAME}/infer", 401, response.json())
    assert anonymous.get("/v2/health/live").status_code == 200


def _errors_counted(server: LiveServer, code: str) -> float:
    text = server.client.get("/metrics").text
    found = re.search(rf'^modelo_errors_total\{{code="{code}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_v2_error_is_counted_once(server: LiveServer, metadata: dict[str, Any]) -> None:
    before = _errors_counted(server, "unknown_model")
    _post(server, "/v2/models/nope/infer", _body(metadata, _records(server, 1)))
    assert _errors_counted(server, "unknown_model") == before + 1


def test_the_default_name_is_the_bundle_folder(default_server: LiveServer, default_bundle: Path) -> None:
    path = f"/v2/models/{default_bundle.name}"
    assert _get(default_server, path).json()["name"] == default_bundle.name
    assert _get(default_server, path + "-other").status_code == 404


def test_openapi_describes_the_v2_routes_truthfully(server: LiveServer, metadata: dict[str, Any]) -> None:
    """/openapi.json declares every V2 route with real schemas, and the answers fit what it declares."""
    document = httpx.get(f"{server.url}/openapi.json").json()
    paths = document["paths"]
    version = metadata["versions"][0]
    registry = Registry().with_resource(
        "urn:service", Resource.from_contents(document, default_specification=DRAFT202012)
    )

    def fits(path: str, method: str, status: int, body: Any) -> None:
        declared = paths[path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
        ref = {"$ref": "urn:service" + declared["$ref"]} if "$ref" in declared else declared
        Draft202012Validator(ref, registry=registry).validate(body)

    infer = paths["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/V2InferenceRequest")
    answer = server.client.post(f"/v2/models/{NAME}/infer", json=_body(metadata, _records(server, 2)))
    fits("/v2/models/{name}/infer", "post", 200, answer.json())
    refused = server.client.post(f"/v2/models/{NAME}/versions/1/infer", json=_body(metadata, _records(server, 1)))
    fits("/v2/models/{name}/versions/{version}/infer", "post", 404, refused.json())
    for template, path in [
        ("/v2", "/v2"),
        ("/v2/health/live", "/v2/health/live"),
        ("/v2/health/ready", "/v2/health/ready"),
        ("/v2/models/{name}", f"/v2/models/{NAME}"),
        ("/v2/models/{name}/versions/{version}", f"/v2/models/{NAME}/versions/{version}"),
        ("/v2/models/{name}/ready", f"/v2/models/{NAME}/ready"),
        ("/v2/models/{name}/versions/{version}/ready", f"/v2/models/{NAME}/versions/{version}/ready"),
    ]:
        response = server.client.get(path)
        fits(template, "get", response.status_code, response.json())
        assert "422" not in paths[template]["get"]["responses"]
    fits("/v2/models/{name}", "get", 404, server.client.get("/v2/models/nope").json())


def test_v2_requests_are_labelled_by_route_template(server: LiveServer, metadata: dict[str, Any]) -> None:
    """With MODEL_NAME set, its infer path takes a fast lane; metrics still name the route template."""
    version = metadata["versions"][0]
    server.client.post(f"/v2/models/{NAME}/infer", json=_body(metadata, _records(server, 1)))
    server.client.post(f"/v2/models/{NAME}/versions/{version}/infer", json=_body(metadata, _records(server, 1)))
    text = server.client.get("/metrics").text
    for template in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        assert re.search(rf'^modelo_http_requests_total\{{[^}}]*route="{re.escape(template)}"', text, re.MULTILINE), (
            template
        )
    assert f"/v2/models/{NAME}/" not in text  # never the raw path
