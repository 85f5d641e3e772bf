"""The Open Inference Protocol (V2) over HTTP: thin routes around api/protocol/v2/.

Inference takes the path of POST /predict (read_json → micro-batcher → validation, inference,
monitoring) with V2 tensors in and out. ``/versions/{version}`` serves the active version only:
the batcher always answers with the registry's current model, so any other version, loaded as
the rollback target or not, is a 404 naming the version that is served.
"""

from api.routes.v2.docs import COMPONENTS, infer_operation
from api.routes.v2.infer import INFER, INFER_VERSION, fast_lanes, infer_routes
from api.routes.v2.metadata import router, served, served_name

__all__ = [
    "COMPONENTS",
    "INFER",
    "INFER_VERSION",
    "fast_lanes",
    "infer_operation",
    "infer_routes",
    "router",
    "served",
    "served_name",
]
