"""nvq1 SPEC stages (sim/nvq1/stages.py) one at a time against the reference loops (ref.py).

Each stage gets the reference's own inputs for that step (from `compute_reference(trace=...)`)
and must return the reference's outputs bit for bit at every in-range slot, and exactly the
reference's counts at the counter sites it owns. Run on a 50-atom LGPS frame with a Verlet
skin, for the quantized student and for a variant pushed into saturation at many sites."""

import dataclasses

import numpy as np
import pytest

from nvnmd.compute import frame_request

# the counter sites (SPEC §2.2) each stage owns; together exactly sites.SITES
STAGE_SITES = {
    "radial_tables": {"close_contact", "s", "h"},
    "embedding": {"R", "g_range", "G", "G_slope"},
    "descriptor": {"T", "D"},
    "fitting_forward": {"z", "tanh_slope", "x"},
    "fitting_backward": {"g"},
    "descriptor_backward": {"gT", "gT18", "gR", "gG", "gs", "gh", "gu", "pair_force"},
    "forces_virial": {"force"},
}


def _hot(model):
    """The saturating variants of test_sim_nvq1 in one: fractions pushed up and one layer's
    biases scaled (forward and backward clips), the G grid's origin 3 segments up and G' read
    3 bits coarser (slots leave the G grid, G' clips)."""
    up = 7
    frac = {k: v + (up if k in ("D", "gT", "gR", "gG", "gs", "gh", "gu", "p") else 0) for k, v in model.frac.items()}
    frac["Gq"] -= 3
    layers = [dataclasses.replace(layer, b=layer.b * 64) if k == 1 else layer for k, layer in enumerate(model.layers)]
    return dataclasses.replace(model, frac=frac, f_g=[v + up for v in model.f_g], layers=layers,
                               s0=model.s0 + (3 << 17))


@pytest.fixture(scope="module", params=["student", "saturating"])
def case(request, quantized):
    """(Stages, kernel args, reference result, per-atom trace, in-range mask, name) for one model."""
    from nvnmd.sim.nvq1.ref import compute_reference
    from nvnmd.sim.nvq1.stages import Stages

    model = quantized[0] if request.param == "student" else _hot(quantized[0])
    frame = quantized[1][3]  # 50 atoms
    args = frame_request(frame.coord, frame.types, frame.cell, model.rcut + 1.0)  # with a skin
    trace = []
    ref = compute_reference(model, *args, trace=trace)
    n, K = args[3].shape
    inr = np.zeros((n, K), dtype=bool)
    for i, tr in enumerate(trace):
        inr[i, list(tr["slots"])] = True
    return Stages(model), args, ref, trace, inr, request.param


def _slots(trace, inr, key, source="slots"):
    """Per-slot trace values in the stages' [n, K, ...] layout (0 outside inr)."""
    n, K = inr.shape
    first = next(d[key] for tr in trace for d in tr[source].values())
    out = np.zeros((n, K) + np.shape(first), dtype=np.int64)
    for i, tr in enumerate(trace):
        for k, d in tr[source].items():
            out[i, k] = d[key]
    return out


def _atoms(trace, key, layer=None):
    return np.array([tr[key] if layer is None else tr[key][layer] for tr in trace], dtype=np.int64)


def _own(counts_ref, stage):
    return {site: n for site, n in counts_ref.items() if site in STAGE_SITES[stage]}


def _same(got, want, inr=None):
    got = np.asarray(got)
    if inr is not None:
        got, want = got[inr], np.asarray(want)[inr]
    np.testing.assert_array_equal(got.astype(np.int64), want)


def test_stage_sites_cover_every_counter():
    from nvnmd.sim.nvq1.sites import SITES

    owned = [s for sites in STAGE_SITES.values() for s in sites]
    assert sorted(owned) == sorted(SITES) and len(owned) == len(set(owned))


