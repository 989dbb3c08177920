# remediator: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
EMULATOR_STAMP := $(VENV)/.installed-$(shell sha256sum tests/emulator-requirements.txt | cut -c1-12)
export CARGO_TERM_COLOR ?= never
# Where cargo puts its builds (CARGO_TARGET_DIR when set, as with a shared build cache).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

SAM_STAMP := .venv-sam/.installed-$(shell sha256sum infra/lint-sam-requirements.txt | cut -c1-12)
CHECKOV_STAMP := .venv-checkov/.installed-$(shell sha256sum infra/lint-checkov-requirements.txt | cut -c1-12)

.PHONY: demo test emulator build bench bench-storm bench-report fmt clean lint-infra template package deploy fuzz

## demo: start the emulator, build a miniature Thera pipeline, heal one failure, report another
demo: emulator
	cargo build --quiet --bin remediator --example demo
	$(TARGET_DIR)/debug/examples/demo

## test: everything, green: format, lints, unit and end-to-end tests, policy checks
test: emulator
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo test --workspace
	$(TARGET_DIR)/debug/remediator validate --policies policies
	$(TARGET_DIR)/debug/remediator test --policies policies
	$(TARGET_DIR)/debug/remediator-policy validate --policies policies
	$(TARGET_DIR)/debug/remediator-policy test --policies policies
	$(MAKE) --no-print-directory lint-infra

## emulator: install the pinned moto server into .venv
emulator: $(EMULATOR_STAMP)

$(EMULATOR_STAMP): tests/emulator-requirements.txt
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/emulator-requirements.txt
	touch $@

build:
	cargo build --release --bin remediator

## fuzz: coverage-guided fuzzing of the event parser, policy loader and pattern compiler
## (cargo-fuzz with a nightly toolchain; FUZZ_SECONDS per target, default 60). Every
## target links only remediator-policy (no AWS SDK); event_parser runs the offline engine.
FUZZ_SECONDS ?= 60
fuzz:
	@rustup toolchain list | grep -q '^nightly' || { echo "make fuzz needs a nightly toolchain: rustup toolchain install nightly"; exit 2; }
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
	cd fuzz && for t in event_parser policy_loader pattern_compiler; do \
		mkdir -p target/corpus-$$t && \
		cargo +nightly fuzz run $$t target/corpus-$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

## bench-storm: a storm of failures with duplicates against the emulator (STORM_EVENTS, default 10000)
bench-storm: emulator
	cargo build --release --quiet --bin remediator --example bench_storm
	$(TARGET_DIR)/release/examples/bench_storm

## bench-report: `remediator report` over a generated year of report rows on the emulator (REPORT_PER_DAY, default 100)
bench-report: emulator
	cargo build --quiet --bin remediator --example bench_report
	$(TARGET_DIR)/debug/examples/bench_report

## template: regenerate infra/template.json from the policies and the actions' permissions
template:
	cargo run --quiet --bin remediator -- template > infra/template.json
	cargo run --quiet --bin remediator -- template --member > infra/member-template.json

## lint-infra: cfn-lint, sam validate --lint and checkov on infra/template.json, offline
lint-infra: $(SAM_STAMP) $(CHECKOV_STAMP)
	.venv-sam/bin/cfn-lint infra/template.json infra/member-template.json
	cd infra && SAM_CLI_TELEMETRY=0 ../.venv-sam/bin/sam validate --lint --template-file template.json --region us-east-1
	.venv-checkov/bin/checkov --skip-download --quiet --compact --framework cloudformation -f infra/template.json
	.venv-checkov/bin/checkov --skip-download --quiet --compact --framework cloudformation -f infra/member-template.json

$(SAM_STAMP): infra/lint-sam-requirements.txt
	rm -rf .venv-sam
	$(PYTHON) -m venv .venv-sam
	.venv-sam/bin/pip install --quiet --disable-pip-version-check -r infra/lint-sam-requirements.txt
	touch $@

$(CHECKOV_STAMP): infra/lint-checkov-requirements.txt
	rm -rf .venv-checkov
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check -r infra/lint-checkov-requirements.txt
	touch $@

## package: the Lambda zip (x86_64, policies bundled) with cargo-lambda from PyPI
package: .venv-package/.installed
	PATH="$(CURDIR)/.venv-package/bin:$$PATH" cargo lambda build --release --bin remediator --output-format zip
	@ls -l target/lambda/remediator/bootstrap.zip

.venv-package/.installed: infra/package-requirements.txt
	rm -rf .venv-package
	$(PYTHON) -m venv .venv-package
	.venv-package/bin/pip install --quiet --disable-pip-version-check -r infra/package-requirements.txt
	touch $@

## deploy: package, then deploy the stack with SAM (needs AWS credentials; not run in CI)
deploy: package $(SAM_STAMP)
	cd infra && SAM_CLI_TELEMETRY=0 ../.venv-sam/bin/sam deploy --template-file template.json \
		--stack-name $${STACK:-remediator} --capabilities CAPABILITY_IAM --resolve-s3 \
		--parameter-overrides $${PARAMETERS:-}

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) .venv-sam .venv-checkov .venv-package

## bench: throughput of the policy engine (release build), printed as a table
bench:
	cargo build --release --quiet --bin remediator --example bench_engine
	$(TARGET_DIR)/release/examples/bench_engine
