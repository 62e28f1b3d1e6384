#!/usr/bin/env bash
# The main job on built-in simulated data: installs what is missing, builds spyral in release
# mode, simulates a few AT-TPC runs and analyses them with the default pipeline, showing the
# progress display. Outputs go to ./spyral-demo (or the folder given as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."

SPYRAL_SKIP_PYTHON=1 scripts/setup-system.sh
cargo build --release --workspace --locked
exec target/release/spyral demo --dir "${1:-spyral-demo}"
