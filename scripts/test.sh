#!/usr/bin/env bash
# Runs the whole test suite: unit, API, runtime, CLI and crash tests, and each bench once in
# test mode (they must build and work; timing belongs to `cargo bench`), a smoke of every
# load-test scenario, and each fuzz target for a few seconds. Needs the Rust
# toolchain; what else the tests need is installed here:
# - python3 with an SMTP server module (stdlib `smtpd` up to Python 3.11, else `aiosmtpd`),
#   the real SMTP server the mail adapter is tested against.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3 python3-pip
fi
if ! python3 -c 'import smtpd' 2>/dev/null && ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    python3 -m pip install --quiet aiosmtpd \
        || (apt-get update -qq && apt-get install -y -qq python3-aiosmtpd)
fi

# - redis-server (Debian's package), which the Redis baselines of the load smoke start.
if ! command -v redis-server >/dev/null; then
    apt-get update -qq && apt-get install -y -qq redis-server
fi

# - iproute2 (`ip`), with which the partition test puts each node in a network namespace of
#   its own (the test skips, saying why, where the kernel refuses namespaces).
if ! command -v ip >/dev/null; then
    apt-get update -qq && apt-get install -y -qq iproute2
fi

# - Debian's Chromium, its WebDriver and a Korean font, for the storefront's browser tests
#   (tests/web/).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver
fi
if ! fc-list 2>/dev/null | grep -qi nanum; then
    apt-get install -y -qq fonts-nanum || (apt-get update -qq && apt-get install -y -qq fonts-nanum)
fi

# The layout rules (README, "Layout"): no file over 600 lines, no two files importing each other.
python3 scripts/check-layout.py
cargo build --workspace --all-targets
cargo test --bench journal --bench sku --bench catalog -- --test
cargo test --workspace
# A seconds-long smoke of every load-test scenario against a real server.
./scripts/loadtest-smoke.sh
# The OpenAPI document against a real node: schemathesis, every check and phase (installed
# if missing).
./scripts/schemathesis.sh
# Every fuzz target for a few seconds (cargo-fuzz is installed if missing).
./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"

