"""nvnmd quantize / nvnmd test: the CLI end to end, every refusal path (one line on stderr,
exit 2, no traceback), image refusal, limits of the board, saturation on foreign ranges."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nvnmd.errors import FixedPointOverflowError, UnsupportedModelError


def nvnmd(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "nvnmd.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def one_line_error(proc, needle):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("nvnmd:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def serialized(student_path):
    from nvnmd.student import serialize_model_file

    return serialize_model_file(Path(student_path))


def _save_dp(data, path):
    from deepmd.dpmodel.utils.serialization import save_dp_model

    save_dp_model(str(path), data)
    return path


def test_quantize_cli_end_to_end(tmp_path, student_path, frames_dir):
    out = tmp_path / "m.nvq"
    proc = nvnmd("quantize", student_path, "-o", out, "--calib", frames_dir / "lgps50", "--report", tmp_path / "rep",
                 "--emit-mem", tmp_path / "mem")
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and "profile nvq1" in proc.stdout
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    acc = {r["against"]: r for r in rep["accuracy"]}
    assert acc["float student"]["force"]["rmse"] < 1e-3
    assert rep["datapath"]["saturations"] == 0 and rep["total_bits"] > 0
    assert (tmp_path / "rep" / "parity.png").stat().st_size > 10000
    assert (tmp_path / "rep" / "report.txt").read_text().count("BRAM36") == 1
    manifest = json.loads((tmp_path / "mem" / "manifest.json").read_text())
    g = next(m for m in manifest["memories"] if m["file"] == "g_tab.mem")
    lines = (tmp_path / "mem" / "g_tab.mem").read_text().splitlines()
    assert len(lines) == g["depth"] + 1 and all(len(ln) == 7 for ln in lines[1:])  # 27 bits -> 7 hex digits

    proc = nvnmd("test", out, "-s", frames_dir / "lgps50", "--reference", student_path, "--json", tmp_path / "t.json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "t.json").read_text())
    kinds = [r["against"] for r in res["results"]]
    assert kinds == ["labels", "float student", "student vs labels"] and res["results"][0]["frames"] == 5


def test_refusals_via_cli(tmp_path, serialized, student_path, frames_dir):
    # sel above the board's neighbour limit
    data = copy.deepcopy(serialized)
    desc = data["model"]["descriptor"]
    desc["sel"] = [32, 8, 8, 90]
    for key in ("davg", "dstd"):
        arr = np.asarray(desc["@variables"][key]).reshape(4, -1, 4)
        desc["@variables"][key] = np.repeat(arr[:, :1, :], 138, axis=1)
    big = _save_dp(data, tmp_path / "bigsel.dp")
    one_line_error(nvnmd("quantize", big, "-o", tmp_path / "x.nvq"), "above the board's 128 neighbours")
    # ranges that would saturate: a tiny dstd on x/y/z blows R̃ past ±16
    data = copy.deepcopy(serialized)
    for net in data["model"]["fitting"]["nets"]["networks"]:
        net["layers"][0]["resnet"] = False  # what TF evaluates (see nvnmd.student._apply_tf_fitting_semantics)
        net["layers"][0]["use_timestep"] = False
        net["layers"][0]["@variables"]["idt"] = None
    var = data["model"]["descriptor"]["@variables"]
    dstd = np.asarray(var["dstd"]).reshape(4, -1, 4).copy()
    dstd[:, :, 1:] = 0.004
    var["dstd"] = dstd.reshape(np.asarray(var["dstd"]).shape)
    small = _save_dp(data, tmp_path / "tiny.dp")
    one_line_error(nvnmd("quantize", small, "-o", tmp_path / "x.nvq", "--calib", frames_dir / "lgps50"), "R̃ format")
    # options and files
    one_line_error(nvnmd("quantize", student_path, "-o", tmp_path / "x.nvq", "--trust-pickle"), "--trust-pickle")
    one_line_error(nvnmd("quantize", "-o", tmp_path / "x.nvq"), "student model is required")
    one_line_error(nvnmd("quantize", tmp_path / "none.pb", "-o", tmp_path / "x.nvq"), "no such file")
    bad = tmp_path / "bad.nvq"
    bad.write_bytes(b"NVNMDIMG" + b"\0" * 100)
    one_line_error(nvnmd("test", bad, "-s", frames_dir / "lgps50"), "checksum")
    one_line_error(nvnmd("quantize", student_path, "-o", tmp_path / "x.nvq", "--calib", tmp_path), "no deepmd/npy")
    assert not (tmp_path / "x.nvq").exists()


def test_from_nvnmd_option(tmp_path):
    import importlib.util

    proc = nvnmd("quantize", "--from-nvnmd", tmp_path / "nothing", "-o", tmp_path / "x.nvq")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    if importlib.util.find_spec("nvnmd.sim.nvnmd_v0.importer") is None:
        one_line_error(proc, "not part of this build")


def test_board_limits(student):
    from nvnmd.quantize.build import check_limits

    check_limits(student)
    shortcut = copy.deepcopy(student)
    first = shortcut.fitting[0].layers[0]
    width = first.w.shape[0]  # a .dp student whose first layer is as wide as D, with a shortcut from D
    first.w, first.b, first.resnet = np.zeros((width, width)), np.zeros(width), True
    with pytest.raises(UnsupportedModelError, match="first fitting layer"):
        check_limits(shortcut)

    many = copy.copy(student)
    many.type_map = [f"X{k}" for k in range(9)]
    with pytest.raises(UnsupportedModelError, match="at most 8"):
        check_limits(many)
    far = copy.copy(student)
    far.rcut = 9.0
    with pytest.raises(UnsupportedModelError, match="rcut"):
        check_limits(far)
    ok = copy.copy(student)
    ok.type_map = [f"X{k}" for k in range(6)]  # six species fit
    ok.sel = [20] * 6
    check_limits(ok)


def test_close_pairs_beyond_format_refused(student, frames_dir):
    from nvnmd.quantize.build import quantize
    from nvnmd.quantize.data import load_frames

    frames = load_frames(frames_dir / "lgps50", student.type_map)[:1]
    frames[0].coord[1] = frames[0].coord[0] + np.array([0.9, 0.0, 0.0])  # a 0.9 Å pair
    with pytest.raises(FixedPointOverflowError, match="R̃ format"):
        quantize(student, frames)


def test_image_round_trip_and_refusals(student, frames_dir):
    from nvnmd.errors import CorruptFileError
    from nvnmd.image import Image
    from nvnmd.quantize.build import quantize
    from nvnmd.quantize.data import load_frames
    from nvnmd.sim.nvq1.model import Nvq1Model

    model, _ = quantize(student, load_frames(frames_dir / "lgps50", student.type_map))
    raw = model.to_image().to_bytes()
    again = Nvq1Model.from_image(Image.from_bytes(raw))
    assert again.to_image().to_bytes() == raw
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x10
    with pytest.raises(CorruptFileError, match="checksum"):
        Image.from_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError):
        Image.from_bytes(raw[: len(raw) - 100])
    img = Image.from_bytes(raw)
    img.meta["fixed"]["F_S"] = 21  # a board with other fixed formats: valid container, refused model
    with pytest.raises(CorruptFileError, match="fixed formats"):
        Nvq1Model.from_image(img)
    img = Image.from_bytes(raw)
    del img.sections["g_tab"]
    with pytest.raises(CorruptFileError, match="malformed"):
        Nvq1Model.from_image(img)
    img = Image.from_bytes(raw)
    img.sections["fit0_w"] = img.sections["fit0_w"] * 4
    with pytest.raises(CorruptFileError, match="18 bits"):
        Nvq1Model.from_image(img)


def _cli(capsys, *args):
    """nvnmd's CLI in this process (same code path as the console script, minus process start)."""
    from nvnmd.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys, needle, *args):
    code, _, err = _cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nvnmd:") and needle in lines[0], err
    return lines[0]


