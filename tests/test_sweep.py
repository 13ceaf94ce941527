"""`nvnmd conductivity` as a sweep on dask.distributed (issues 17 and 20).

Real dask: a LocalCluster of worker processes made by the command, a scheduler started here
for --scheduler, the command killed with SIGKILL (its cluster with it) and resumed. Two
50-atom LGPS cells (`nvnmd structure lgps`, two seeds of the Li ordering) at two
temperatures, 300 steps each, on the sim backend: the forces are integers, so every run must
be bit-identical wherever and however often it was computed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nvnmd.cli import main

STEPS = 300
TEMPS = "900,1200"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from nvnmd.quantize.student_image import student_image
    from nvnmd.structures import build, write_extxyz

    d = tmp_path_factory.mktemp("sweep-in")
    student_image().write(d / "def.nvq")
    write_extxyz(build("lgps", seed=0), d / "ge_s0.extxyz")
    write_extxyz(build("lgps", seed=1), d / "ge_s1.extxyz")
    write_extxyz(build("argyrodite", halide="Cl"), d / "li6ps5cl.extxyz")
    return d


def sweep_args(files, out, *extra, structures=("ge_s0.extxyz", "s1=ge_s1.extxyz"), temps=TEMPS):
    argv = ["conductivity", "--backend", "sim", "--image", files / "def.nvq", "-T", temps, "--steps", STEPS,
            "--checkpoint-every", 50, "--traj-every", 10, "-o", out, *extra]
    for s in structures:
        label, _, name = s.rpartition("=")
        argv += ["--structure", f"{label}={files / name}" if label else files / name]
    return [str(a) for a in argv]


def nvnmd(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/T*K") if p.is_dir())


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory):
    """The uninterrupted sweep on the default local cluster: (output dir, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out = tmp_path_factory.mktemp("sweep-ref") / "ref"
    so, se = io.StringIO(), io.StringIO()
    with redirect_stdout(so), redirect_stderr(se):
        code = main(sweep_args(files, out))
    assert code == 0, se.getvalue()
    return out, so.getvalue(), se.getvalue()


def test_local_cluster_sweep_writes_one_table_and_the_plots(reference):
    out, stdout, stderr = reference
    assert "dask: local cluster at tcp://127.0.0.1:" in stdout and "2 worker process(es) on 127.0.0.1" in stdout
    assert "no dashboard" in stdout
    assert [p.relative_to(out).as_posix() for p in run_dirs(out)] == ["ge_s0/T1200K", "ge_s0/T900K", "s1/T1200K",
                                                                       "s1/T900K"]
    for label in ("ge_s0", "s1"):  # one progress bar per run, in the client, reaching the end
        for T in ("900", "1200"):
            assert f"{label} {T} K" in stderr and f"{STEPS}/{STEPS}" in stderr
    rows = (out / "conductivity.csv").read_text().splitlines()
    assert rows[0].startswith("label,formula,T_K,D_cm2_s,D_err_cm2_s,sigma_mS_cm,sigma_err_mS_cm")
    assert [r.split(",")[:3] for r in rows[1:]] == [["ge_s0", "Ge2Li20P4S24", "900.0"], ["ge_s0", "Ge2Li20P4S24", "1200.0"],
                                                    ["s1", "Ge2Li20P4S24", "900.0"], ["s1", "Ge2Li20P4S24", "1200.0"]]
    comps = (out / "compositions.csv").read_text().splitlines()
    assert comps[0] == ("label,formula,natoms,n_temperatures,Ea_eV,Ea_err_eV,sigma_300K_mS_cm,sigma_300K_err_mS_cm,"
                        "site_disorder,exp_sigma_mS_cm,exp_T_K,exp_Ea_eV,exp_ref,exp_doi")
    assert [c.split(",")[:4] for c in comps[1:]] == [["ge_s0", "Ge2Li20P4S24", "50", "2"], ["s1", "Ge2Li20P4S24", "50", "2"]]
    # every LGPS row carries its experiment (Kamaya et al. 2011); LGPS has no site disorder
    assert [c.split(",")[8:] for c in comps[1:]] == [["", "12.0", "298.15", "0.25", "kamaya2011", "10.1038/nmat3066"]] * 2
    summary = json.loads((out / "conductivity.json").read_text())
    assert [c["label"] for c in summary["compositions"]] == ["ge_s0", "s1"]
    assert [c["experiment"]["ref"] for c in summary["compositions"]] == ["kamaya2011"] * 2
    assert summary["experiment_LGPS"]["sigma_300K_mS_cm"] == 12.0 and summary["experiment_LGPS"]["Ea_eV"] == [0.22, 0.25]
    assert "experiment Kamaya 2011 (doi:10.1038/nmat3066): 12 mS/cm at 298 K, Ea 0.25 eV" in stdout
    assert {r["run_dir"] for r in summary["runs"]} == {"ge_s0/T900K", "ge_s0/T1200K", "s1/T900K", "s1/T1200K"}
    assert "arrhenius" not in summary  # one fit per composition, none for the sweep as a whole
    for name in ("msd.png", "arrhenius.png", "composition.png", "msd_energy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob(".*.tmp"))


def test_a_dask_run_is_bit_identical_to_a_serial_one(reference, files, tmp_path):
    from ase.io import read

    from nvnmd.backends.sim import SimBackend
    from nvnmd.cli import build_parser
    from nvnmd.md.cli import _config
    from nvnmd.md.engine import run_md
    from nvnmd.md.workflow import run_config

    out, _, _ = reference
    args = build_parser().parse_args(sweep_args(files, out))
    cfg = run_config(_config(args, 0.0), 1200.0)
    run_md(read(files / "ge_s1.extxyz"), SimBackend(files / "def.nvq"), cfg, tmp_path / "serial", progress=False)
    for name in ("traj.extxyz", "thermo.csv"):
        assert (tmp_path / "serial" / name).read_bytes() == (out / "s1" / "T1200K" / name).read_bytes()


def _steps(run_dir: Path) -> int:
    from nvnmd.errors import CorruptFileError
    from nvnmd.md.workflow import steps_done

    try:
        return steps_done(run_dir)
    except CorruptFileError:  # not there yet
        return -1


def test_a_sweep_killed_with_sigkill_resumes_and_gives_the_same_table(reference, files, tmp_path, capsys):
    ref, _, _ = reference
    out = tmp_path / "killed"
    argv = sweep_args(files, out, "--quiet")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nvnmd.cli", *argv[:]], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    # kill the command and its cluster (one process group) once a run is finished and another
    # one is part-way, with a checkpoint past its start
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            steps = [_steps(d) for d in run_dirs(out)]
            if any(s >= STEPS for s in steps) and any(0 < s < STEPS for s in steps):
                break
            assert proc.poll() is None, f"the sweep ended before it could be interrupted: {proc.stderr.read()}"
            time.sleep(0.02)
        else:
            pytest.fail("no run reached a checkpoint in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "conductivity.csv").exists()
    before = {d.relative_to(out).as_posix(): (_steps(d), (d / "traj.extxyz").exists() and
                                              (d / "traj.extxyz").stat().st_mtime_ns) for d in run_dirs(out)}
    finished = sorted(k for k, (s, _) in before.items() if s >= STEPS)
    partial = sorted(k for k, (s, _) in before.items() if 0 <= s < STEPS)
    assert finished and partial

    code, stdout, err = nvnmd(capsys, argv)
    assert code == 0, err
    for k in finished:  # not redone: announced as kept, files untouched
        assert f"{k}: complete, kept" in stdout
        assert (out / k / "traj.extxyz").stat().st_mtime_ns == before[k][1]
    for k in partial:  # continued from the checkpoint the kill left
        assert f"{k}: resumes at step {before[k][0]}" in stdout
    for k in ("ge_s0/T900K", "ge_s0/T1200K", "s1/T900K", "s1/T1200K"):  # every run ends bit-identical to the uninterrupted sweep's
        assert (out / k / "traj.extxyz").read_bytes() == (ref / k / "traj.extxyz").read_bytes(), k
    assert (out / "conductivity.csv").read_bytes() == (ref / "conductivity.csv").read_bytes()
    assert (out / "compositions.csv").read_bytes() == (ref / "compositions.csv").read_bytes()
    assert (out / "conductivity.json").read_bytes() == (ref / "conductivity.json").read_bytes()


def test_scheduler_runs_the_sweep_on_an_existing_cluster(reference, files, tmp_path, capsys):
    import logging

    from distributed import LocalCluster

    ref, _, _ = reference
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}, silence_logs=logging.ERROR) as cluster:
        code, stdout, err = nvnmd(capsys, sweep_args(files, tmp_path / "o", "--quiet", "--scheduler",
                                                     cluster.scheduler_address, structures=["ge_s0.extxyz"], temps="1200"))
    assert code == 0, err
    assert f"dask: scheduler {cluster.scheduler_address}, 1 worker(s)" in stdout
    # one structure: the run directory of every earlier release, and the same bits as on the local cluster
    assert (tmp_path / "o" / "T1200K" / "traj.extxyz").read_bytes() == (ref / "ge_s0" / "T1200K" / "traj.extxyz").read_bytes()
    assert "Ea and σ(300 K) need runs at two temperatures or more" in stdout


@pytest.mark.parametrize("address, fragment", [
    ("tcp://127.0.0.1:1", "cannot connect"),
    ("localhost", "not a scheduler address like tcp://127.0.0.1:8786"),
    ("http://127.0.0.1:8786", "not a scheduler address"),
])
def test_a_bad_scheduler_address_is_one_line_before_any_work(address, fragment, files, tmp_path, capsys):
    code, _, err = nvnmd(capsys, sweep_args(files, tmp_path / "o", "--quiet", "--scheduler", address))
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"nvnmd: error: --scheduler {address}: "), err
    assert fragment in err
    assert not run_dirs(tmp_path / "o")


