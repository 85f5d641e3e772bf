"""Checks a V2 answer against the Open Inference Protocol's published OpenAPI document (vendored beside this file)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_PATH = Path(__file__).with_name("open_inference_rest.yaml")
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
_URI = "urn:open-inference-protocol"
_REGISTRY: Registry[Any] = Registry().with_resource(_URI, Resource.from_contents(SPEC, default_specification=DRAFT4))

# Each path of the service, as the document spells it (it names the versioned forms; the short forms are the same).
_TEMPLATES = [
    (re.compile(r"^/v2/?$"), "/v2/"),
    (re.compile(r"^/v2/health/live$"), "/v2/health/live"),
    (re.compile(r"^/v2/health/ready$"), "/v2/health/ready"),
    (re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?$"), "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}"),
    (
        re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$"),
        "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/ready",
    ),
    (
        re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$"),
        "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer",
    ),
]
# The error object of each operation (the document gives it for some under 400; all have the same shape).
_ERRORS = {
    "/v2/": "metadata_server_error_response",
    "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}": "metadata_model_error_response",
    "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer": "inference_error_response",
}


def validate_component(name: str, body: Any) -> None:
    """Raise jsonschema.ValidationError unless ``body`` fits components/schemas/<name>."""
    Draft4Validator({"$ref": f"{_URI}#/components/schemas/{name}"}, registry=_REGISTRY).validate(body)


def validate_response(method: str, path: str, status: int, body: Any) -> str:
    """Check one answer of the service against the document's operation; returns the schema it was checked with.

    2xx: the operation's declared 200 schema (health and ready declare none: any JSON object).
    Errors: the operation's error object ({"error": string}), for every 4xx/5xx.
    """
    template = next((t for pattern, t in _TEMPLATES if pattern.match(path)), None)
    assert template is not None, f"{path} is not a path of the protocol"
    operation = SPEC["paths"][template][method.lower()]
    if status >= 400:
        name = _ERRORS.get(template, "inference_error_response")
        validate_component(name, body)
        assert isinstance(body["error"], str) and body["error"], body
        return name
    assert "200" in operation["responses"], f"{method} {template} answers {status}, the document declares no 200"
    content = operation["responses"]["200"].get("content")
    if content is None:
        assert isinstance(body, dict), body
        return "(no schema: any object)"
    ref: str = content["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    validate_component(name, body)
    return name
