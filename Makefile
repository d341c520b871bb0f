# The two commands: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
COMPONENTS_OUT := components/target/wasm32-wasip2/release
# Functions `make run` serves: the examples only, not the test fixtures.
EXAMPLES := hello greet
# Functions the tests deploy: examples and fixtures.
FIXTURES := hello misbehave privileged events
# Built apart: Cargo unifies the SDK's `system` feature across the packages
# of one build, and a user function built with it exports the system
# handler instead of `wasi:http`.
SYSTEM_COMPONENTS := -p auth -p crud -p postgrest-grammar
USER_COMPONENTS := -p selfdb-sdk -p greet -p hello -p misbehave -p privileged -p events -p event-sink

.PHONY: run test bench bootstrap components dashboard lint lint-components js-deps js-toolchain spin-fixtures

# `make test` lints the host workspace inside its own build: clippy-driver
# (what `cargo clippy` runs) compiles the workspace's crates with code
# generation, so the dependencies build once, not once for `cargo clippy`
# and again for the tests (that second pass took 12 of CI's 37 minutes on a
# busy machine). CLIPPY_ARGS is how cargo-clippy hands the driver its
# `-- -D warnings`.
LINTED := RUSTC_WORKSPACE_WRAPPER="$$(rustup which clippy-driver)" CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

# Each stage says what it does in one line; cargo's own output stays on
# screen so a long first build shows progress.
run: bootstrap components js-toolchain dashboard
	@echo "make run: building the host (release profile, no LTO: about ten minutes on a fresh clone)"
	cargo build --release -p selfdb
	@mkdir -p target/functions
	@for f in $(EXAMPLES); do cp $(COMPONENTS_OUT)/$$f.wasm target/functions/; done
	@echo "make run: starting selfdb dev"
	./target/release/selfdb dev --functions-dir target/functions $(ARGS)

test: bootstrap components lint-components js-deps js-toolchain dashboard
	@echo "make test: building the host with its lints, then running every test"
	mkdir -p target/test-functions
	for f in $(FIXTURES); do cp $(COMPONENTS_OUT)/$$f.wasm target/test-functions/; done
	cargo fmt --all -- --check
	$(LINTED) cargo build -p selfdb
	$(LINTED) cargo test --workspace --all-targets --no-run
	$(LINTED) cargo test --workspace
	# The components' own unit tests (parsers, SQL from plans, auth's
	# helpers), on the native target.
	cd components && cargo test -p crud -p auth -p postgrest-grammar

bench: components dashboard
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

# The Spin apps the tests and `make bench` deploy (tests/fixtures/spin),
# rebuilt from components/spin-fixtures: one workspace per fixture (spin-sdk
# 5.2.0, WASI 0.2; 6.0.0, refused; 7.0.0, WASI 0.3; 5.2.0's hello world for
# the benchmark), each pinned by its lockfile. The built components are
# committed: four SDK builds would add about ten minutes to every CI run for
# bytes that change only with these sources.
SPIN_FIXTURES := v5 v6 v7 hello
spin-fixtures: bootstrap
	for v in $(SPIN_FIXTURES); do \
		(cd components/spin-fixtures/$$v && cargo build --locked --release --target wasm32-wasip2) && \
		cp components/spin-fixtures/$$v/target/wasm32-wasip2/release/*.wasm tests/fixtures/spin/$$v/ || exit 1; \
	done

# The admin dashboard (dashboard/: TypeScript, Preact, Vite; pinned by its
# lockfile), built into dashboard/dist, which the host embeds when it is
# compiled: so it comes before any host build.
dashboard:
	@echo "make: building the dashboard (dashboard/, from npm, pinned by its lockfile)"
	cd dashboard && npm ci --no-audit --no-fund && npm run build

# What builds TypeScript/JavaScript functions (esbuild, tsc, ComponentizeJS),
# pinned by its lockfile; the host runs it at deploy time.
js-toolchain:
	@echo "make: installing the JavaScript function toolchain from npm (toolchain/js)"
	cd toolchain/js && npm ci --no-audit --no-fund

# The real Supabase client the compatibility tests drive (pinned by the lockfile).
js-deps:
	@echo "make: installing the test clients from npm (tests/js, pinned by its lockfile)"
	cd tests/js && npm ci --no-audit --no-fund

# `make lint`: every lint on its own, as `cargo clippy` runs them.
lint: lint-components
	@echo "make: checking the host workspace's formatting and lints"
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

lint-components:
	@echo "make: checking the components' formatting and lints (wasm32-wasip2)"
	cd components && cargo fmt --all -- --check
	for v in $(SPIN_FIXTURES); do (cd components/spin-fixtures/$$v && cargo fmt -- --check) || exit 1; done
	cd components && cargo clippy --target wasm32-wasip2 --all-targets $(SYSTEM_COMPONENTS) -- -D warnings
	cd components && cargo clippy --target wasm32-wasip2 --all-targets $(USER_COMPONENTS) -- -D warnings