def test_a_structure_with_an_element_the_image_lacks_is_refused_before_any_run(files, tmp_path, capsys):
    code, _, err = nvnmd(capsys, sweep_args(files, tmp_path / "o", "--quiet",
                                            structures=["ge_s0.extxyz", "arg=li6ps5cl.extxyz"]))
    assert code == 2 and err.count("\n") == 1, err
    assert "structure arg (Cl4Li24P4S20) has Cl, which the image" in err and "Li Ge P S" in err
    assert not list((tmp_path / "o").rglob("T*K"))


def test_a_grid_file_lists_structures_supercells_and_temperatures(files, tmp_path, capsys):
    from nvnmd.cli import build_parser
    from nvnmd.md.cli import _compositions

    grid = tmp_path / "grid.toml"
    grid.write_text(f'temperatures = [800, 1000]\n'
                    f'[[structures]]\nlabel = "ordered"\nfile = "{files / "ge_s0.extxyz"}"\n'
                    f'[[structures]]\nfile = "{files / "ge_s1.extxyz"}"\nsupercell = "1,1,2"\ntemperatures = [1000]\n')
    args = build_parser().parse_args(["conductivity", "--grid", str(grid), "--structure", f"x={files / 'ge_s0.extxyz'}"])
    comps = _compositions(args)
    assert [(c.label, len(c.atoms), c.temperatures) for c in comps] == [
        ("ordered", 50, [800.0, 1000.0]), ("ge_s1", 100, [1000.0]), ("x", 50, [700.0, 900.0, 1100.0])]
    (tmp_path / "bad.json").write_text(json.dumps({"structures": [{"file": "a.xyz", "temperature": [900]}]}))
    code, _, err = nvnmd(capsys, ["conductivity", "--grid", str(tmp_path / "bad.json"), "-o", str(tmp_path / "o")])
    assert code == 2 and err.count("\n") == 1 and "structure 1: unknown key temperature" in err, err
    code, _, err = nvnmd(capsys, ["conductivity", "--structure", str(files / "ge_s0.extxyz"), "--structure",
                                  str(files / "ge_s0.extxyz"), "-o", str(tmp_path / "o")])
    assert code == 2 and "structure label ge_s0 is given twice" in err, err


