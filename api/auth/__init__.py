"""Who is calling, framework-free: API keys (as SHA-256 digests) and JWT bearer tokens."""

from api.auth.authenticator import Authenticator, AuthSetup, build_authenticator
from api.auth.principal import ANONYMOUS, SCOPES, AuthConfigError, InvalidCredentials, Principal

__all__ = [
    "ANONYMOUS",
    "SCOPES",
    "AuthConfigError",
    "AuthSetup",
    "Authenticator",
    "InvalidCredentials",
    "Principal",
    "build_authenticator",
]
