#!/usr/bin/env python3
"""Derives data/src/physics/catima_stopping.csv, the stopping-power table of the trajectory mesh.

Python Spyral 1.1.2 computes the energy loss of its trajectory mesh with catima (through pycatima,
called by spyral-utils' GasTarget.get_dedx: `catima.dedx(Projectile(m_u, Z, T), material)` with
catima's default configuration), and stops a track when catima's range falls below 1 mm. To put
the same physics in our mesh we tabulate catima's mass stopping power (MeV cm^2/g) of each light
projectile in each single target isotope, as a function of the kinetic energy per mass unit:

    rows     T/u from 1e-3 to 1e3 MeV/u, 40 points per decade (geometric);
    columns  one per (projectile, target isotope) pair, named `p<Z>_<A>_t<Z>_<A>`.

Facts used (all from the installed packages, nothing copied from source code):
- projectile mass in u = nuclear mass (MeV) / the atomic mass constant (MeV), as spyral-utils
  computes it; target masses are AME atomic masses, both from spyral-utils' NuclearDataMap;
- catima's stopping of a compound is Bragg's sum with mass fractions (the script checks this on
  CO2 and on D2 before writing), so a gas is built from the per-isotope columns.

The mesh interpolates this table with a cubic in (ln T/u, ln S) and integrates the range from
1 keV/u. Combinations not in the table fall back to our own stopping model (physics/stopping.rs).

Usage, from the repository root (needs Python 3 and pip; network access to PyPI):

    python3 scripts/parity/derive_stopping.py            # writes the table
    python3 scripts/parity/derive_stopping.py --check    # exits 1 if the committed file differs

Without a usable interpreter it creates a venv under target/stopping-venv with attpc-spyral==1.1.2
(which pins spyral-utils and pycatima), and re-runs itself there.
"""

import argparse
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "data", "src", "physics", "catima_stopping.csv")

PROJECTILES = [(1, 1), (1, 2), (1, 3), (2, 3), (2, 4)]
TARGETS = [(1, 1), (1, 2), (2, 4), (6, 12), (7, 14), (8, 16), (9, 19), (10, 20), (16, 32),
           (18, 40), (36, 84), (54, 132)]
PER_DECADE = 40
DECADES = (-3, 3)


def ensure_env():
    try:
        import pycatima  # noqa: F401
        import spyral_utils  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.path.join(REPO, "target", "stopping-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", "attpc-spyral==1.1.2"])
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def build():
    import importlib.metadata as md
    import pycatima as catima
    from spyral_utils.constants import AMU_2_MEV
    from spyral_utils.nuclear import NuclearDataMap

    nd = NuclearDataMap()
    n = (DECADES[1] - DECADES[0]) * PER_DECADE + 1
    energies = [10.0 ** (DECADES[0] + i / PER_DECADE) for i in range(n)]

    def material(parts, density=1e-4):
        m = catima.Material()
        for z, a, s in parts:
            m.add_element(nd.get_data(z, a).atomic_mass, z, float(s))
        m.density(density)
        return m

    def dedx(pz, pa, t_u, mat):
        mass_u = nd.get_data(pz, pa).mass / AMU_2_MEV
        p = catima.Projectile(mass_u, pz)
        p.T(t_u)
        return catima.dedx(p, mat)

    # Bragg additivity with mass fractions, which the Rust side relies on.
    for parts in ([(6, 12, 1), (8, 16, 2)], [(1, 2, 2)]):
        mix = material(parts)
        masses = [nd.get_data(z, a).atomic_mass * s for z, a, s in parts]
        for t_u in (0.002, 0.05, 1.0, 30.0):
            whole = dedx(2, 4, t_u, mix)
            bragg = sum(
                w / sum(masses) * dedx(2, 4, t_u, material([(z, a, 1)]))
                for w, (z, a, _) in zip(masses, parts)
            )
            assert abs(whole / bragg - 1.0) < 1e-9, (parts, t_u, whole, bragg)

    cols = []
    for pz, pa in PROJECTILES:
        for tz, ta in TARGETS:
            mat = material([(tz, ta, 1)])
            cols.append((f"p{pz}_{pa}_t{tz}_{ta}", [dedx(pz, pa, t, mat) for t in energies]))
    masses = "; ".join(
        f"{nd.get_data(z, a).isotopic_symbol} {nd.get_data(z, a).mass / AMU_2_MEV!r} u"
        for z, a in PROJECTILES
    )
    tmasses = "; ".join(
        f"{nd.get_data(z, a).isotopic_symbol} {nd.get_data(z, a).atomic_mass!r} u" for z, a in TARGETS
    )
    lines = [
        "# Electronic + nuclear mass stopping power (MeV cm^2/g) from catima, default configuration,",
        f"# computed with pycatima {md.version('pycatima')} as spyral-utils {md.version('spyral-utils')} calls it",
        "# (catima.dedx(Projectile(mass_u, Z, T=T/u), Material(single isotope))).",
        "# Made by scripts/parity/derive_stopping.py; do not edit.",
        f"# Projectile masses (nuclear mass / atomic mass constant): {masses}.",
        f"# Target masses (AME atomic): {tmasses}.",
        "# Column e_mev_u: kinetic energy per mass unit (MeV/u), 40 points per decade.",
        "e_mev_u," + ",".join(name for name, _ in cols),
    ]
    for i, t in enumerate(energies):
        lines.append(f"{t:.6e}," + ",".join(f"{v[i]:.9e}" for _, v in cols))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed table")
    args = ap.parse_args()
    ensure_env()
    text = build()
    if args.check:
        with open(OUT) as f:
            same = f.read() == text
        print("catima_stopping.csv " + ("is current" if same else "DIFFERS"))
        sys.exit(0 if same else 1)
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
