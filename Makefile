# portforward-operator. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every recipe runs the pinned Node.js LTS (.nvmrc): when the node on PATH is older, hack/ensure-node.sh
# fetches that exact version from the npm registry into the binary cache and it goes first on PATH
# (one line on stderr says so). Nested makes find it on PATH and say nothing.
NODE_BIN := $(shell hack/ensure-node.sh)
ifneq ($(.SHELLSTATUS),0)
$(error hack/ensure-node.sh could not provide Node.js $(file <.nvmrc): see the line above)
endif
ifneq ($(NODE_BIN),)
export PATH := $(NODE_BIN):$(PATH)
endif

NODE_MODULES := node_modules/.package-lock.json
TESTENV := node build/tools/testenv/cli.js
MOCHA := npx mocha

.PHONY: help
help: ## List the targets
	@echo 'usage: make TARGET   (new here? `make demo` shows it working, `make test` proves it)'
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund

.PHONY: test-tools
test-tools: ## Install lua5.1 (Debian) for the Argo CD health-check test when missing and when root may
	@if command -v lua5.1 >/dev/null || command -v lua5.4 >/dev/null || command -v lua >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing lua5.1 for the Argo CD health-check test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.1 >/dev/null) || \
	  { echo "could not install lua5.1: the Argo CD health-check test will be skipped" >&2; }; \
	else echo "no Lua interpreter (apt-get install lua5.1): the Argo CD health-check test will be skipped" >&2; fi

.PHONY: test-go-tools
test-go-tools: build ## Find or build Helm 4 and the kstatus program (hack/helm, hack/kstatus; cached outside the repo) and promtool
	node build/tools/testenv/gotools.js helm kstatus
	@echo "promtool: $$(hack/ensure-promtool.sh)"

.PHONY: deps
deps: $(NODE_MODULES) ## Install the npm dependencies exactly as package-lock.json says (npm ci)

.PHONY: build
build: $(NODE_MODULES) ## Compile TypeScript: src/ to dist/, src/, test/ and tools/ to build/
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

.PHONY: image
image: ## Build the operator image from the Dockerfile with buildah (no daemon, no registry) and save it as an OCI archive
	@hack/image/build.sh >/dev/null

# The real node's suite runs on a control plane of its own (.testenv-node/), with the image imported.
.PHONY: test-node
test-node: testenv-assets ## The operator from deploy/ in pods on a real node (kubelet, containerd, runc, CNI), built image
	archive=$$(hack/image/build.sh) && TESTENV_DIR=$(CURDIR)/.testenv-node REAL_NODE=1 NODE_IMAGES=$$archive \
	  $(MOCHA) --config test/mocharc.node.json

# The suites on the test control plane start it, or reuse the one `make testenv-up` left running (test/support/fixtures.ts).
.PHONY: test-integration
test-integration: testenv-assets test-go-tools ## Integration tests: parts (relay, SPDY, leader election, status writer, CRD, deploy/, the Helm chart, monitoring, kstatus) on the test control plane
	$(MOCHA) --config test/mocharc.integration.json

.PHONY: test-e2e
test-e2e: testenv-assets ## End-to-end tests: the operator as a process on the test control plane; the reliability scenarios, fewer rounds
	$(MOCHA) --config test/mocharc.e2e.json

.PHONY: test-reliability
test-reliability: testenv-assets ## The reliability scenarios at full size (faults, restarts, stalls, 10,000 connections, fuzzing; ~25 min)
	RELIABILITY_FULL=1 FUZZ_CASES=$${FUZZ_CASES:-20000} $(MOCHA) --config test/mocharc.unit.json --grep fuzz
	RELIABILITY_FULL=1 $(MOCHA) --config test/mocharc.reliability.json

.PHONY: test
test: ## Everything from a fresh clone: npm ci, build, lint, unit tests, control-plane binaries, integration and e2e tests
	$(MAKE) --no-print-directory test-tools
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-integration
	$(MAKE) --no-print-directory test-e2e
	$(MAKE) --no-print-directory test-node

.PHONY: testenv-up
testenv-up: testenv-assets ## Start etcd, kube-apiserver, kube-controller-manager and kwok in the background (REAL_NODE=1: and a real node); writes .testenv/kubeconfig
	$(if $(filter 1 true,$(REAL_NODE)),NODE_IMAGES=$$(hack/image/build.sh)) $(TESTENV) up

.PHONY: testenv-down
testenv-down: ## Stop every test control-plane process (also after a crashed run) and remove .testenv/
	@if [ -f build/tools/testenv/cli.js ]; then $(TESTENV) down; else $(MAKE) --no-print-directory build && $(TESTENV) down; fi

.PHONY: testenv-restart
testenv-restart: build ## Restart one component on its ports and data: COMPONENT=kube-apiserver|etcd|kwok [DOWN=seconds] [KILL=1]
	@if [ -z "$(COMPONENT)" ]; then echo 'usage: make testenv-restart COMPONENT=kube-apiserver|etcd|kwok [DOWN=seconds] [KILL=1]' >&2; exit 2; fi
	$(TESTENV) restart $(COMPONENT) $(if $(DOWN),--down=$(DOWN)) $(if $(KILL),--kill)

.PHONY: testenv-status
testenv-status: build ## Show whether the test control plane runs, and its processes
	$(TESTENV) status

.PHONY: run
run: build ## Run the operator against the current kubeconfig context, as the image does (ARGS="--namespace demo" adds flags)
	node --max-semi-space-size=2 --external-memory-accounted-in-global-limit dist/main.js $(ARGS)

.PHONY: demo
demo: build ## See it work: control plane, demo pod, operator, examples/kuard.yaml, curl; Ctrl-C ends (DEMO_ONESHOT=1: once)
	node build/tools/demo/main.js

.PHONY: bench
bench: build ## Benchmarks on the test control plane: relay vs kubectl and direct TCP (kwok, then a real node), controller latencies, 1000 PortForwards, a remote-cluster forward against a local one
	node build/tools/bench/run.js $(BENCH)
	@if [ -z "$(BENCH)" ] || [ "$(BENCH)" = relay ]; then $(MAKE) --no-print-directory bench-node; fi

# The relay benchmark again with its target pod on a real node (root; a control plane of its own).
.PHONY: bench-node
bench-node: testenv-assets ## The relay benchmark with the target pod on a real node (kubelet, containerd): report in build/bench-node-results.md
	@if [ "$$(id -u)" != 0 ]; then echo "bench-node: the real node needs root; skipped" >&2; exit 0; fi; \
	archive=$$(hack/image/build.sh) && TESTENV_DIR=$(CURDIR)/.testenv-node REAL_NODE=1 NODE_IMAGES=$$archive \
	  BENCH_OUT=$${BENCH_NODE_OUT:-$(CURDIR)/build/bench-node-results.md} node build/tools/bench/run.js relay

.PHONY: clean
clean: ## Remove build output (not the binary cache)
	rm -rf dist build
