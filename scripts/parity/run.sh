#!/usr/bin/env bash
# Parity of spyral with Python Spyral 1.1.2 (issue 13), unattended on a fresh Debian 12 machine:
#   1. installs what is missing with apt (libhdf5-dev and pkg-config via scripts/setup-system.sh;
#      libeigen3-dev, cmake and g++ for the C++ extension of spyral-utils; python3-venv);
#   2. creates a Python venv with attpc-spyral==1.1.2, polars, h5py and scikit-learn;
#   3. builds the release binary (cargo build --release -p spyral-host; CARGO_TARGET_DIR is
#      respected);
#   4. runs scripts/parity/parity.py: simulates runs in every trace format, checks that Spyral
#      reads them, runs both pipelines with one parameter set (params.py), compares phase by
#      phase and against the truth, prints the table and writes bench-results/parity.md.
# Needs root (or sudo) for apt. On the 2-core development machine: the venv 1 min, a release build
# from scratch 10-15 min (1-2 min incremental), the comparison itself 4-8 min (mostly Python
# Spyral), so about 20-25 minutes on a fresh machine.
#
# Environment:
#   PARITY_VENV   the venv (default target/parity-venv; reused when it already has Spyral)
#   PARITY_WORK   scratch folder for traces and workspaces (default target/parity)
#   PARITY_ARGS   extra arguments for parity.py, e.g. "--runs 2 --events 60" for a quick look
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
VENV=${PARITY_VENV:-$REPO/target/parity-venv}
WORK=${PARITY_WORK:-$REPO/target/parity}
T0=$(date +%s)

SPYRAL_SKIP_PYTHON=1 scripts/setup-system.sh
need_apt=()
for pkg in libeigen3-dev cmake g++ python3-venv; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "parity: installing ${need_apt[*]} with apt"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! "$VENV/bin/python" -c "import spyral, polars, h5py, sklearn" >/dev/null 2>&1; then
    echo "parity: creating the venv $VENV with attpc-spyral 1.1.2"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        attpc-spyral==1.1.2 polars h5py scikit-learn
fi
"$VENV/bin/python" -c "import importlib.metadata as m; print('parity: ' + ', '.join(p + ' ' + m.version(p) for p in ('attpc-spyral', 'spyral-utils', 'numpy', 'scipy', 'scikit-learn', 'lmfit', 'polars', 'h5py')))"

echo "parity: building spyral (release)"
cargo build --release --locked -p spyral-host
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET=$REPO/$TARGET ;; esac

# shellcheck disable=SC2086
"$VENV/bin/python" scripts/parity/parity.py --repo "$REPO" --bin "$TARGET/release/spyral" \
    --work "$WORK" ${PARITY_ARGS:-}
echo "parity: done in $(( ($(date +%s) - T0) / 60 )) min"
