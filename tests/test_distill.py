"""`nvnmd distill` end to end on a tiny setting with the REAL embedded teacher (DPA4-Neo-OMat24):
the shipped 50-atom LGPS cell, 2 perturbed structures x 20 MD steps, 5 frames each, 200
training steps, a 0.2 ps robustness run. Then: a rerun redoes nothing, changed parameters
are refused in one line. Needs the distill extra; a few minutes on 2 cores."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "nvnmd" / "data"
TINY = ["--structure", str(DATA / "lgps_relaxed.extxyz"), "--md-structures", "2", "--md-steps", "20", "--frames", "5",
        "--holdout-steps", "10", "--holdout-frames", "5", "--train-steps", "200", "--robust-ps", "0.2",
        "--calib-frames", "10", "--reference-data", str(DATA / "frames" / "lgps50"), "--quiet"]


def _distill(args, out):
    return subprocess.run([sys.executable, "-m", "nvnmd.cli", "distill", *args, "-o", str(out)],
                          capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "tiny"
    p = _distill(TINY, out)
    return out, p


def test_pipeline_runs_every_stage(run):
    out, p = run
    assert p.returncode in (0, 1), p.stderr[-2000:]  # 1: the student was rejected, with reasons
    man = json.loads((out / "manifest.json").read_text())
    from nvnmd.distill.pipeline import STAGES

    assert "explore" not in man["stages"]  # no ensemble: the stage is skipped and never recorded
    assert [s for s in STAGES if man["stages"].get(s, {}).get("status") == "done"] == [s for s in STAGES if s != "explore"]
    assert man["teacher"]["sha256"].startswith("0777cc770def")
    assert man["structure"]["natoms"] == 50 and "NVT" in man["scheme"]["md_ensemble"]
    for rel, digest in man["stages"]["train"]["outputs"].items():
        assert len(digest) == 64 and (out / rel).exists()
    label = man["stages"]["label"]["info"]
    assert label["frames"]["frames"] == 10 and label["holdout"]["kept"] == 5
    assert label["frames"]["kept"] + label["frames"]["dropped_max_force"] == 10
    # the trained student: the board's shape, its sidecar, a quantized image that agrees with it
    from nvnmd.quantize.build import check_limits
    from nvnmd.student import load_student

    student = load_student(out / "student.pb")
    check_limits(student)
    assert student.type_map == ["Li", "Ge", "P", "S"] and student.closest_pairs["S-S"] > 1.5
    report = json.loads((out / "validate" / "report.json").read_text())
    fl, q = report["holdout"]["float"], report["holdout"]["quantized"]
    assert 0 < fl["force"]["rmse"] < 5.0
    assert q["force"]["rmse"] == pytest.approx(fl["force"]["rmse"], rel=0.05)
    assert report["reference"]["teacher"]["force"]["rmse"] < 0.060  # DPA4 vs DFT labels
    assert report["robustness"]["simulated_ps"] == pytest.approx(0.2)
    assert np.isfinite(report["robustness"]["conserved_drift_eV_atom_ps"])
    if report["status"] == "rejected":
        assert report["reasons"] and p.returncode == 1
        assert "REJECTED" in (out / "validate" / "report.txt").read_text()
    assert (out / "validate" / "parity_holdout.png").stat().st_size > 10_000


def test_rerun_redoes_nothing_and_refuses_other_parameters(run):
    out, _ = run
    before = (out / "student.pb").read_bytes()
    p = _distill(TINY, out)
    assert p.stdout.count("done before") == 7, p.stdout
    assert (out / "student.pb").read_bytes() == before
    p = _distill([*TINY, "--md-steps", "30"], out)
    assert p.returncode == 2 and "md_steps" in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
