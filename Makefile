# The two commands: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
COMPONENTS_OUT := components/target/wasm32-wasip2/release
# Functions `make run` serves: the examples only, not the test fixtures.
EXAMPLES := hello
# Functions the tests deploy: examples and fixtures.
FIXTURES := hello misbehave privileged
# Built apart: Cargo unifies the SDK's `system` feature across the packages
# of one build, and a user function built with it exports the system
# handler instead of `wasi:http`.
SYSTEM_COMPONENTS := -p auth -p crud
USER_COMPONENTS := -p selfdb-sdk -p hello -p misbehave -p privileged

.PHONY: run test bench bootstrap components lint js-deps

# Each stage says what it does in one line; cargo's own output stays on
# screen so a long first build shows progress.
run: bootstrap components
	@echo "make run: building the host (release profile, no LTO: about ten minutes on a fresh clone)"
	cargo build --release -p selfdb
	@mkdir -p target/functions
	@for f in $(EXAMPLES); do cp $(COMPONENTS_OUT)/$$f.wasm target/functions/; done
	@echo "make run: starting selfdb dev"
	./target/release/selfdb dev --functions-dir target/functions $(ARGS)

test: bootstrap components lint js-deps
	@echo "make test: building the host and running every test"
	mkdir -p target/test-functions
	for f in $(FIXTURES); do cp $(COMPONENTS_OUT)/$$f.wasm target/test-functions/; done
	cargo build -p selfdb
	cargo test --workspace
	# The components' own unit tests (parsers, SQL from plans, auth's
	# helpers), on the native target.
	cd components && cargo test -p crud -p auth

bench: components
	./scripts/bootstrap.sh --bench
	@echo "make bench: building the host (dist profile: fat LTO, as release images are built)"
	cargo build --profile dist -p selfdb
	mkdir -p target/functions
	for f in $(EXAMPLES); do cp $(COMPONENTS_OUT)/$$f.wasm target/functions/; done
	./bench/run.sh

bootstrap:
	@echo "make: installing what is missing (Debian packages, the wasm32-wasip2 target)"
	@./scripts/bootstrap.sh

components:
	@echo "make: building the system and example components (wasm32-wasip2)"
	cd components && cargo build --release --target wasm32-wasip2 $(SYSTEM_COMPONENTS)
	cd components && cargo build --release --target wasm32-wasip2 $(USER_COMPONENTS)

# The real Supabase client the compatibility tests drive (pinned by the lockfile).
js-deps:
	@echo "make: installing the test clients from npm (tests/js, pinned by its lockfile)"
	cd tests/js && npm ci --no-audit --no-fund

lint:
	@echo "make: checking formatting and lints (both workspaces)"
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cd components && cargo fmt --all -- --check
	cd components && cargo clippy --target wasm32-wasip2 --all-targets $(SYSTEM_COMPONENTS) -- -D warnings
	cd components && cargo clippy --target wasm32-wasip2 --all-targets $(USER_COMPONENTS) -- -D warnings
