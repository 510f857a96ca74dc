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

.PHONY: start
start: node_modules ## Run one backend instance in the foreground (PORT, REDIS_URL… from the environment)
	npm start

.PHONY: sim
sim: node_modules ## Run the Groq simulator on :8090
	npm run sim

.PHONY: typecheck
typecheck: node_modules ## tsc --noEmit over sources and tests
	npx tsc --noEmit

.PHONY: lint
lint: node_modules ## Biome: lint and format check
	npx biome check .

.PHONY: test
test: node_modules ## Typecheck, lint, then every test (unit, integration on real Redis, e2e)
	npx tsc --noEmit
	npx biome check .
	npx vitest run --project fast
	npx vitest run --project e2e --passWithNoTests
