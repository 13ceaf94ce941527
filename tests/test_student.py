"""Student loading: our loader agrees with deepmd-kit's DeepPot; unsupported kinds are refused; the
training script's learning-curve join survives a resumed stage."""

import copy
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nvnmd.errors import CorruptFileError, UnsupportedModelError
from nvnmd.student import Student, load_student, student_from_deepmd, serialize_model_file


def test_loader_agrees_with_deeppot(student, student_path):
    from deepmd.infer import DeepPot

    dp = DeepPot(str(student_path))
    assert student.type_map == dp.get_type_map() == ["Li", "Ge", "P", "S"]
    assert student.rcut == pytest.approx(dp.get_rcut()) == 6.0
    assert student.sel == [32, 8, 8, 40]
    assert student.nnei <= 128
    assert student.neuron == [8, 16, 32] and student.axis_neuron == 8 and student.type_one_side
    assert student.fitting_neuron == [256, 256, 256]  # the board's widest (descriptor 32 x 8 = 256 too)


def test_serialize_roundtrip(student):
    again = Student.deserialize(student.serialize())
    assert again.type_map == student.type_map and again.sel == student.sel
    np.testing.assert_array_equal(again.davg, student.davg)
    x = np.linspace(-1, 8, 7)[:, None]
    np.testing.assert_array_equal(again.embedding[1][2].forward(x), student.embedding[1][2].forward(x))


@pytest.fixture(scope="module")
def serialized(student_path):
    from pathlib import Path

    return serialize_model_file(Path(student_path))


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda m: m["descriptor"].update(type="se_atten"), "descriptor 'se_atten' is not supported"),
        (lambda m: m["descriptor"].update(type="dpa2"), "descriptor 'dpa2' is not supported"),
        (lambda m: m["descriptor"].update(type="hybrid"), "descriptor 'hybrid' is not supported"),
        (lambda m: m.update(type="zbl"), "model type 'zbl' is not supported"),
        (lambda m: m["fitting"].update(type="dipole"), "fitting 'dipole' is not supported"),
        (lambda m: m["fitting"].update(numb_fparam=2), "fparam"),
    ],
)
def test_unsupported_kinds_refused(serialized, edit, needle):
    data = copy.deepcopy(serialized)
    edit(data["model"])
    with pytest.raises(UnsupportedModelError) as err:
        student_from_deepmd(data, source="m.pb")
    assert needle in str(err.value) and "supported: deepmd-kit se_e2_a" in str(err.value)


def test_corrupt_and_foreign_files(tmp_path, student_path):
    trunc = tmp_path / "trunc.pb"
    trunc.write_bytes(student_path.read_bytes()[:5000])
    with pytest.raises(CorruptFileError, match="deepmd-kit cannot read"):
        load_student(trunc)
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty"):
        load_student(empty)
    fake_dp = tmp_path / "x.dp"
    fake_dp.write_text("hello")
    with pytest.raises(CorruptFileError, match="HDF5"):
        load_student(fake_dp)
    with pytest.raises(UnsupportedModelError, match="unsupported model file type"):
        load_student(tmp_path)


