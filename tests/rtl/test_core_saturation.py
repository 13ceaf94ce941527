"""Every saturation/clamp site of SPEC §2.2 (sim/nvq1/sites.py) fired in nvq1_core and held to
the simulator: energies, forces, virial, every counter and overflow_atoms identical.

Forced-saturation images of one shape and one set of fractions (so one Verilator build serves
them all; the build is cached across sessions): the shipped student with layer 1's idt moved
to fraction 12 (its words scaled by 2^-6, the same values), then per case one change that
pushes one stage past its format:

| case | change | sites it is built to fire |
|---|---|---|
| x | layer 1's idt words back at full size (idt x64): tanh·idt + shortcut leaves ±8 | x |
| s_table | the s̃ table (values and slopes) x4, clipped at 27 bits: the cubic overshoots the clip, s̃ leaves the G grid | s, g_range |
| tanh_slope | tanh table slopes x3: tanh' beyond 18 bits | tanh_slope |
| force | final layer x4096 (exponent -12) on a two-atom pencil: 192 images 2 Å away along x (a cell 0.5 mÅ thick along z), every pair force clipped the same way | force, pair_force |
| tables | G x3, h̃ x4, layer-0 columns x64, final layer x4096 (test_core_frames.saturating_model) on a 50-atom LGPS frame | h R G G_slope T D z g gT gT18 gR gG gs gh gu pair_force |
| compressed | the unchanged tables on a frame compressed to 0.7 | close_contact (and neighbour overflow) |

Each case asserts first that the simulator's counter of each of its sites is non-zero, then
that the RTL agrees bit for bit; `test_every_site_is_covered` fails when a site of sites.py is
not fired by some case whose RTL result was identical (a site added to the list and not to a
case here is a failure, not a gap). The core runs in the Verilator native harness
(fpga/verilator.py), the model memories read at time 0 through MEM_DIR, a symlink that is
pointed at each case's `--emit-mem` files before its simulator process starts.
"""

from __future__ import annotations

import copy
import fcntl
import os

import numpy as np
import pytest

from conftest import need

LANES, MAX_ATOMS, MAX_K = 16, 64, 192
LIM27 = (1 << 26) - 1

CASE_SITES = {
    "x": ("x",),
    "s_table": ("s", "g_range"),
    "tanh_slope": ("tanh_slope",),
    "force": ("force", "pair_force"),
    "tables": ("h", "R", "G", "G_slope", "T", "D", "z", "g", "gT", "gT18", "gR", "gG", "gs", "gh", "gu",
               "pair_force"),
    "compressed": ("close_contact",),
}


def base_model(model):
    """The shipped student with layer 1's idt at fraction f_idt - 6 (same values, coarser words):
    the fractions every case here shares, so that the x case fits the same build."""
    m = copy.deepcopy(model)
    layer = m.layers[1]
    assert layer.idt is not None and layer.f_idt >= 6
    layer.idt = np.floor(layer.idt / 64 + 0.5).astype(np.int64)
    layer.f_idt -= 6
    return m


def _hermite_fits(y, slope) -> bool:
    """SPEC §4: the quantizer's bound on a table's Hermite coefficients (a, b, 3a, 2b+3a in 27 bits)."""
    y, slope = np.asarray(y, np.int64), np.asarray(slope, np.int64)
    a = 2 * (y[..., :-1] - y[..., 1:]) + slope[..., :-1] + slope[..., 1:]
    b = 3 * (y[..., 1:] - y[..., :-1]) - 2 * slope[..., :-1] - slope[..., 1:]
    return all(np.abs(v).max() <= LIM27 for v in (a, b, 3 * a, 2 * b + 3 * a, slope))


