"""An ASE Calculator over any nvnmd backend, so ASE's optimisers, NEB and MD work too.

    atoms.calc = NvnmdCalculator(backend)
Stress follows ASE's sign convention from the deepmd-style virial: σ = −sym(W)/V.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes


class NvnmdCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, backend, **kwargs):
        super().__init__(**kwargs)
        self.backend = backend

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        from nvnmd.md.engine import atom_types

        types = atom_types(self.atoms, self.backend.type_map)
        res = self.backend.compute(self.atoms.positions, types, self.atoms.cell.array, pbc=bool(self.atoms.pbc.any()))
        self.results["energy"] = self.results["free_energy"] = res.energy
        self.results["forces"] = res.forces
        if res.atom_energy is not None:
            self.results["energies"] = res.atom_energy
        if self.atoms.pbc.all():
            w = 0.5 * (res.virial + res.virial.T) / self.atoms.get_volume()
            self.results["stress"] = -np.array([w[0, 0], w[1, 1], w[2, 2], w[1, 2], w[0, 2], w[0, 1]])
