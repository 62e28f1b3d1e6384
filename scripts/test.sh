#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, checks formatting and lints,
# builds every crate (the end-to-end tests drive the built `spyral` binary and plugin .so
# files), checks that the plugin SDK crates publish (`cargo publish --dry-run`), then runs all
# tests with cargo-nextest, the HTML report's browser test (Debian's headless Chromium), the
# core doc tests, and the fuzz harness (60 s per target, two at a time).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-system.sh
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "== installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build"
cargo build --workspace --locked
echo "== cargo publish --dry-run: the plugin SDK crates package and build from their .crate files alone"
cargo publish --dry-run --locked -p spyral-core -p spyral-data
echo "== SLURM end-to-end test (one-node cluster on this machine)"
scripts/slurm-cluster.sh start
trap 'scripts/slurm-cluster.sh stop' EXIT
cargo nextest run --locked -p spyral-e2e --test slurm --run-ignored only --no-fail-fast
scripts/slurm-cluster.sh stop
trap - EXIT
echo "== tests"
cargo nextest run --workspace --locked --no-fail-fast
echo "== browser test of the HTML report: headless Chromium, gate drawn and used (scripts/browser-test.sh)"
scripts/browser-test.sh
echo "== doc tests of the plugin contract (compile-fail checks included)"
cargo test --locked --doc -p spyral-core
echo "== fuzzing: every trace reader and the pipeline parser, 60 s each (scripts/fuzz.sh)"
scripts/fuzz.sh