def test_cli_inspect_and_one_line_errors(tmp_path, student_path):
    ok = subprocess.run([sys.executable, "-m", "nvnmd.cli", "inspect", str(student_path)], capture_output=True, text=True)
    assert ok.returncode == 0 and "sel          [32, 8, 8, 40]" in ok.stdout
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x00garbage" * 10)
    res = subprocess.run([sys.executable, "-m", "nvnmd.cli", "inspect", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("nvnmd: error:")
    assert "Traceback" not in res.stderr
    missing = subprocess.run([sys.executable, "-m", "nvnmd.cli", "inspect", str(tmp_path / "nope.pb")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_native_dp_file_loads_like_the_pb(tmp_path, student, student_path):
    """A .dp written by deepmd-kit's own converter reads into the same description."""
    import os

    out = tmp_path / "student.dp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dp_exe = os.path.join(os.path.dirname(sys.executable), "dp")
    subprocess.run([dp_exe, "convert-backend", str(student_path), str(out)], check=True, capture_output=True, env=env,
                   cwd=tmp_path)
    dp = load_student(out)
    assert dp.type_map == student.type_map and dp.sel == student.sel and dp.rcut == student.rcut
    np.testing.assert_array_equal(dp.davg, student.davg)
    np.testing.assert_array_equal(dp.dstd, student.dstd)
    np.testing.assert_array_equal(dp.fitting[2].layers[1].w, student.fitting[2].layers[1].w)
    np.testing.assert_array_equal(dp.embedding[0][3].layers[2].w, student.embedding[0][3].layers[2].w)


def test_pth_needs_pytorch(tmp_path):
    fake = tmp_path / "m.pth"
    fake.write_bytes(b"PK\x03\x04 not really a torch file")
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(UnsupportedModelError, match="needs PyTorch"):
            load_student(fake)
    else:  # with torch: a clear refusal, whether deepmd-kit's PyTorch backend loads (corrupt file) or not
        with pytest.raises((CorruptFileError, UnsupportedModelError)):
            load_student(fake)


def _student_script(name: str):
    """A module of the student/ training scripts (not part of the package)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "student"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def test_lcurve_join_continues_steps_and_drops_rows_rerun_after_a_resume(tmp_path):
    join_lcurves = _student_script("join_lcurves").main
    header = "#  step  rmse_e_val  rmse_f_val"
    # stage "run" was cut after its step-20 checkpoint and resumed: steps 20 and 30 ran twice
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "lcurve.out").write_text(
        "\n".join([header, "0 9 90", "10 8 80", "20 7 70", "30 6.5 65", "20 7.1 71", "30 6 60", "40 5 50"]) + "\n")
    (tmp_path / "tune").mkdir()
    (tmp_path / "tune" / "lcurve.out").write_text("\n".join([header, "# comment", "0 5 50", "10 4 40"]) + "\n")
    out = tmp_path / "all.out"
    join_lcurves(str(out), [str(tmp_path / "run"), str(tmp_path / "tune")])
    lines = out.read_text().splitlines()
    assert lines[0] == header
    assert [line.split() for line in lines[1:]] == [
        ["0", "9", "90"], ["10", "8", "80"], ["20", "7.1", "71"], ["30", "6", "60"], ["40", "5", "50"],
        ["40", "5", "50"], ["50", "4", "40"]]


def test_bootstrap_interval_pools_groups_and_widens_with_their_spread():
    ci = _student_script("evaluate").bootstrap_rmse_ci95
    # identical groups: every draw pools to the same RMSE, so the interval is a point
    same = ci(np.full(6, 8.0), np.full(6, 2.0), np.arange(6))
    np.testing.assert_allclose(same, [2.0, 2.0])
    # two frames of one group move together: resampling groups gives the pooled RMSE of
    # whole groups only (sqrt((1+1)/2)=1 or sqrt((9+9)/2)=3), never a mix within a group
    sq, n = np.array([1.0, 1.0, 9.0, 9.0]), np.ones(4)
    by_group = ci(sq, n, np.array([0, 0, 1, 1]))
    by_frame = ci(sq, n, np.arange(4))
    assert 1.0 <= by_group[0] < np.sqrt(5.0) < by_group[1] <= 3.0
    assert by_frame[0] >= by_group[0] and by_frame[1] <= by_group[1]


@pytest.mark.parametrize("growth", ["axis", "embedding", "fitting"])
def test_widened_student_computes_the_same_energies_and_forces(frames_dir, tmp_path, growth):
    """student/widen.py: the grown network starts training exactly where the narrow one stopped.
    Grown from the shipped student's stage-5 parent (axis_neuron 8, fitting 128 wide), kept in
    student/candidates/."""
    import dpdata
    from deepmd.infer import DeepPot

    student_path = Path(__file__).resolve().parents[1] / "student" / "candidates" / "lgps_student_axis8.pb"
    serialized = serialize_model_file(student_path)
    widen = _student_script("widen")
    desc = serialized["model"]["descriptor"]
    if growth == "axis":
        grown = widen.widen_axis(serialized, 2 * desc["axis_neuron"])
    elif growth == "embedding":
        grown = widen.double_embedding(serialized)
    else:
        grown = widen.widen_fitting(serialized, 256)
    out = tmp_path / "grown.pb"
    widen.write_trainable(grown, str(out))

    wide = load_student(out)
    if growth == "axis":
        assert wide.axis_neuron == 2 * desc["axis_neuron"] and wide.neuron == desc["neuron"]
    elif growth == "embedding":
        assert wide.neuron == [2 * n for n in desc["neuron"]] and wide.axis_neuron == desc["axis_neuron"]
    else:
        assert wide.fitting_neuron == [256] * 3 and wide.neuron == desc["neuron"]
        # the new units carry a signal (so they train) into zero outgoing weights
        assert np.abs(wide.fitting[0].layers[1].w[128:, 128:]).min() > 0
        assert not wide.fitting[0].layers[1].w[128:, :128].any() and not wide.fitting[0].layers[-1].w[128:].any()
    s = dpdata.LabeledSystem(str(frames_dir / "lgps50"), fmt="deepmd/npy")[:2]
    args = (s["coords"].reshape(2, -1), s["cells"].reshape(2, -1), s["atom_types"])
    e0, f0 = DeepPot(str(student_path)).eval(*args)[:2]
    e1, f1 = DeepPot(str(out)).eval(*args)[:2]
    np.testing.assert_allclose(e1, e0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-9)
