"""Reading an ASGI scope: headers and the path the router matches."""

from __future__ import annotations

from starlette.types import Scope


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (ASGI names are lower-case)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def route_path(scope: Scope) -> str:
    """The path the router matches, without any root_path prefix."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