def test_a_run_directory_is_written_by_one_process_at_a_time(tmp_path):
    import fcntl

    from nvnmd.errors import NvnmdError
    from nvnmd.md.sweep import _locked

    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(NvnmdError, match="is being written by another process"):
            with _locked(tmp_path):
                pass
    finally:
        os.close(fd)
    with _locked(tmp_path):  # free again once its holder closed it (or died)
        pass


def test_a_rerun_with_other_settings_is_refused_naming_the_run(reference, files, capsys):
    out, _, _ = reference
    before = (out / "s1" / "T900K" / "traj.extxyz").read_bytes()
    code, _, err = nvnmd(capsys, sweep_args(files, out, "--quiet", "--dt", "1"))
    assert code == 2 and err.count("\n") == 1, err
    assert "ge_s0/T900K holds a run with other settings: --dt is 1 fs here but 2 fs in the checkpoint" in err
    assert (out / "s1" / "T900K" / "traj.extxyz").read_bytes() == before


def test_analyse_only_rereads_every_run_of_the_sweep(reference, files, tmp_path, capsys):
    import shutil

    ref, _, _ = reference
    out = tmp_path / "copy"
    shutil.copytree(ref, out)
    (out / "conductivity.csv").unlink()
    code, stdout, err = nvnmd(capsys, sweep_args(files, out, "--quiet", "--analyse-only", "--dt", "3"))
    assert code == 0, err
    assert "dask" not in stdout  # nothing to run
    for name in ("conductivity.csv", "compositions.csv"):
        assert (out / name).read_bytes() == (ref / name).read_bytes()
    assert json.loads((out / "conductivity.json").read_text())["md"]["dt_fs"] == 2.0  # the runs', not the option's


