# The front door for people and CI. `make run` serves your bundle (or the demo); `make test` runs everything.
SHELL := /bin/bash
# Python 3.11: the pinned stacks (and scikit-learn 1.1.3) need it; scripts/ensure_env.py says so otherwise.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
MODEL_DIR ?= models
APP_PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
# Line coverage in `make test`; `make test COV=` runs without it.
COV ?= --cov --cov-report=

.PHONY: help venv run migrate score bench-score test mutation test-unit test-real lint train train-default profile bench image-test lint-container check-k8s check-deploy audit clean

help:  ## List targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

venv: $(VENV)/.requirements.sha256  ## Create/refresh the development virtualenv (default stack + test/lint tools)

$(VENV)/.requirements.sha256: requirements.txt requirements-service.txt requirements-dev.txt requirements-scoring.txt
	@$(PYTHON) scripts/ensure_env.py --dev >/dev/null

run:  ## Serve MODEL_DIR (default models/: your files, else the demo) on http://localhost:$(APP_PORT), in the environment it needs
	@[ -n "$$API_KEYS$$API_KEYS_FILE$$JWT_SECRET$$JWT_PUBLIC_KEY$$JWT_JWKS_FILE$$AUTH_DISABLED" ] || \
	  echo "No credentials configured: the service generates an API key and prints it once below ('generated an API key'); set API_KEYS=name:key to choose one."
	@env_dir="$$($(PYTHON) scripts/ensure_env.py "$(MODEL_DIR)")" && \
	  MODEL_DIR="$(MODEL_DIR)" APP_PORT="$(APP_PORT)" exec "$$env_dir/bin/python" -m api

migrate:  ## Bring the prediction store's schema (DATABASE_URL, default the SQLite file in DATA_DIR) to the newest migration
	@env_dir="$$($(PYTHON) scripts/ensure_env.py "$(MODEL_DIR)")" && "$$env_dir/bin/python" -m api.store.migrate

score:  ## Score a file: make score MODEL_DIR=<bundle> IN=<csv|parquet> OUT=<csv|parquet> [ID=customerID] [EXPLAIN=3] [ENGINE=spark] [ARGS=--keep-input]
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make score MODEL_DIR=<dir> IN=<file> OUT=<file> [ID=<column>] [EXPLAIN=<N>] [ENGINE=spark] [ARGS=...]"; exit 2; }
	@env_dir="$$($(PYTHON) scripts/ensure_env.py $(if $(filter spark,$(ENGINE)),--spark,--score) "$(MODEL_DIR)")" && \
	  MODEL_DIR="$(MODEL_DIR)" "$$env_dir/bin/python" -m api.score "$(IN)" "$(OUT)" $(if $(ID),--id "$(ID)") $(if $(EXPLAIN),--explain "$(EXPLAIN)") $(if $(ENGINE),--engine "$(ENGINE)") $(ARGS)

test: venv  ## Run the whole suite with line coverage of api/ (default stack, then the real bundle's scikit-learn 1.1.3 stack)
	$(BIN)/python -m pytest --durations=20 $(COV)
	@$(BIN)/python -m coverage report --format=total >/dev/null 2>&1 && \
	  echo "== line coverage of api/ (default stack, live servers included): $$($(BIN)/python -m coverage report --format=total) %"
	@if [ -d "$(SHARED)/real-model" ]; then \
	  env_dir="$$($(PYTHON) scripts/ensure_env.py --dev "$(SHARED)/real-model")" && \
	  echo "== unit tests again on the real bundle's stack ($$env_dir)" && \
	  "$$env_dir/bin/python" -m pytest tests/bundle tests/model tests/monitoring tests/observability -p no:cacheprovider; \
	else echo "SKIP second stack: $(SHARED)/real-model is absent"; fi

mutation: venv  ## Mutation testing of the serving core (mutmut, requirements-mutation.txt); ~1 h on 2 cores, not in CI
	$(BIN)/python -m pip install -q -r requirements-mutation.txt
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 >/dev/null 2>&1 || true
	$(BIN)/python scripts/mutation_score.py

lint: venv  ## ruff + mypy
	$(BIN)/ruff check api training tests bench scripts
	$(BIN)/mypy

train: venv  ## Train a new bundle into OUT (default build/bundle-<timestamp>); DATA=<telco.csv> for real data. Never touches models/
	$(BIN)/python -m training.train $(if $(DATA),--data $(DATA)) $(if $(OUT),--out $(OUT))

train-default: venv  ## Rebuild the committed demo bundle in models/demo/ bit for bit (synthetic data)
	$(BIN)/python -m training.train --default

profile:  ## Write a drift profile into MODEL_DIR from the training CSV DATA=<csv>
	@test -n "$(DATA)" || { echo "usage: make profile MODEL_DIR=<dir> DATA=<csv>"; exit 2; }
	@env_dir="$$($(PYTHON) scripts/ensure_env.py "$(MODEL_DIR)")" && \
	  "$$env_dir/bin/python" -m training.profile --model-dir "$(MODEL_DIR)" --data "$(DATA)"

bench: venv  ## Benchmarks: this service vs the tutorial baseline and MLServer, same run; then file scoring
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.score --rows 20000

bench-score: venv  ## File scoring vs the offline one-shot pipeline and the predict floor (ROWS=50000), same run
	$(BIN)/python -m bench.score --rows $(or $(ROWS),50000)

image-test:  ## Build the hardened image with podman and check it over HTTP; then the seed's flow (real files copied into models/)
	bash scripts/image-test.sh
	@if [ -d "$(SHARED)/real-model" ]; then USER_FILES="$(SHARED)/real-model" bash scripts/image-test.sh; \
	else echo "SKIP the user-files image test: $(SHARED)/real-model is absent"; fi

lint-container:  ## hadolint + checkov on the Dockerfile, then make check-k8s
	bash scripts/lint-container.sh

audit:  ## pip-audit of the pinned requirements (says NOT AUDITED, exit 2, when no vulnerability service is reachable)
	bash scripts/audit.sh

check-k8s:  ## kubernetes-validate (strict) + checkov on deploy/k8s and the Cloud Run service
	bash scripts/check-k8s.sh

check-deploy:  ## promtool checks of the Prometheus rules and every dashboard expression; compose + Alertmanager config
	bash scripts/check-deploy.sh
	bash scripts/check-compose.sh

clean:  ## Remove virtualenvs and caches
	rm -rf $(VENV) .venvs .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* mutants