def pencil_request(r: float = 2.0, k: int = MAX_K, cz: float = 0.0005):
    """Two atoms of type 3, r Å apart along x, each listing k periodic images of the other
    (shifts along a 0.5 mÅ cell vector in z): k nearly equal pairs whose forces add up."""
    from nvnmd.compute import encode_request

    coords = np.array([[10.0, 10.0, 10.0], [10.0 + r, 10.0, 10.0]])
    nlist = np.zeros((2, k), np.int64)
    nlist[0] = 1
    shifts = np.zeros((2, k, 3), np.int64)
    images = np.arange(k) - k // 2
    shifts[0, :, 2], shifts[1, :, 2] = images, -images
    return encode_request(coords, np.array([3, 3]), np.diag([20.0, 20.0, cz]), nlist, shifts)


def build_case(name, model, frames):
    """(model variant, request) of one case (see the table above)."""
    from test_core_frames import _request, saturating_model

    base = base_model(model)
    m = copy.deepcopy(base)
    if name == "x":
        m.layers[1].idt = model.layers[1].idt.copy()
        return m, _request(frames[5], model)
    if name == "s_table":
        m.u_tab = m.u_tab.copy()
        m.u_tab[:, 0:2] = np.clip(m.u_tab[:, 0:2] * 4, -LIM27, LIM27)
        assert all(_hermite_fits(m.u_tab[t, 0], m.u_tab[t, 1]) for t in range(m.ntypes))
        return m, _request(frames[5], model)
    if name == "tanh_slope":
        m.tanh_tab = m.tanh_tab.copy()
        m.tanh_tab[1] = m.tanh_tab[1] * 3
        assert _hermite_fits(m.tanh_tab[0], m.tanh_tab[1])
        return m, _request(frames[5], model)
    if name == "force":
        m.layers[-1].e = m.layers[-1].e - 12
        return m, pencil_request()
    if name == "tables":
        return saturating_model(base), _request(frames[5], model)
    if name == "compressed":
        return base, _request(frames[4], model, squeeze=0.7)
    raise KeyError(name)


