"""The Open Inference Protocol ("V2", as KServe, MLServer and Triton speak it), without HTTP.

A request carries one input tensor per original column (MLServer's pandas convention,
``"parameters": {"content_type": "pd"}`` accepted and not required). Its tensors are turned into
the same records ``POST /predict`` receives, so validation, micro-batching, inference, monitoring
and exactness are the ones of ``/predict``; an answer becomes the outputs ``label`` (the predicted
class), ``probabilities`` (FP64, ``[n, k]``, columns in the model's class order) and
``prediction_id`` (what ``POST /feedback`` takes back), plus the ID_FIELD echoed when it was sent.

The binary tensor data extension is not spoken: a request that uses it is refused (400) with a
message saying how to ask for JSON.
"""

from api.protocol.v2.model import (
    LABEL,
    PREDICTION_ID,
    PROBABILITIES,
    datatype,
    default_model_name,
    metadata,
    output_names,
    server_metadata,
)
from api.protocol.v2.request import InferRequest, locate, parse_request, refuse_binary_header
from api.protocol.v2.response import render

PREFIX = "/v2"

__all__ = [
    "LABEL",
    "PREDICTION_ID",
    "PREFIX",
    "PROBABILITIES",
    "InferRequest",
    "datatype",
    "default_model_name",
    "locate",
    "metadata",
    "output_names",
    "parse_request",
    "refuse_binary_header",
    "render",
    "server_metadata",
]
