"""Service settings: one typed object, read once from the environment and passed in.

Why one module of ~350 lines: the house rule is one settings class (STYLE.md), so every setting of
every wing (serving, auth, limits, connections, store, fleet, scoring) is a typed, documented field
here; splitting it would scatter the one place an operator reads to learn what can be set.
"""

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
    explain_max_rows: int = Field(
        100,
        ge=1,
        description="Most records one POST /predict?explain=N may ask reasons for (beyond: 413); "
        "attribution costs far more per row than a prediction.",
    )
    id_field: str | None = Field(
        None, description="Input field echoed back as `id` in each prediction (e.g. customerID)."
    )
    model_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,128}$",
        description="The model's name in the Open Inference Protocol (/v2/models/<name>); default: the "
        "manifest's `name`, else the name of the folder the bundle is in.",
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

    schema_max_categories: int = Field(
        50,
        ge=0,
        description="A categorical column with more fitted categories than this (or the ID_FIELD column) is "
        "identifier-like: its training categories are never listed in any answer (schema, OpenAPI, examples, "
        "errors, warnings); it is documented as a free value of its type.",
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

    # --- connections (bounded before a request reaches the app; see SECURITY.md) ----------
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest a client may take to send a request's line and headers, from its first byte (or from "
        "connecting); then the connection is cut (408 if part of a request had arrived).",
    )
    body_timeout_seconds: float = Field(
        20.0,
        gt=0,
        description="Longest a client may take to send a request's body once its headers are in (408, connection "
        "closed). Keep it below REQUEST_TIMEOUT_SECONDS so a trickled body is the client's 408, not a 504.",
    )
    keepalive_timeout_seconds: int = Field(
        5, ge=1, description="How long (whole seconds) an idle keep-alive connection is kept open between requests."
    )
    max_connections: int = Field(
        2048,
        ge=1,
        description="Open connections served per process; beyond it a request gets 503 too_many_connections "
        "(/health and /ready still answer). Lowered to fit the file-descriptor limit.",
    )
    max_connections_per_client: int = Field(
        64,
        ge=1,
        description="Open connections served per client address; beyond it 503 too_many_connections. Addresses "
        "in FORWARDED_ALLOW_IPS (your proxies) are exempt.",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Comma-separated addresses/networks of your proxies or load balancers, or `*`: uvicorn takes "
        "the client address and scheme from their X-Forwarded-For/-Proto headers, and their connections are "
        "exempt from MAX_CONNECTIONS_PER_CLIENT (they still count towards MAX_CONNECTIONS).",
    )

    # --- request limits -----------------------------------------------------------------
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body (413).")
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest a request may take before it is answered 504."
    )
    rate_limit: str | None = Field(
        None, description="Per-client request limit, e.g. `600/minute` (429 with Retry-After)."
    )
    redis_url: SecretStr | None = Field(
        None,
        description="redis://[:password@]host:port[/db]: RATE_LIMIT is counted in Redis, shared by every replica "
        "with the same URL and prefix; without it each replica counts on its own. Redis unreachable: each "
        "replica falls back to its own counters (logged), never refusing or opening everything.",
    )
    redis_key_prefix: str = Field("modelo", min_length=1, description="Prefix of the rate-limit keys in Redis.")
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
    docs_auth: bool = Field(
        False,
        description="Require credentials for /openapi.json, /docs and /redoc. Open by default: they show the input "
        "contract (field names, types, small category sets) and never an identifier-like column's categories, "
        "a path or training rows (see SCHEMA_MAX_CATEGORIES); set this when even the field names are confidential.",
    )
    ssl_certfile: Path | None = Field(None, description="PEM certificate: serve HTTPS only.")
    ssl_keyfile: Path | None = Field(None, description="PEM private key for SSL_CERTFILE.")
    ssl_ca_certs: Path | None = Field(None, description="CA bundle: require client certificates (mutual TLS).")

    # --- performance --------------------------------------------------------------------
    batch_max_rows: int = Field(64, ge=1, description="Most rows the micro-batcher merges per model call.")
    batch_max_wait_ms: float = Field(
        1.0, ge=0, description="Longest the micro-batcher waits for more rows before a call."
    )
    batch_slice_rows: int = Field(
        256,
        ge=1,
        description="A request larger than this is answered in slices of this many rows (models proven "
        "row-independent only; answers are identical), so no caller's row waits behind a long model call.",
    )
    queue_max_rows: int = Field(
        4096,
        ge=1,
        description="Rows waiting for inference before new requests get 503 (a caller with nothing waiting "
        "is still let in: one greedy caller cannot lock the others out).",
    )
    caller_rows_per_second: float = Field(
        50_000.0,
        gt=0,
        description="Rows per second one caller (API key name, JWT subject, else client address) may send to "
        "/predict; bursts up to one second of it (at least MAX_BATCH_SIZE). Beyond: 429 with Retry-After. "
        "The default sits above what one replica serves (~28 000 rows/s in 100-row requests on one core), so "
        "a lone caller is never slowed; lower it to cap each caller's share of the fleet.",
    )
    caller_max_rows_in_flight: int = Field(
        2000,
        ge=1,
        description="Rows one caller may have queued or being computed at once (at least MAX_BATCH_SIZE); "
        "beyond: 429 with Retry-After. Callers are served by round-robin over rows whatever this is.",
    )
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

    # --- prediction store ---------------------------------------------------------------
    prediction_store: bool = Field(
        True, description="Keep every answered prediction in the store (`off` disables it: memory-only feedback)."
    )
    database_url: SecretStr | None = Field(
        None,
        description="The store's database: `postgresql://user:pass@host/db` (psycopg 3) shared by replicas; "
        "default an embedded SQLite file in DATA_DIR (`sqlite:///path` also works).",
    )
    data_dir: Path = Field(Path("data"), description="Directory of the embedded store and its generated key.")
    store_keys: SecretStr | None = Field(
        None,
        description="Store encryption keys, comma-separated `id:base64key` (32 bytes each): the first encrypts, "
        "all decrypt (rotation). Without keys a key is generated into DATA_DIR (protects a copy of the "
        "database alone).",
    )
    store_keys_file: Path | None = Field(None, description="File of `id:base64key` lines (same rules as STORE_KEYS).")
    store_flush_ms: float = Field(
        200.0, gt=0, description="Longest an answered prediction waits in memory before it is written (durability)."
    )
    store_buffer_rows: int = Field(
        100_000,
        ge=1,
        description="Most rows kept in memory while the database is unreachable; beyond it the oldest are "
        "dropped (counted in modelo_store_dropped_rows_total).",
    )
    store_retention_days: float | None = Field(
        None, gt=0, description="Delete predictions (and their labels) older than this many days (default: keep)."
    )
    store_shutdown_seconds: float = Field(
        15.0, gt=0, description="Longest a graceful stop waits to write the buffered rows."
    )
    labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Original target labels per model class, `0:No,1:Yes`: feedback may use them (default: the "
        "manifest's recorded mapping).",
    )
    drift_fleet_minutes: float = Field(
        60.0,
        gt=0,
        description="With a shared DATABASE_URL, /monitoring/drift covers every replica's rows of the last this "
        "many minutes (each replica adds its drift counts to the store every DRIFT_INTERVAL_SECONDS).",
    )
    drift_min_rows: int = Field(
        200, ge=1, description="Fewest rows a drift window needs before PSI is reported (else: insufficient data)."
    )

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

    @field_validator("labels", mode="before")
    @classmethod
    def _label_pairs(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().startswith("{"):
            import json

            return json.loads(value)
        if isinstance(value, str):
            pairs = [part.split(":", 1) for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError("LABELS must be `class:label` pairs, e.g. 0:No,1:Yes")
            return {cls_.strip(): label.strip() for cls_, label in pairs}
        return value

    @field_validator(
        "model_version",
        "model_name",
        "id_field",
        "rate_limit",
        "database_url",
        "store_keys",
        "redis_url",
        mode="before",
    )
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
