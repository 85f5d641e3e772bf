"""Service settings: one typed object, read once from the environment and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service can be told, by environment variable of the same name."""

    model_config = SettingsConfigDict(
        env_file=None,
        secrets_dir=None,
        case_sensitive=False,
        extra="ignore",
        protected_namespaces=("settings_",),
    )

    # --- server -------------------------------------------------------------------------
    app_host: str = Field("0.0.0.0", description="Interface to listen on.")  # noqa: S104 - a container must listen beyond loopback
    app_port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Minimum level of the log lines written to stdout (any case: `warning` works)."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="`json` (ECS lines, for collectors) or `console` (human lines + a start banner); "
        "`auto` is console on a terminal and JSON otherwise (the image sets json).",
    )
    secrets_dir_path: Path | None = Field(
        None,
        alias="SECRETS_DIR",
        description="Directory of mounted secrets (Docker/Kubernetes), one file per setting.",
    )

    # --- model --------------------------------------------------------------------------
    model_dir: Path = Field(Path("models"), description="Directory holding the bundle to serve.")
    model_version: str | None = Field(
        None,
        pattern=r"^\d{8}_\d{6}$",
        description="Pin the served model to this YYYYMMDD_HHMMSS timestamp (default: newest).",
    )
    decision_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Binary classifiers predict the positive class when P(positive) >= this "
        "(default: the manifest's threshold, else the model's own predict, 0.5 for a Booster).",
    )
    max_batch_size: int = Field(1000, ge=1, description="Most records one request may carry.")
    id_field: str | None = Field(
        None, description="Input field echoed back as `id` in each prediction (e.g. customerID)."
    )
    extra_fields: Literal["ignore", "forbid"] = Field(
        "ignore",
        description="Fields the model does not use: ignored with a warning, or rejected (422).",
    )
    model_sha256: dict[str, str] = Field(
        default_factory=dict,
        description="Pinned SHA-256 per artifact file name (JSON object); a mismatch refuses the bundle.",
    )
    model_kinds: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Model kinds of your own, asked before the built-in ones: comma-separated `package.module` "
        "(defining KIND) or `package.module:Class` (see the README, adding a model kind).",
    )
    extra_allowed_globals: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated `module.Name` classes or functions of your own that pickles may name beyond "
        "the built-in allowlist. Unpickling runs them: name only code you trust (the standard library is refused).",
    )

    golden_tolerance: float = Field(
        1e-9,
        ge=0.0,
        description="Largest difference allowed between a version's score on a golden row (its profile's sample "
        "rows) and the score recorded when the profile was written; beyond it the version is refused.",
    )

    # --- file scoring (modelo-score / make score) -----------------------------------------
    spark_master: str = Field(
        "local[*]",
        description="Spark master for `modelo-score --engine spark` when not launched by spark-submit "
        "(which sets its own), e.g. `local[2]` or `spark://host:7077`.",
    )

    # --- lifecycle ----------------------------------------------------------------------
    shutdown_drain_seconds: float = Field(
        5.0,
        ge=0.0,
        description="On SIGTERM, how long /ready answers 503 (while requests are still served) before the "
        "server stops accepting connections, so load balancers stop sending traffic first.",
    )
    fleet_poll_seconds: float = Field(
        2.0,
        gt=0.0,
        description="How often a replica reads the fleet's active model version from the shared store "
        "(DATABASE_URL) and converges to it.",
    )
    shutdown_timeout_seconds: float = Field(
        30.0,
        gt=0.0,
        description="After the drain, longest wait for requests in flight to finish before they are cancelled.",
    )

    # --- request limits -----------------------------------------------------------------
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body (413).")
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest a request may take before it is answered 504."
    )
    rate_limit: str | None = Field(
        None, description="Per-client request limit, e.g. `600/minute` (429 with Retry-After)."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (JSON list; empty = CORS off)."
    )

    # --- security -----------------------------------------------------------------------
    auth_disabled: bool = Field(False, description="Open every endpoint to anyone (logged as a warning).")
    api_keys: SecretStr | None = Field(None, description="Comma-separated API keys, each optionally `name:key`.")
    api_keys_file: Path | None = Field(
        None, description="File of `name sha256-hex` lines: API keys stored as hashes only."
    )
    jwt_secret: SecretStr | None = Field(None, description="HS256 secret for JWT bearer tokens.")
    jwt_public_key: Path | None = Field(None, description="PEM public key for RS256/ES256 JWTs.")
    jwt_jwks_file: Path | None = Field(None, description="JWKS file with the JWT signing keys.")
    jwt_audience: str | None = Field(None, description="Required `aud` claim of JWTs.")
    jwt_issuer: str | None = Field(None, description="Required `iss` claim of JWTs.")
    metrics_auth: bool = Field(False, description="Require credentials for GET /metrics.")
    ssl_certfile: Path | None = Field(None, description="PEM certificate: serve HTTPS only.")
    ssl_keyfile: Path | None = Field(None, description="PEM private key for SSL_CERTFILE.")
    ssl_ca_certs: Path | None = Field(None, description="CA bundle: require client certificates (mutual TLS).")

    # --- performance --------------------------------------------------------------------
    batch_max_rows: int = Field(64, ge=1, description="Most rows the micro-batcher merges per model call.")
    batch_max_wait_ms: float = Field(
        1.0, ge=0, description="Longest the micro-batcher waits for more rows before a call."
    )
    queue_max_rows: int = Field(4096, ge=1, description="Rows waiting for inference before new requests get 503.")
    compiled_preprocessing: bool = Field(
        True, description="Use the verified numpy translation of the preprocessor when exact."
    )

    # --- monitoring ---------------------------------------------------------------------
    drift_window: int = Field(1000, ge=10, description="Recent rows kept for drift (PSI).")
    drift_interval_seconds: float = Field(
        5.0, gt=0, description="How often drift statistics are recomputed off the request path."
    )
    feedback_capacity: int = Field(
        100_000, ge=1, description="Recent predictions kept so labels can be matched to them."
    )
    feedback_ttl_seconds: float = Field(7 * 24 * 3600.0, gt=0, description="How long a prediction id accepts a label.")
    performance_window: int = Field(5000, ge=1, description="Most recent labelled predictions used for live accuracy.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        return value.strip().lower() or "auto" if isinstance(value, str) else value

    @field_validator("model_kinds", "extra_allowed_globals", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("model_version", "id_field", "rate_limit", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, plus mounted secret files when SECRETS_DIR is set.

    ``overrides`` (field names, e.g. from command-line flags) win over the environment.
    """
    import os

    secrets = os.environ.get("SECRETS_DIR")
    if secrets:
        return Settings(_secrets_dir=secrets, **overrides)  # type: ignore[call-arg]
    return Settings(**overrides)
