#!/usr/bin/env python3
"""Derives data/data/padplane.csv, the AT-TPC pad plane built into spyral-data.

The table holds, per pad, the facts Python Spyral 1.1.2 uses by default: the pad centre (x, y in
mm), the time correction (GET time buckets) and the scale (0.5 small pad, 1.0 big pad). They come
from the data files packaged in the attpc-spyral 1.1.2 wheel on PyPI:

    spyral/data/padxy.csv               -> x, y
    spyral/data/pad_time_correction.csv -> tcorr
    spyral/data/pad_scale.csv           -> scale

(The gain file in the same folder is not used: Spyral 1.1.2's pad gain is always 1.0.)

Usage, from the repository root (needs only Python 3 and pip; network access to PyPI):

    python3 scripts/parity/derive_padplane.py            # writes data/data/padplane.csv
    python3 scripts/parity/derive_padplane.py --check    # exits 1 if the committed file differs

The wheel is downloaded with `pip download --no-deps` into a temporary folder that is deleted
afterwards; nothing is installed. Values are copied digit for digit (no float round trip), so the
Rust parser reads exactly the numbers Spyral's `float()` reads.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "attpc-spyral"
VERSION = "1.1.2"
NUM_PADS = 10240
FILES = {
    "geometry": "spyral/data/padxy.csv",
    "time": "spyral/data/pad_time_correction.csv",
    "scale": "spyral/data/pad_scale.csv",
}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "data", "data", "padplane.csv")


def download_wheel(folder):
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--dest", folder, f"{PACKAGE}=={VERSION}",
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wheels = [f for f in os.listdir(folder) if f.endswith(".whl")]
    if len(wheels) != 1:
        sys.exit(f"expected one wheel in {folder}, found {wheels}")
    return os.path.join(folder, wheels[0])


def rows(text, ncols, name):
    """Data rows of a one-header-line CSV with LF, CRLF or CR line endings."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    data = []
    for number, line in enumerate(lines[1:], start=2):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < ncols:
            sys.exit(f"{name}: line {number}: expected {ncols} values: {line!r}")
        for f in fields[:ncols]:
            float(f)  # must parse
        data.append(fields[:ncols])
    if len(data) != NUM_PADS:
        sys.exit(f"{name}: {len(data)} data rows, expected {NUM_PADS}")
    return data


def build():
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(tmp)
        with open(wheel, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with zipfile.ZipFile(wheel) as z:
            texts = {k: z.read(v).decode("utf-8-sig") for k, v in FILES.items()}
        wheel_name = os.path.basename(wheel)
    xy = rows(texts["geometry"], 2, FILES["geometry"])
    tcorr = rows(texts["time"], 1, FILES["time"])
    scale = rows(texts["scale"], 1, FILES["scale"])
    out = [
        "# The AT-TPC pad plane as Python Spyral uses it by default (pad centre x, y in mm; time",
        "# correction in GET time buckets; scale 0.5 = small pad, 1.0 = big pad).",
        f"# Source: PyPI package {PACKAGE} {VERSION}, wheel {wheel_name}",
        f"# (sha256 {digest}), files {FILES['geometry']} (x, y),",
        f"# {FILES['time']} (tcorr) and {FILES['scale']} (scale).",
        "# Derived by scripts/parity/derive_padplane.py; values copied digit for digit.",
        "# One row per pad, pad ids 0..10239 in order.",
        "pad,x,y,tcorr,scale",
    ]
    for pad in range(NUM_PADS):
        out.append(f"{pad},{xy[pad][0]},{xy[pad][1]},{tcorr[pad][0]},{scale[pad][0]}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file only")
    args = ap.parse_args()
    text = build()
    if args.check:
        with open(OUT, encoding="utf-8") as f:
            same = f.read() == text
        print("data/data/padplane.csv is", "up to date" if same else "OUT OF DATE")
        sys.exit(0 if same else 1)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {OUT} ({NUM_PADS} pads)")


if __name__ == "__main__":
    main()
