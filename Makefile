# portforward-operator. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

NODE_MODULES := node_modules/.package-lock.json
TESTENV := node build/test/env/cli.js
MOCHA := npx mocha

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund

.PHONY: deps
deps: $(NODE_MODULES) ## Install the npm dependencies exactly as package-lock.json says (npm ci)

.PHONY: build
build: $(NODE_MODULES) ## Compile TypeScript: src/ to dist/, src/ and test/ to build/
	npm run build --silent

.PHONY: lint
lint: $(NODE_MODULES) ## ESLint (typescript-eslint) and Prettier checks
	npm run lint --silent

.PHONY: format
format: $(NODE_MODULES) ## Rewrite files with Prettier
	npm run format --silent

.PHONY: test-unit
test-unit: build ## Unit tests (no cluster)
	$(MOCHA) --config test/mocharc.unit.json

.PHONY: testenv-assets
testenv-assets: build ## Find or build etcd, kube-apiserver, kube-controller-manager, kubectl and kwok (cached outside the repo)
	$(TESTENV) assets

.PHONY: test-integration
test-integration: testenv-assets ## Integration tests against the real test control plane (started or reused)
	$(MOCHA) --config test/mocharc.integration.json

.PHONY: test
test: ## Everything from a fresh clone: npm ci, build, lint, unit tests, control-plane binaries, integration tests
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-integration

.PHONY: testenv-up
testenv-up: testenv-assets ## Start etcd, kube-apiserver, kube-controller-manager and kwok in the background; writes .testenv/kubeconfig
	$(TESTENV) up

.PHONY: testenv-down
testenv-down: ## Stop every test control-plane process (also after a crashed run) and remove .testenv/
	@if [ -f build/test/env/cli.js ]; then $(TESTENV) down; else $(MAKE) --no-print-directory build && $(TESTENV) down; fi

.PHONY: testenv-status
testenv-status: build ## Show whether the test control plane runs, and its processes
	$(TESTENV) status

.PHONY: run
run: build ## Run the operator against the current kubeconfig context (ARGS="--namespace demo" adds flags)
	node dist/main.js $(ARGS)

.PHONY: demo
demo: ## (coming with the demo issue) the embedded control plane, a demo pod and the operator
	@echo "make demo is not available yet: it arrives with the newcomer/demo issue. Try 'make testenv-up'." >&2
	@exit 2

.PHONY: clean
clean: ## Remove build output (not the binary cache)
	rm -rf dist build
