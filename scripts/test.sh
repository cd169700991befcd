#!/usr/bin/env bash
# Runs the whole test suite: unit, API, runtime and crash tests, the benches and the load
# generator compiled and smoke-run. Needs only the Rust toolchain; anything else the tests need
# is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --all-targets
cargo test --workspace
# Benches run once each in test mode: they must build and work, not be timed here.
cargo test --bench journal --bench sku -- --test