def test_a_scheduler_address_where_something_else_listens_is_refused(files, tmp_path, capsys):
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def hang_up():  # not dask: accepts and closes every connection
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        code, _, err = nvnmd(capsys, sweep_args(files, tmp_path / "o", "--quiet", "--scheduler", f"tcp://127.0.0.1:{port}"))
    finally:
        server.close()
    assert code == 2 and err.count("\n") == 1 and "not a dask scheduler" in err, err
    assert not run_dirs(tmp_path / "o")


def test_every_composition_row_carries_its_experiment_or_none(reference, tmp_path):
    """The table writer on compositions the sim image cannot run (argyrodites, the x = 0.5
    Si/Ge solid solution): real structures from `nvnmd structure`, each given the real
    analysed runs of the reference sweep, so only the experiment columns differ."""
    from nvnmd.md.engine import MDConfig
    from nvnmd.md.results import write_results
    from nvnmd.md.workflow import Composition, Run, analyse_run
    from nvnmd.structures import build

    ref, _, _ = reference
    temps = [900.0, 1200.0]
    measured = [analyse_run(ref / "ge_s0" / f"T{T:.0f}K", T) for T in temps]
    comps = [Composition("cl_ordered", build("argyrodite", halide="Cl"), temps),
             Composition("cl_disordered", build("argyrodite", halide="Cl", site_disorder=0.5), temps),
             Composition("i_ordered", build("argyrodite", halide="I"), temps),
             Composition("sige", build("lgps", m="Ge:0.5,Si:0.5"), temps)]
    runs = [Run(c.label, T, tmp_path / c.label / f"T{T:.0f}K", f"{c.label}/T{T:.0f}K", MDConfig(), c.atoms)
            for c in comps for T in temps]
    out = tmp_path / "out"
    out.mkdir()
    summary = write_results(out, comps, runs, measured * len(comps), MDConfig(), log=lambda *_: None)
    rows = [r.split(",") for r in (out / "compositions.csv").read_text().splitlines()]
    col = {name: i for i, name in enumerate(rows[0])}
    got = {r[0]: {k: r[col[k]] for k in ("site_disorder", "exp_sigma_mS_cm", "exp_T_K", "exp_Ea_eV", "exp_ref",
                                         "exp_doi")} for r in rows[1:]}
    assert got["cl_ordered"] == {"site_disorder": "0.0", "exp_sigma_mS_cm": "2.05", "exp_T_K": "298.15",
                                 "exp_Ea_eV": "0.45", "exp_ref": "kraft2017_cl", "exp_doi": "10.1021/jacs.7b06327"}
    assert got["cl_disordered"] == {**got["cl_ordered"], "site_disorder": "0.5"}
    assert got["i_ordered"]["exp_ref"] == "kraft2017_i" and got["i_ordered"]["exp_sigma_mS_cm"] == "0.0013"
    assert got["sige"] == dict.fromkeys(got["sige"], "")  # no published experiment: empty, not a neighbour's
    js = {c["label"]: c for c in json.loads((out / "conductivity.json").read_text())["compositions"]}
    assert js["sige"]["experiment"] is None and js["sige"]["site_disorder"] is None
    assert js["cl_ordered"]["experiment"]["other_refs"] == ["rao2011_cl"]
    assert "0.62" in js["cl_ordered"]["experiment"]["note"]  # the sample is disordered; the model is not
    assert js["i_ordered"]["experiment"]["sample_site_disorder"] == 0.0 and "note" not in js["i_ordered"]["experiment"]
    assert summary["compositions"][0]["experiment"]["citation"].startswith("M. A. Kraft")
    for name in ("arrhenius.png", "composition.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
