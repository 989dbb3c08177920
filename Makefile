# remediator: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
EMULATOR_STAMP := $(VENV)/.installed-$(shell sha256sum tests/emulator-requirements.txt | cut -c1-12)
export CARGO_TERM_COLOR ?= never

.PHONY: demo test emulator build bench fmt clean

## demo: start the emulator, build a miniature Thera pipeline, heal one failure, report another
demo: emulator
	cargo build --quiet --bin remediator --example demo
	./target/debug/examples/demo

## test: everything, green: format, lints, unit and end-to-end tests, policy checks
test: emulator
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo test --workspace
	./target/debug/remediator validate --policies policies
	./target/debug/remediator test --policies policies

## emulator: install the pinned moto server into .venv
emulator: $(EMULATOR_STAMP)

$(EMULATOR_STAMP): tests/emulator-requirements.txt
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/emulator-requirements.txt
	touch $@

build:
	cargo build --release --bin remediator

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV)

## bench: throughput of the policy engine (release build), printed as a table
bench:
	cargo run --release --quiet --example bench_engine
