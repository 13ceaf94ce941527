"""Runs and their outputs (issue 16): a run's identity, refusals before any work, messages.

Each case here went wrong before: a resume with other settings was accepted, a directory
holding a run was overwritten, a cached model.nvq stood in for another --model, bad options
gave tracebacks or NaN trajectories, output errors came after the work and named temp files,
outputs were 0600. The commands run in process through `nvnmd.cli.main` on the shipped
50-atom cell, a few steps each.
"""

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from nvnmd.cli import main

UNWRITABLE = "/sys/nvnmd-test-out"  # read-only for every user, root included


@pytest.fixture(scope="module")
def image(quantized, tmp_path_factory):
    from nvnmd.quantize.student_image import student_image

    path = tmp_path_factory.mktemp("img") / "def.nvq"
    student_image().write(path)
    return path


def nvnmd(capsys, *argv):
    """(exit code, stdout, stderr) of one in-process `nvnmd` command."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def md_args(image, out, *extra, steps=4):
    return ["md", "--backend", "sim", "--image", image, "--supercell", "1,1,1", "--steps", steps,
            "--checkpoint-every", 2, "--traj-every", 2, "--quiet", "-o", out, *extra]


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("nvnmd: error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, (f, err)


@pytest.fixture
def base_run(image, tmp_path, capsys):
    out = tmp_path / "base"
    code, _, err = nvnmd(capsys, *md_args(image, out))
    assert code == 0, err
    return out


# --- bad input: one line, exit 2, before any work ------------------------------------------

BAD_MD_INPUT = {
    "T 0": (["-T", "0"], "-T must be a temperature above 0 K, got 0"),
    "T negative": (["-T", "-100"], "got -100"),
    "traj-every 0": (["--traj-every", "0"], "--traj-every and --checkpoint-every must be ≥ 1"),
    "checkpoint-every 0": (["--checkpoint-every", "0"], "--traj-every and --checkpoint-every must be ≥ 1"),
    "supercell letters": (["--supercell", "a,b,c"], "--supercell must be three positive integers like 2,2,1, got a,b,c"),
    "supercell too big": (["--supercell", "200,200,200"], "400000000 atoms"),
}


@pytest.mark.parametrize("case", sorted(BAD_MD_INPUT))
def test_bad_md_input_is_one_line_before_any_work(case, image, tmp_path, capsys):
    extra, expected = BAD_MD_INPUT[case]
    out = tmp_path / "o"
    code, _, err = nvnmd(capsys, *md_args(image, out), *extra)
    one_line_error(code, err, expected)
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_temperature_at_or_below_zero_refused_for_every_backend(tmp_path, capsys):
    # deepmd used to exit 0 with NaN thermo and trajectory; the check comes before any backend is built
    for backend in ("deepmd", "tf64", "board", "auto"):
        code, _, err = nvnmd(capsys, "md", "--backend", backend, "--url", "socket://127.0.0.1:9", "-T", "0",
                             "--steps", "2", "-o", tmp_path / backend)
        one_line_error(code, err, "-T must be a temperature above 0 K")
    code, _, err = nvnmd(capsys, "conductivity", "--backend", "deepmd", "-T", "0,900", "-o", tmp_path / "c")
    one_line_error(code, err, "--temperatures must be a temperature above 0 K, got 0")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_coordinates_are_refused(value, image, tmp_path, capsys):
    from nvnmd.md.workflow import default_structure_path

    lines = default_structure_path().read_text().splitlines()
    parts = lines[2].split()
    parts[1] = value
    lines[2] = " ".join(parts)
    structure = tmp_path / "bad.extxyz"
    structure.write_text("\n".join(lines) + "\n")
    code, _, err = nvnmd(capsys, *md_args(image, tmp_path / "o"), "--structure", structure)
    one_line_error(code, err, "atom 0 has a non-finite coordinate")


@pytest.mark.parametrize("where", ["file", "under a file", "unwritable"])
@pytest.mark.parametrize("command", ["md", "conductivity", "demo"])
def test_unusable_output_directories_are_refused_first(command, where, image, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    out = {"file": afile, "under a file": afile / "sub", "unwritable": Path(UNWRITABLE)}[where]
    argv = {"md": md_args(image, out),
            "conductivity": ["conductivity", "--backend", "sim", "--image", image, "--supercell", "1,1,1",
                             "-T", "900", "--steps", "4", "--quiet", "-o", out],
            "demo": ["demo", "--steps", "2", "--quiet", "-o", out]}[command]
    code, _, err = nvnmd(capsys, *argv)
    one_line_error(code, err, f"-o {out}: ")
    assert ".tmp" not in err and "probe" not in err


def test_quantize_test_and_bench_check_their_outputs_before_the_work(image, student_path, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    for argv, fragment in (
        (["quantize", student_path, "-o", f"{UNWRITABLE}/x.nvq"], f"-o {UNWRITABLE}/x.nvq: cannot "),
        (["quantize", student_path, "-o", afile / "x.nvq"], f"{afile} is a file, not a directory"),
        (["quantize", student_path, "-o", tmp_path / "q.nvq", "--report", afile / "rep"], "--report"),
        (["test", image, "-s", "nowhere", "--json", f"{UNWRITABLE}/t.json"], f"--json {UNWRITABLE}/t.json"),
        (["bench", "sim", "--json", f"{UNWRITABLE}/b.json"], f"--json {UNWRITABLE}/b.json"),
    ):
        code, _, err = nvnmd(capsys, *argv)
        one_line_error(code, err, fragment)
        assert ".tmp" not in err
    assert not (tmp_path / "q.nvq").exists()


def test_write_atomic_errors_name_the_users_path(tmp_path):
    from nvnmd.errors import NvnmdError
    from nvnmd.image import write_atomic

    with pytest.raises(NvnmdError, match=f"cannot write {UNWRITABLE}/x.bin") as info:
        write_atomic(Path(UNWRITABLE) / "x.bin", b"data")
    assert ".tmp" not in str(info.value)


# --- checkpoints ------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty"])
def test_damaged_checkpoints_name_the_file_and_the_problem(damage, base_run, image, capsys):
    ck = base_run / "checkpoint.npz"
    raw = ck.read_bytes()
    ck.write_bytes({"truncated": raw[: len(raw) // 2], "random bytes": os.urandom(len(raw)), "empty": b""}[damage])
    code, _, err = nvnmd(capsys, *md_args(image, base_run, "--resume", steps=6))
    one_line_error(code, err, str(ck))
    assert "pickle" not in err
    assert ("truncated or damaged" in err) if damage == "truncated" else ("not an nvnmd checkpoint" in err)


RESUME_MISMATCHES = {
    "dt": (["--dt", "1"], "--dt is 1 fs here but 2 fs in the checkpoint"),
    "temperature": (["-T", "1200"], "-T is 1200 K here but 900 K in the checkpoint"),
    "seed": (["--seed", "5"], "--seed is 5 here but 2026 in the checkpoint"),
    "ensemble": (["--ensemble", "langevin"], "--ensemble is langevin here but csvr in the checkpoint"),
    "tau": (["--tau", "50"], "--tau is 50 fs here but 100 fs in the checkpoint"),
    "traj-every": (["--traj-every", "1"], "--traj-every is 1 here but 2 in the checkpoint"),
    "atoms": (["--supercell", "1,1,2"], "the structure has 100 atoms here but 50 in the checkpoint"),
    "guard": (["--no-guard"], "the short-range guard is off (--no-guard) here but on in the checkpoint"),
}


@pytest.mark.parametrize("case", sorted(RESUME_MISMATCHES))
def test_resume_refuses_other_settings_naming_both_values(case, base_run, image, capsys):
    extra, expected = RESUME_MISMATCHES[case]
    before = {p.name: p.read_bytes() for p in base_run.iterdir()}
    argv = md_args(image, base_run, "--resume", steps=6)
    if extra[0] == "--supercell":
        argv[argv.index("--supercell") + 1] = extra[1]
        extra = []
    code, _, err = nvnmd(capsys, *argv, *extra)
    one_line_error(code, err, f"cannot resume {base_run / 'checkpoint.npz'}: {expected}")
    assert {p.name: p.read_bytes() for p in base_run.iterdir()} == before  # nothing touched


def test_resume_refuses_another_image_and_another_backend(base_run, image, tmp_path, capsys):
    from nvnmd.image import Image

    other = Image.read(image)
    other.sections["e_const"] = other.sections["e_const"] + 1  # another model's image
    other.meta["model_sha256"] = "0" * 64
    other.write(tmp_path / "other.nvq")
    code, _, err = nvnmd(capsys, *md_args(tmp_path / "other.nvq", base_run, "--resume", steps=6))
    one_line_error(code, err, "is not the checkpoint's")
    argv = md_args(image, base_run, "--resume", steps=6)
    argv[argv.index("sim")] = "deepmd"
    code, _, err = nvnmd(capsys, *argv)
    one_line_error(code, err, "--backend is deepmd here but sim in the checkpoint")


def test_resume_with_the_same_settings_continues(base_run, image, capsys):
    code, _, err = nvnmd(capsys, *md_args(image, base_run, "--resume", steps=6))
    assert code == 0, err
    times = [line.split(",")[1] for line in (base_run / "thermo.csv").read_text().splitlines()[1:]]
    assert times == ["0.0", "0.004", "0.008", "0.012"]


def test_md_refuses_a_directory_holding_a_run_unless_overwrite(base_run, image, capsys):
    traj = (base_run / "traj.extxyz").read_bytes()
    code, _, err = nvnmd(capsys, *md_args(image, base_run, "--seed", "3"))
    one_line_error(code, err, "holds a run", "--resume", "--overwrite")
    assert (base_run / "traj.extxyz").read_bytes() == traj
    code, _, err = nvnmd(capsys, *md_args(image, base_run, "--seed", "3", "--overwrite"))
    assert code == 0, err
    assert (base_run / "traj.extxyz").read_bytes() != traj


# --- images carry their model's hash ---------------------------------------------------------

def test_images_carry_the_model_hash_and_a_cached_image_of_another_model_is_rebuilt(
        image, student_path, tmp_path, capsys):
    import hashlib

    from nvnmd.image import Image

    other_pb = Path(__file__).resolve().parents[1] / "student" / "candidates" / "lgps_student_axis8.pb"
    assert Image.read(image).meta["model_sha256"] == hashlib.sha256(student_path.read_bytes()).hexdigest()
    out = tmp_path / "cache"
    out.mkdir()
    shutil.copy(image, out / "model.nvq")
    code, stdout, err = nvnmd(capsys, "md", "--backend", "sim", "--model", other_pb, "--supercell", "1,1,1",
                              "--steps", "2", "--quiet", "-o", out)
    assert code == 0, err
    assert "not " + str(other_pb) in stdout and "quantizing again" in stdout
    want = hashlib.sha256(other_pb.read_bytes()).hexdigest()
    assert Image.read(out / "model.nvq").meta["model_sha256"] == want
    code, _, err = nvnmd(capsys, "quantize", other_pb, "-o", tmp_path / "q.nvq")
    assert code == 0, err
    assert Image.read(tmp_path / "q.nvq").meta["model_sha256"] == want


def test_an_image_with_a_shortened_type_map_names_the_type_map(image, tmp_path, capsys):
    from nvnmd.image import Image

    im = Image.read(image)
    im.meta["type_map"] = im.meta["type_map"][:3]
    im.write(tmp_path / "short.nvq")
    code, _, err = nvnmd(capsys, *md_args(tmp_path / "short.nvq", tmp_path / "o"))
    one_line_error(code, err, "type_map Li Ge P names 3 elements, but sel and the u tables are for 4")


# --- blow-ups, one temperature, conductivity identity ----------------------------------------

def test_a_blow_up_names_the_step_and_the_atom(image, tmp_path, capsys):
    code, _, err = nvnmd(capsys, *md_args(image, tmp_path / "o", "--dt", "100", steps=50))
    one_line_error(code, err, "step 1: the run blew up: atom ", "Å in one step", "--dt 100 fs is too large")


def test_conductivity_settings_are_part_of_a_runs_identity(image, tmp_path, capsys):
    cond = ["conductivity", "--backend", "sim", "--image", image, "--supercell", "1,1,1", "-T", "900",
            "--steps", "40", "--traj-every", "2", "--quiet", "-o", tmp_path / "c"]
    code, out, err = nvnmd(capsys, *cond)
    assert code == 0, err
    assert "Ea and σ(300 K) need runs at two temperatures or more" in out and "T = 900 K: D = " in out
    summary = json.loads((tmp_path / "c" / "conductivity.json").read_text())
    assert "two temperatures" in summary["arrhenius"]["note"]
    traj = (tmp_path / "c" / "T900K" / "traj.extxyz").read_bytes()
    code, _, err = nvnmd(capsys, *cond, "--dt", "1")
    one_line_error(code, err, "T900K holds a run with other settings: --dt is 1 fs here but 2 fs in the checkpoint")
    assert (tmp_path / "c" / "T900K" / "traj.extxyz").read_bytes() == traj
    code, _, err = nvnmd(capsys, *cond, "--dt", "1", "--overwrite")
    assert code == 0, err
    assert json.loads((tmp_path / "c" / "conductivity.json").read_text())["md"]["dt_fs"] == 1.0
    code, _, err = nvnmd(capsys, *cond, "--dt", "3", "--analyse-only")  # describes the runs, not the options
    assert code == 0, err
    assert json.loads((tmp_path / "c" / "conductivity.json").read_text())["md"]["dt_fs"] == 1.0


# --- outputs and defaults ---------------------------------------------------------------------

def test_every_output_gets_the_same_mode(image, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        code, _, err = nvnmd(capsys, "conductivity", "--backend", "sim", "--image", image, "--supercell", "1,1,1",
                             "-T", "900", "--steps", "40", "--traj-every", "2", "--quiet", "-o", tmp_path / "c")
        assert code == 0, err
        from nvnmd.image import Image

        Image.read(image).write(tmp_path / "copy.nvq")
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert {"c/T900K/checkpoint.npz", "c/conductivity.json", "c/T900K/traj.extxyz", "copy.nvq"} <= set(modes)
    assert set(modes.values()) == {"0o644"}, modes


def test_md_commands_share_one_set_of_defaults_and_user_structures_are_not_repeated(image, tmp_path, capsys):
    from nvnmd.cli import build_parser
    from nvnmd.md.engine import MDConfig
    from nvnmd.md.workflow import default_structure_path

    parser = build_parser()
    md = parser.parse_args(["md"])
    cond = parser.parse_args(["conductivity"])
    d = MDConfig()
    assert (md.ensemble, md.dt, md.tau, md.friction) == (cond.ensemble, cond.dt, cond.tau, cond.friction) \
        == (d.ensemble, d.dt_fs, d.tau_fs, d.friction_per_fs) == ("csvr", 2.0, 100.0, 0.01)
    code, out, err = nvnmd(capsys, "md", "--backend", "sim", "--image", image, "--structure", default_structure_path(),
                           "--steps", "2", "--quiet", "-o", tmp_path / "user")
    assert code == 0, err
    assert "50 atoms" in out  # a user's structure as given; the shipped cell is repeated 2,2,1
    assert np.loadtxt(tmp_path / "user" / "thermo.csv", delimiter=",", skiprows=1).ndim == 1
