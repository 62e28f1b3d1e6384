#!/usr/bin/env bash
# Browser test of the HTML report, in Debian's headless Chromium driven by puppeteer-core
# (scripts/browser/report-test.mjs): simulates a small dataset, runs the default chain, opens
# the launch's report.html and checks it loads with no console error and no outside request,
# shows its plots and tables, and that a gate drawn with mouse clicks in the editor downloads
# as Spyral's particle-ID JSON; takes screenshots and checks they are not blank; then points
# InterpSolver at the downloaded gate, runs again and checks against report.json and the
# artifacts that only InterpSolver reran and that its fits come from the drawn polygon.
#
# Installs what is missing: Debian's chromium (apt; no browser is downloaded) and puppeteer-core
# (npm, pinned, into <target>/browser-test, with the browser download skipped). Uses
# <target>/debug/spyral (building it when missing), <target> being $CARGO_TARGET_DIR or target.
# Screenshots are kept in <target>/browser-test/screenshots; set KEEP=1 to keep the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."

PUPPETEER_VERSION=24.43.1 # the newest puppeteer-core that runs on Node 20
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
SPYRAL="$TARGET/debug/spyral"
NODE_DIR="$TARGET/browser-test"
CHROMIUM=/usr/bin/chromium

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -x "$CHROMIUM" ]; then
    echo "browser-test: installing chromium with apt"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "browser-test: installing nodejs and npm with apt"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
installed=$(node -e "try{console.log(require(process.argv[1]).version)}catch{}" \
    "$NODE_DIR/node_modules/puppeteer-core/package.json")
if [ "$installed" != "$PUPPETEER_VERSION" ]; then
    echo "browser-test: installing puppeteer-core $PUPPETEER_VERSION with npm into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$NODE_DIR" --no-save --no-package-lock \
        --no-audit --no-fund --loglevel=error "puppeteer-core@$PUPPETEER_VERSION" >/dev/null
fi
if [ ! -x "$SPYRAL" ]; then
    echo "browser-test: building spyral"
    cargo build --locked -p spyral-host --bin spyral
fi

WORK=$(mktemp -d)
cleanup() {
    status=$?
    if [ "$status" -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then
        echo "browser-test: work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
cp examples/gas/deuterium_300torr.json "$WORK/gas.json"
cp examples/pid/deuteron.json "$WORK/pid.json"
REPO=$PWD
cd "$WORK"
echo "browser-test: simulating 3 runs of 50 events"
"$SPYRAL" simulate --out traces --runs 3 --events 50 --seed 11 >/dev/null 2>&1

# A small mesh (as the end-to-end chain test uses) keeps a debug build quick; no IC gate, so the
# solver's gated rows are exactly the Estimation rows inside the polygon.
cat >p.yaml <<EOF
workspace: ws
traces: traces
runs: {min: 1, max: 3}
workers: 2
seed: 4
phases:
  - kind: pointcloud
  - kind: cluster
  - kind: estimation
  - kind: interp-solver
    config:
      gas_data_path: gas.json
      particle_id_filename: pid.json
      ic_gate: false
      n_time_steps: 200
      interp_ke_max: 70.0
      interp_ke_bins: 60
      interp_polar_bins: 40
EOF
run() {
    if ! "$SPYRAL" run p.yaml --no-display >run.log 2>&1; then
        cat run.log
        echo "browser-test: spyral run failed"
        exit 1
    fi
    grep -A1 "runs:" run.log | head -2
}

echo "browser-test: spyral run (default chain, the example deuteron gate)"
run
export PUPPETEER_DIR="$NODE_DIR" CHROMIUM
mkdir -p browser
node "$REPO/scripts/browser/report-test.mjs" draw ws/log/latest/report.html browser

# The saved gate replaces the file particle_id_filename names: the pipeline is unchanged, so
# InterpSolver is stale by its gate file's content alone.
fits_before=$(cat ws/InterpSolver/*.parquet | sha256sum)
cp browser/deuteron.json pid.json
echo "browser-test: spyral run with the gate drawn in the browser"
run
fits_after=$(cat ws/InterpSolver/*.parquet | sha256sum)
if [ "$fits_before" = "$fits_after" ]; then
    echo "browser-test: FAILED: the InterpSolver parquet files did not change with the new gate"
    exit 1
fi
GATE_FILE="$WORK/pid.json" node "$REPO/scripts/browser/report-test.mjs" verify ws/log/latest/report.html browser

mkdir -p "$NODE_DIR/screenshots"
cp browser/*.png "$NODE_DIR/screenshots/"
echo "browser-test: passed (screenshots in $NODE_DIR/screenshots)"
