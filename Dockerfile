# modelo-ml-api: the FastAPI service plus one model bundle, least privilege.
#
#   docker build -t modelo-ml-api .            # your model_*.pkl copied into models/ (else the demo)
#   docker build -t modelo-ml-api --build-arg MODEL_DIR=bundles/churn .     # a bundle elsewhere
#   docker run --read-only --cap-drop=ALL --security-opt no-new-privileges \
#       -p 127.0.0.1:8000:8000 -e API_KEYS=name:key modelo-ml-api
#
# The image's libraries are planned from the bundle it serves, as `make run` does: the service's
# own stack, the bundle's requirements.txt (or, for bare .pkl files, the versions their pickles
# record), plus what the serving core and the pickles import, in versions that work together.
# Secrets (API_KEYS, JWT_SECRET, TLS keys) are given at run time, never baked in.

# ---- build: a venv planned from the bundle, the app and the bundle --------------------------
FROM python:3.11-slim AS build

# The bundle directory (inside the build context) copied into the image as /app/models. Your
# model_*.pkl there are served; its demo/ folder only when there is none.
ARG MODEL_DIR=models
# Optional: a requirements.txt (inside the build context) with the bundle's ML pins. Empty means
# the served bundle's own requirements.txt, else the versions its pickles record.
ARG BUNDLE_REQUIREMENTS=

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY requirements.txt requirements-service.txt ./
# The inspector reads the pickles statically (opcodes only, nothing is unpickled) to plan the
# environment; it needs numpy, scipy and orjson, at the pinned versions. It stays in this stage.
RUN python -m venv /opt/inspect \
 && grep -hE '^(numpy|scipy|orjson)==' requirements.txt requirements-service.txt > inspect.txt \
 && /opt/inspect/bin/pip install --no-cache-dir -r inspect.txt

COPY api/ /src/app/api/
COPY ${MODEL_DIR}/ /src/app/models/
# Always a valid source: falls back to requirements.txt (then unused) when the ARG is empty.
COPY ${BUNDLE_REQUIREMENTS:-requirements.txt} ./bundle-requirements.txt
RUN PYTHONPATH=/src/app /opt/inspect/bin/python -m api.model.environment /src/app/models --lines \
        --service requirements-service.txt --default requirements.txt \
        ${BUNDLE_REQUIREMENTS:+--requirements bundle-requirements.txt} > environment.txt \
 && cat environment.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -r environment.txt \
 && /opt/venv/bin/pip check \
 && find /opt/venv/lib -type d -path '*/site-packages/*' -name tests -prune -exec rm -rf {} +
# (the libraries' own test suites: ~110 MB the service never imports)

# Root owns everything, the service user can only read it; bytecode is compiled here because
# the running container cannot write it (read-only root filesystem, PYTHONDONTWRITEBYTECODE).
RUN find /src/app -name '__pycache__' -prune -exec rm -rf {} + \
 && python -m compileall -q --invalidation-mode checked-hash /src/app/api \
 && chmod -R u=rwX,go=rX /src/app /opt/venv

# ---- runtime: same base, no compilers, no package caches, numeric non-root user --------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="modelo-ml-api" \
      org.opencontainers.image.description="FastAPI + Uvicorn service for a pickled scikit-learn/LightGBM model bundle"

# libgomp1: LightGBM's OpenMP runtime. Not version-pinned (DL3008): bookworm's security
# updates replace the exact version in the archive, and a pinned build would then fail;
# the base image tag fixes the distribution release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && mkdir -p /var/lib/modelo && chown 10001:10001 /var/lib/modelo && chmod 0700 /var/lib/modelo

COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/app /app

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    MODEL_DIR=/app/models \
    LOG_FORMAT=json \
    DATA_DIR=/var/lib/modelo

# The embedded prediction store (SQLite) and its generated key live here unless DATABASE_URL is set:
# a volume, so a read-only root filesystem still works and the data outlives the container.
VOLUME ["/var/lib/modelo"]

# Import what serving this bundle needs (the service, numpy/scipy/pandas/scikit-learn, what the
# pickles reference), here where libgomp is: a bad combination fails the build, not the start.
RUN ["python", "-m", "api.model.environment", "/app/models", "--check"]

USER 10001:10001
EXPOSE 8000

# No curl in the image: Python's urllib asks /ready (200 once the model is loaded).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "api.healthcheck"]

CMD ["python", "-m", "api"]
