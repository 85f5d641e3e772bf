# modelo-ml-api: the FastAPI service plus one model bundle, least privilege.
#
#   docker build -t modelo-ml-api .                                   # default bundle in models/
#   docker build -t modelo-ml-api --build-arg MODEL_DIR=bundles/churn \
#       --build-arg BUNDLE_REQUIREMENTS=bundles/churn/requirements.txt .   # bundle with own ML pins
#   docker run --read-only --cap-drop=ALL --security-opt no-new-privileges \
#       -p 127.0.0.1:8000:8000 -e API_KEYS=name:key modelo-ml-api
#
# Secrets (API_KEYS, JWT_SECRET, TLS keys) are given at run time, never baked in.

# ---- build: a venv with the pinned requirements, the app and the bundle ---------------------
FROM python:3.11-slim AS build

# Path (inside the build context) of the bundle's own requirements.txt with its ML pins; empty
# means the default ML stack of requirements.txt.
ARG BUNDLE_REQUIREMENTS=
# The bundle directory (inside the build context) copied into the image as /app/models.
ARG MODEL_DIR=models

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv

COPY requirements.txt requirements-service.txt ./
# Always a valid source: falls back to requirements.txt (then unused) when the ARG is empty.
COPY ${BUNDLE_REQUIREMENTS:-requirements.txt} ./bundle-requirements.txt
RUN if [ -n "$BUNDLE_REQUIREMENTS" ]; then \
        set -- -r requirements-service.txt -r bundle-requirements.txt; \
    else \
        set -- -r requirements.txt; \
    fi \
 && /opt/venv/bin/pip install --no-cache-dir "$@" \
 && /opt/venv/bin/pip check \
 && find /opt/venv/lib -type d -path '*/site-packages/*' -name tests -prune -exec rm -rf {} +
# (the libraries' own test suites: ~110 MB the service never imports)

COPY api/ /src/app/api/
COPY ${MODEL_DIR}/ /src/app/models/
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
        --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/app /app

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    MODEL_DIR=/app/models

USER 10001:10001
EXPOSE 8000

# No curl in the image: Python's urllib asks /ready (200 once the model is loaded).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "api.healthcheck"]

CMD ["python", "-m", "api"]