def _dpmodel(path, descriptor, type_map):
    """A freshly initialised deepmd-kit model (its dpmodel backend) saved as .dp."""
    from deepmd.dpmodel.model.model import get_model

    cfg = {"type_map": type_map, "descriptor": dict(descriptor, seed=1),
           "fitting_net": {"neuron": [16, 16], "resnet_dt": True, "seed": 1}}
    return _save_dp({"model": get_model(cfg).serialize(), "backend": "dpmodel", "model_def_script": cfg}, path)


def test_more_refusals_in_process(tmp_path, capsys, student_path, frames_dir):
    """Unsupported descriptor (a real DPA-1 model), more species than the board holds (refused
    before any frame is read), unknown element in the data, a truncated image, a frame denser
    than the board's neighbour rows (named in the message), a reference model whose type map
    lacks the image's elements, a file dpdata cannot read, output paths that cannot be written."""
    import dpdata

    se_a = {"type": "se_e2_a", "sel": [10] * 9, "rcut": 6.0, "rcut_smth": 0.5, "neuron": [8, 16], "axis_neuron": 4}
    dpa1 = _dpmodel(tmp_path / "dpa1.dp", {"type": "se_atten", "sel": 40, "rcut": 6.0, "rcut_smth": 0.5,
                                           "neuron": [8, 16], "axis_neuron": 4, "attn_layer": 0},
                    ["Li", "Ge", "P", "S"])
    nine = _dpmodel(tmp_path / "nine.dp", se_a, ["Li", "Ge", "P", "O", "Cl", "Br", "I", "Na", "K"])  # no S
    _refused(capsys, "descriptor 'dpa1' is not supported", "quantize", dpa1, "-o", tmp_path / "x.nvq")
    _refused(capsys, "9 species, the board holds at most 8", "quantize", nine, "-o", tmp_path / "x.nvq",
             "--calib", tmp_path / "absent")  # the model is judged first: the missing data is never read
    (tmp_path / "afile").write_text("")
    _refused(capsys, "--emit-mem", "quantize", student_path, "-o", tmp_path / "x.nvq", "--emit-mem", tmp_path / "afile")
    _refused(capsys, "--report", "quantize", student_path, "-o", tmp_path / "x.nvq", "--report", tmp_path / "afile")
    _refused(capsys, "is a directory", "quantize", student_path, "-o", tmp_path)
    assert not (tmp_path / "x.nvq").exists()

    out = tmp_path / "m.nvq"
    assert _cli(capsys, "quantize", student_path, "-o", out, "--calib", frames_dir / "lgps50")[0] == 0
    system = dpdata.LabeledSystem(str(frames_dir / "lgps50"), fmt="deepmd/npy")
    foreign = system.sub_system([0])
    foreign.data["atom_names"] = ["Li", "Ge", "P", "Se"]
    foreign.to("deepmd/npy", str(tmp_path / "se"))
    _refused(capsys, "elements ['Se'] are not in the model's type map", "test", out, "-s", tmp_path / "se")
    raw = out.read_bytes()
    (tmp_path / "cut.nvq").write_bytes(raw[: len(raw) // 2])
    _refused(capsys, "truncated or corrupted", "test", tmp_path / "cut.nvq", "-s", frames_dir / "lgps50")
    _refused(capsys, "elements ['S'] of the image are not in this model's type map",
             "test", out, "-s", frames_dir / "lgps50", "--reference", nine)
    dense = system.sub_system([0])
    dense.data["coords"] *= 0.5
    dense.data["cells"] *= 0.5  # rows wider than the board's neighbour slots
    dense.to("deepmd/npy", str(tmp_path / "dense"))
    _refused(capsys, "--json", "test", out, "-s", frames_dir / "lgps50", "--json", tmp_path)
    _refused(capsys, "(frame 0 of 1): neighbour list rows of", "test", out, "-s", tmp_path / "dense")
    (tmp_path / "junk.extxyz").write_text("not a structure\n")
    _refused(capsys, "dpdata cannot read it as extxyz", "test", out, "-s", tmp_path / "junk.extxyz")


def test_test_reads_multi_frame_extxyz(tmp_path, capsys, student_path, frames_dir):
    """`nvnmd test` on a non-npy format: every frame of an extxyz file (dpdata's single-system
    reader would keep only the first), the same figures as the deepmd/npy original."""
    import dpdata

    src = frames_dir / "lgps50"
    system = dpdata.LabeledSystem(str(src), fmt="deepmd/npy")
    system.to("extxyz", str(tmp_path / "frames.extxyz"))
    out = tmp_path / "m.nvq"
    assert _cli(capsys, "quantize", student_path, "-o", out, "--calib", src)[0] == 0
    runs = {}
    for name, data in (("npy", src), ("xyz", tmp_path / "frames.extxyz")):
        code, _, err = _cli(capsys, "test", out, "-s", data, "--json", tmp_path / f"{name}.json")
        assert code == 0, err
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())["results"][0]
    assert runs["xyz"]["frames"] == runs["npy"]["frames"] == system.get_nframes() > 1
    # extxyz keeps ~13 digits (coordinates move by ~5e-11 Å), but a component that close to a
    # step of the board's 2^-20 Å coordinate grid rounds the other way, and the datapath's
    # roundings pass that on as a few µeV/atom (the size of the quantization error itself);
    # reading fewer or other frames would move these figures by far more than 1e-3
    for key in ("energy_per_atom", "force", "virial_per_atom"):
        assert runs["xyz"][key]["rmse"] == pytest.approx(runs["npy"][key]["rmse"], rel=1e-3)


def test_a_narrow_centre_type_ends_its_rows_inside_the_guard(student, frames_dir):
    """A centre type whose dstd is too small for the ±16 format near the closest pair (a scarce
    halide of a mixed student) keeps the other rows as they were and ends its own rows at its
    mappable r, constant below it, when that is inside its element's closest training pair (the
    guard's wall acts there); a calibration pair of that element closer than that is refused."""
    import copy

    from nvnmd.quantize.build import _closest_mappable, quantize
    from nvnmd.quantize.data import load_frames

    frames = load_frames(frames_dir / "lgps50", student.type_map)[:2]
    base, _ = quantize(student, frames)
    narrow = copy.deepcopy(student)
    g = student.type_map.index("Ge")
    narrow.dstd = narrow.dstd.copy()
    narrow.dstd[g, :] /= 1.5
    r_g = float(_closest_mappable(narrow)[g])
    d_g = min(v for k, v in narrow.closest_pairs.items() if "Ge" in k.split("-"))
    assert r_g > 0.95 * min(v for v in narrow.closest_pairs.values()) and r_g <= 0.95 * d_g, (r_g, d_g)
    model, info = quantize(narrow, frames)
    assert set(info["clamped_types"]) == {"Ge"} and info["clamped_types"]["Ge"] == pytest.approx(r_g)
    others = [t for t in range(student.ntypes) if t != g]
    np.testing.assert_array_equal(model.u_tab[others], base.u_tab[others])
    k_g = int(np.ceil(r_g**2 * 8))
    rows = model.u_tab[g]  # [s, slope s, h, slope h] per grid point
    assert np.all(rows[:, base.k_lo:k_g] == rows[:, k_g:k_g + 1] * np.array([1, 0, 1, 0])[:, None])
    assert np.any(rows[1, k_g:] != 0)
    close = load_frames(frames_dir / "lgps50", student.type_map)[:1]
    i = int(np.nonzero(close[0].types == g)[0][0])
    j = int(np.nonzero(close[0].types == student.type_map.index("S"))[0][0])
    close[0].coord[j] = close[0].coord[i] + np.array([0.97 * r_g, 0.0, 0.0])
    with pytest.raises(FixedPointOverflowError, match="Ge-centred"):
        quantize(narrow, close)


def _pair_embedding_dp(serialized, path, transpose=False):
    """The shipped student turned into a type_one_side=false model (.dp): one embedding net per (centre,
    neighbour) pair, each the neighbour's net with its last layer scaled by a factor of the pair, so no
    two nets agree and (ti, tj) differs from (tj, ti). deepmd-kit flattens the pair as ti + tj * ntypes;
    `transpose` writes them the other way round (what a loader that misreads the order would see)."""
    data = copy.deepcopy(serialized)
    emb = data["model"]["descriptor"]["embeddings"]
    nt = emb["ntypes"]
    nets = []
    for tj in range(nt):
        for ti in range(nt):
            a, b = (tj, ti) if transpose else (ti, tj)
            net = copy.deepcopy(emb["networks"][b])
            last = net["layers"][-1]["@variables"]
            last["w"] = np.asarray(last["w"]) * (1.0 + 0.25 * a - 0.1 * b)
            nets.append(net)
    emb.update(ndim=2, networks=nets)
    data["model"]["descriptor"]["type_one_side"] = False
    for net in data["model"]["fitting"]["nets"]["networks"]:  # TF never applies these on layer 0
        layer0 = net["layers"][0]
        layer0.update(resnet=False, use_timestep=False)
        layer0["@variables"]["idt"] = None
    return _save_dp({k: data[k] for k in ("model", "model_def_script")} | {"backend": "dpmodel"}, path)


def test_pair_embedding_student_computes_what_deeppot_computes(tmp_path, serialized, frames_dir):
    """type_one_side=false (nt² embedding tables, fpga/SPEC.md §5.4): the image's energies agree with
    deepmd-kit's on the same model file, its forces with deepmd-kit's energy gradient (finite
    differences: the numpy backend has no forces), reference, fast (C and numpy) and tf64 kernels
    bit-identical; an image of the nets in the transposed order is far off, and refused by the check
    that `nvnmd quantize` and the distill pipeline run before writing an image."""
    from deepmd.infer import DeepPot

    from nvnmd.backends.sim import SimBackend
    from nvnmd.image import Image
    from nvnmd.quantize.build import quantize
    from nvnmd.quantize.data import load_frames
    from nvnmd.quantize.evaluate import check_against_float, compare, run_deeppot, run_image
    from nvnmd.sim.nvq1 import Nvq1Simulator
    from nvnmd.sim.nvq1.fast import FastKernel
    from nvnmd.student import load_student

    path = _pair_embedding_dp(serialized, tmp_path / "pair.dp")
    student = load_student(path)
    assert not student.type_one_side
    frames = load_frames(frames_dir / "lgps50", student.type_map)[:3]
    model, _ = quantize(student, frames)
    assert model.g_tab.shape[0] == student.ntypes ** 2
    sim = SimBackend(Image.from_bytes(model.to_image().to_bytes()))
    pred, stats = run_image(sim, frames)
    assert stats["saturations"] == 0
    res = compare(pred, run_deeppot(path, frames, student.type_map), frames, "float student")
    assert res["energy_per_atom"]["rmse"] <= 2e-5, res
    check_against_float(res, path)

    frame, h = frames[0], 1e-3
    dp = DeepPot(str(path))
    for atom in (0, int(np.nonzero(frame.types == student.type_map.index("Ge"))[0][0])):
        for axis in range(3):
            e = []
            for sign in (1, -1):
                coord = frame.coord.copy()
                coord[atom, axis] += sign * h
                e.append(float(dp.eval(coord.reshape(1, -1), frame.cell.reshape(1, 9), frame.types)[0][0, 0]))
            assert pred[0][1][atom, axis] == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=1e-3)

    from nvnmd.compute import encode_request
    from nvnmd.neighbors import build_neighbor_list

    nl = build_neighbor_list(frame.coord, frame.cell, model.rcut + 1.0)
    req = encode_request(frame.coord, frame.types, frame.cell, nl.nlist, nl.shifts)
    fast = sim.sim.compute(req)
    for other in (sim.sim.compute(req, kernel="reference"), Nvq1Simulator(model, kernel="tf64").compute(req)):
        assert other.energy == fast.energy
        np.testing.assert_array_equal(other.forces, fast.forces)
        np.testing.assert_array_equal(other.virial, fast.virial)
    numpy_only = FastKernel(model, use_c=False).compute(req.coords, req.types, req.cell, req.nlist, req.shifts)
    np.testing.assert_array_equal(numpy_only[1], fast.forces)

    wrong = load_student(_pair_embedding_dp(serialized, tmp_path / "transposed.dp", transpose=True))
    bad, _ = quantize(wrong, frames)
    bad_pred, _ = run_image(SimBackend(Image.from_bytes(bad.to_image().to_bytes())), frames)
    off = compare(bad_pred, run_deeppot(path, frames, student.type_map), frames, "float student")
    assert off["energy_per_atom"]["rmse"] > 1e-3, off
    with pytest.raises(UnsupportedModelError, match="not read as deepmd-kit runs it"):
        check_against_float(off, path)