def test_neighbours(case):
    st, args, ref, trace, inr, name = case
    nb = st.neighbours(*args)
    np.testing.assert_array_equal(nb.inr, inr)
    _same(nb.r, _slots(trace, inr, "r"), inr)
    _same(nb.u, _slots(trace, inr, "u"), inr)
    _same(nb.j, _slots(trace, inr, "j"), inr)
    _same(nb.n_in, _atoms(trace, "n_in"))
    assert int(np.count_nonzero(nb.overflow)) == ref[4]
    assert nb.ints()["r"].dtype == np.int64 and nb.counts == {}


def test_radial_tables(case):
    st, args, ref, trace, inr, name = case
    rad = st.radial_tables(_slots(trace, inr, "u"), args[1], inr)
    for key in ("s", "qs", "h", "qh"):
        _same(getattr(rad, key), _slots(trace, inr, key), inr)
    assert rad.counts == _own(ref[3], "radial_tables")


def test_embedding(case):
    st, args, ref, trace, inr, name = case
    types = np.asarray(args[1])
    tj = types[_slots(trace, inr, "j")]
    emb = st.embedding(_slots(trace, inr, "s"), _slots(trace, inr, "h"), _slots(trace, inr, "r"), types, tj, inr)
    for key in ("R", "G", "Gq"):
        _same(getattr(emb, key), _slots(trace, inr, key), inr)
    assert emb.counts == _own(ref[3], "embedding")


def test_descriptor(case):
    st, args, ref, trace, inr, name = case
    dsc = st.descriptor(_slots(trace, inr, "R"), _slots(trace, inr, "G"), args[1], _atoms(trace, "n_in"))
    _same(dsc.T, _atoms(trace, "T"))
    _same(dsc.D, _atoms(trace, "D"))
    assert dsc.counts == _own(ref[3], "descriptor")


def test_fitting_forward(case):
    st, args, ref, trace, inr, name = case
    fwd = st.fitting_forward(_atoms(trace, "D"), args[1])
    _same(fwd.energy, ref[0])
    for layer in range(len(fwd.z)):
        for key in ("z", "x", "dtanh"):
            _same(getattr(fwd, key)[layer], _atoms(trace, key, layer))
    assert fwd.counts == _own(ref[3], "fitting_forward")


def test_fitting_backward(case):
    st, args, ref, trace, inr, name = case
    nl = len(trace[0]["dtanh"])
    bwd = st.fitting_backward([_atoms(trace, "dtanh", layer) for layer in range(nl)], args[1])
    _same(bwd.gD, _atoms(trace, "gD"))
    assert bwd.counts == _own(ref[3], "fitting_backward")


def test_descriptor_backward(case):
    st, args, ref, trace, inr, name = case
    per_slot = {key: _slots(trace, inr, key) for key in ("R", "G", "Gq", "r", "h", "qs", "qh")}
    pg = st.descriptor_backward(_atoms(trace, "gD"), _atoms(trace, "T"), per_slot["R"], per_slot["G"],
                                per_slot["Gq"], per_slot["r"], per_slot["h"], per_slot["qs"], per_slot["qh"], inr)
    _same(pg.gT, _atoms(trace, "gT"))
    _same(pg.gTs, _atoms(trace, "gTs"))
    for key in ("gR", "gG", "gs", "gh", "gu", "f"):
        _same(getattr(pg, key), _slots(trace, inr, key, source="pair_grads"), inr)
    assert pg.counts == _own(ref[3], "descriptor_backward")


def test_forces_virial(case):
    st, args, ref, trace, inr, name = case
    out = st.forces_virial(_slots(trace, inr, "f", source="pair_grads"), _slots(trace, inr, "r"),
                           _slots(trace, inr, "j"))
    _same(out.forces, ref[1])
    _same(out.virial, ref[2])
    assert out.counts == _own(ref[3], "forces_virial")


def test_stages_in_order_are_the_reference(case):
    st, args, ref, trace, inr, name = case
    got = st.evaluate(*args)
    for a, b in zip(got[:3], ref[:3]):
        _same(a, b)
    assert got[3] == ref[3] and got[4] == ref[4]
    if name == "saturating":  # the per-stage counter checks bite: clips in most stages
        assert sum(bool(_own(ref[3], stage)) for stage in STAGE_SITES) >= 5, ref[3]