class SwapCore:
    """One native nvq1_core build whose model memories are whatever MEM_DIR points at when a
    simulator process starts. MEM_DIR is a fixed symlink in the RTL cache (so the build is
    cached across sessions); a lock on it covers the window from pointing it to the process
    having read its memories ($readmemh at time 0, before the harness answers its first command)."""

    def __init__(self, base, root):
        from nvnmd.fpga.rtl.core import coreconfig as cc
        from nvnmd.fpga.sources import core_sources
        from nvnmd.fpga.verilator import build_native, cache_root

        self.cc, self.root = cc, root
        self.link = cache_root() / f"swap-mem-L{LANES}"
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.params = self._params(base)
        self.exe = build_native("nvq1_core", core_sources(), self.params)

    def _params(self, model):
        p = self.cc.core_params(model, self.link, LANES, MAX_ATOMS, MAX_K)
        # the symlink itself, not what it points at, goes into the build (core_params resolves paths)
        p["MEM_DIR"], p["BANK_DIR"] = f'"{self.link}"', f'"{self.link}/banks_L{LANES}"'
        return p

    def compute(self, name, model, request):
        """(ComputeResult, cycles) of `request` on the core with `model`'s memories."""
        from nvnmd.fpga.verilator import N_SCALARS, Harness
        from nvnmd.quantize.mem import emit_mem

        assert self._params(model) == self.params, "a case must keep the shape and fractions of the build"
        mem = self.root / f"mem_{name}"
        emit_mem(model.to_image(), mem)
        self.cc.write_banks(mem, model, LANES)
        with open(f"{self.link}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tmp = self.link.with_name(f"{self.link.name}.{os.getpid()}")
            if tmp.is_symlink():
                tmp.unlink()
            os.symlink(mem, tmp)
            os.replace(tmp, self.link)
            h = Harness(self.exe)
            h.reset()  # a round trip: the process is past time 0, its memories are read
        try:
            n, k = request.nlist.shape
            assert n <= MAX_ATOMS and k <= MAX_K
            h.write(0, 0, [n, k])
            h.write(1, 0, np.asarray(request.coords).reshape(-1))
            h.write(2, 0, np.asarray(request.types).reshape(-1))
            h.write(3, 0, np.asarray(request.cell).reshape(-1))
            h.write(4, 0, np.asarray(request.nlist).reshape(-1))
            h.write(5, 0, np.asarray(request.shifts).reshape(-1))
            h.run(max_cycles=200_000 + 50_000 * max(n, 1) * max(k, 1))
            blocks = {0: h.read(0, 0, N_SCALARS), 1: h.read(1, 0, n), 2: h.read(2, 0, 3 * n)}
        finally:
            h.close()
        return self.cc.read_result(lambda sel, addr: int(blocks[sel][addr]), n)


@pytest.fixture(scope="module")
def outcomes(quantized, tmp_path_factory):
    """name -> (simulator result, RTL result, RTL cycles, model, request), each case run once."""
    need("verilator", "g++", "make")
    model, frames = quantized
    core = SwapCore(base_model(model), tmp_path_factory.mktemp("core_saturation"))
    done = {}

    def run(name):
        if name not in done:
            from nvnmd.sim.nvq1.simulator import Nvq1Simulator

            m, request = build_case(name, model, frames)
            want = Nvq1Simulator(m).compute(request)
            # the simulator first: the case must fire what it is built to fire
            missing = [s for s in CASE_SITES[name] if not want.counters.get(s)]
            assert not missing, f"case {name}: the simulator does not fire {missing} ({want.counters})"
            got, cycles = core.compute(name, m, request)
            done[name] = (want, got, cycles, m, request)
        return done[name]

    return run


def _identical(want, got) -> bool:
    return (int(got.energy) == int(want.energy) and np.array_equal(got.atom_energy, want.atom_energy)
            and np.array_equal(got.forces, want.forces) and np.array_equal(got.virial, want.virial)
            and got.counters == want.counters and got.saturations == want.saturations
            and got.overflow_atoms == want.overflow_atoms)


@pytest.mark.parametrize("name", list(CASE_SITES))
def test_forced_saturation_case(outcomes, name):
    from nvnmd.fpga.rtl.core import cycles

    want, got, cyc, m, request = outcomes(name)
    assert int(got.energy) == int(want.energy)
    np.testing.assert_array_equal(got.atom_energy, want.atom_energy)
    np.testing.assert_array_equal(got.forces, want.forces)
    np.testing.assert_array_equal(got.virial, want.virial)
    assert got.counters == want.counters
    assert got.saturations == want.saturations and got.overflow_atoms == want.overflow_atoms
    assert all(got.counters[s] > 0 for s in CASE_SITES[name])
    assert cyc == cycles.frame_cycles(m, request, LANES)
    if name == "force":  # the clip is the format's end: ±(2^31 - 1) or -2^31 at FORCE's frac 19
        assert np.abs(got.forces).max() >= (1 << 31) - 1
    if name == "compressed":
        assert got.overflow_atoms > 0


def test_every_site_is_covered(outcomes):
    """Each site of sites.py fires in at least one case whose RTL result equals the simulator's."""
    from nvnmd.sim.nvq1.sites import SITES

    covered = {}
    for name in CASE_SITES:
        want, got, *_ = outcomes(name)
        if _identical(want, got):
            for site, count in got.counters.items():
                covered[site] = covered.get(site, 0) + count
    missing = [s for s in SITES if not covered.get(s)]
    assert not missing, f"sites fired by no RTL case: {missing}"
    print("site hits (sum over the RTL cases):", {s: covered[s] for s in SITES})


def test_every_site_has_a_case():
    """Without any RTL tool: a site added to sites.py needs a case here (and then the RTL run)."""
    from nvnmd.sim.nvq1.sites import SITES

    targeted = {s for sites in CASE_SITES.values() for s in sites}
    assert not set(SITES) - targeted, f"sites no case is built to fire: {sorted(set(SITES) - targeted)}"
    assert targeted <= set(SITES), f"cases name unknown sites: {sorted(targeted - set(SITES))}"
