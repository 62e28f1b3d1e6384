#!/usr/bin/env bash
# Installs what spyral needs to build and test on a fresh Debian 12 machine: the system HDF5
# library (one shared libhdf5 for spyral and every plugin), pkg-config, tmux (the progress
# display is tested in a terminal), and the Python packages the interoperability tests use
# (h5py, polars, numpy). Safe to run again; does nothing that is
# already done. Needs root (or sudo) for apt.
set -euo pipefail

need_apt=()
dpkg -s libhdf5-dev >/dev/null 2>&1 || need_apt+=(libhdf5-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
if [ "${#need_apt[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${need_apt[*]} with apt"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "${SPYRAL_SKIP_PYTHON:-0}" != "1" ] && command -v python3 >/dev/null; then
    if ! python3 -c "import h5py, polars, numpy" >/dev/null 2>&1; then
        echo "setup: installing h5py, polars and numpy with pip"
        python3 -m pip install --quiet --disable-pip-version-check h5py polars numpy
    fi
fi
