"""nvnmd neb: the hop it picks in the shipped LGPS cell, and its bad-input errors."""

from importlib import resources

import numpy as np
from ase.io import read

from nvnmd.cli import main
from nvnmd.neb import hop_endpoints


def test_hop_is_a_channel_hop_along_c_into_an_empty_site():
    unit = read(resources.files("nvnmd.data") / "lgps_relaxed.extxyz")
    for sites in (None, ("Li3", "Li1")):
        atoms, index, dest, hop = hop_endpoints(unit, (2, 2, 1), sites)
        assert len(atoms) == 200 and atoms[index].symbol == "Li"
        vec = dest - atoms.positions[index]
        assert 1.8 < np.linalg.norm(vec) < 3.2 and abs(vec[2]) >= 0.8 * np.linalg.norm(vec)
        others = atoms.positions[[s == "Li" for s in atoms.get_chemical_symbols()]]  # the hopper is ≥ 1.8 Å away
        d = atoms.cell.scaled_positions(others - dest)
        d -= np.round(d)
        assert np.linalg.norm(d @ atoms.cell.array, axis=1).min() > 1.2  # the destination is empty
    assert hop["sites"] == "Li3 -> Li1"


def test_bad_hop_is_one_line(tmp_path, capsys):
    assert main(["neb", "--hop", "Li2-Li9", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nvnmd: error: --hop must be FROM-TO") and "\n" not in err
