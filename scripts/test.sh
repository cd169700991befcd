#!/usr/bin/env bash
# Runs the whole test suite: unit, API, runtime and crash tests, and each bench once in test
# mode (they must build and work; timing belongs to `cargo bench`). Needs only the Rust
# toolchain; anything else the tests need is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --all-targets
cargo test --bench journal --bench sku -- --test
cargo test --workspace
