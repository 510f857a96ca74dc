# The two commands a newcomer needs: `make up` runs the product, `make test` passes its tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: install
install: node_modules ## Install dependencies (npm ci)

# The backend compiled to dist/ (npm run build), rebuilt only when a source changed:
# instances run JavaScript, with no TypeScript toolchain at run time.
BACKEND_SOURCES := $(shell find backend/src backend/sim backend/migrations -type f 2>/dev/null)
dist/.built: $(BACKEND_SOURCES) tsconfig.json tsconfig.build.json package-lock.json
	npm run --silent build
	@touch dist/.built

.PHONY: build
build: node_modules dist/.built ## Compile the backend to dist/ (npm run build)

.PHONY: start
start: build ## Run one compiled backend instance in the foreground (PORT, REDIS_URL… from the environment)
	npm start

.PHONY: sim
sim: node_modules ## Run the Groq simulator on :8090
	npm run sim

.PHONY: typecheck
typecheck: node_modules ## tsc --noEmit over sources and tests, and over the web pages (web/tsconfig.json)
	npx tsc --noEmit
	npx tsc --noEmit -p web

.PHONY: lint
lint: node_modules ## Biome: lint and format check
	npx biome check .

.PHONY: test
test: node_modules ## Build, typecheck, lint, then every test (unit, integration on real Redis, e2e)
	@# Build, typecheck and lint need nothing of each other: at once (-j), each one's output kept together (-O);
	@# any of them failing stops make test with its exit code.
	$(MAKE) --no-print-directory -j -O dist/.built typecheck lint
	@# One run, three projects in turn (vitest.config.ts): fast, e2e two files at a time, e2e-alone.
	npx vitest run

# The web pages (web/ -> web/dist, served by Caddy): built when missing or older than their sources.
WEB_SOURCES := $(shell find web -path web/dist -prune -o -path web/test-results -prune -o -type f -print 2>/dev/null) \
	$(wildcard backend/src/client/*.ts backend/src/shared/*.ts)
web/dist/index.html: $(WEB_SOURCES) | node_modules
	npm run build:web

.PHONY: web
web: node_modules ## Build the web pages into web/dist (npm run build:web)
	npm run build:web

.PHONY: bench
bench: node_modules dist/.built ## Benchmarks on loopback, one JSON line each: all scenarios, or SCENARIO=<name>
	node --import tsx backend/bench/run.ts $(SCENARIO)

# The stack: N identical instances behind Caddy (see README "Running the stack").
# STACK=local (default) runs processes through deploy/local; STACK=compose drives Docker Compose.
STACK ?= local
# The v2 plugin (docker compose) when present, else the v1 client (docker-compose).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
# OFFLINE_IMAGES=1: images built from local parts (deploy/compose/offline/build-images.sh)
# in place of the registry's, through an override of the same compose file.
OFFLINE := $(filter 1 true yes,$(OFFLINE_IMAGES))
COMPOSE_ARGS := -f deploy/compose/docker-compose.yml $(if $(OFFLINE),-f deploy/compose/docker-compose.offline.yml)
RUNNER := node --import tsx deploy/local/cli.ts
# The local stack's run directory (deploy/local/README.md); only make logs reads it here.
RUN_DIR ?= .run
RUNNER_DEPS := $(if $(filter compose,$(STACK)),,node_modules)
# Instances run the build: up and scale make sure it is current (down and status never need it).
BUILD_DEPS := $(if $(filter compose,$(STACK)),,dist/.built)

# What make up runs that npm does not bring: root on Debian gets the missing ones with apt-get,
# anyone else the command to run (PostgreSQL keeps its binaries off PATH, in /usr/lib/postgresql).
.PHONY: local-tools
local-tools:
	@missing="$$(for tool in caddy python3 redis-server; do command -v $$tool >/dev/null || echo $$tool; done; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || echo postgresql)"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	elif [ -n "$$missing" ]; then echo "Missing:" $$missing". Install, then make up again:" \
	  "sudo apt-get install -y" $$missing >&2; exit 1; fi

.PHONY: up
up: $(RUNNER_DEPS) $(BUILD_DEPS) ## Run the stack in the background: N instances (default 3) behind Caddy on :8080
ifeq ($(STACK),compose)
	$(if $(OFFLINE),deploy/compose/offline/build-images.sh)
	$(COMPOSE) $(COMPOSE_ARGS) up -d $(if $(OFFLINE),,--build) --scale backend=$(or $(N),3)
else
	$(RUNNER) up $(N)
endif

.PHONY: scale
scale: $(RUNNER_DEPS) $(BUILD_DEPS) ## Change the number of instances live: make scale N=5
	$(if $(N),,$(error make scale needs N, e.g. make scale N=5))
ifeq ($(STACK),compose)
	$(COMPOSE) $(COMPOSE_ARGS) up -d --no-recreate --scale backend=$(N)
else
	$(RUNNER) scale $(N)
endif

.PHONY: status
status: $(RUNNER_DEPS) ## Each instance: id, port, pid, ready
ifeq ($(STACK),compose)
	$(COMPOSE) $(COMPOSE_ARGS) ps
else
	@$(RUNNER) status
endif

.PHONY: logs
logs: $(RUNNER_DEPS) ## Follow the logs of every process of the stack
ifeq ($(STACK),compose)
	$(COMPOSE) $(COMPOSE_ARGS) logs -f --tail=50
else
	@# pm2 logs prefixes each line with its app; a stopped stack (no PM2 daemon) leaves the files to tail.
	@if kill -0 "$$(cat '$(RUN_DIR)/pm2/pm2.pid' 2>/dev/null)" 2>/dev/null; \
	then PM2_HOME='$(RUN_DIR)/pm2' npx pm2 logs --lines 20; else tail -n 20 -F '$(RUN_DIR)'/logs/*.log; fi
endif

.PHONY: down
down: $(RUNNER_DEPS) ## Stop everything the stack started
ifeq ($(STACK),compose)
	$(COMPOSE) $(COMPOSE_ARGS) down
else
	$(RUNNER) down
endif

# make up (local stack) serves the pages: build them first when needed. The
# compose image builds them itself (deploy/compose/caddy.Dockerfile).
up: $(if $(filter compose,$(STACK)),,web/dist/index.html local-tools)
