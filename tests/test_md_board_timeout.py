"""`nvnmd md --backend board --timeout SECONDS`: the driver's per-request timeout from the CLI.

A board whose frames take longer than the driver's whole retry window (1 s x 9 attempts by
default) — the RTL in simulation on a big cell — ends in LinkError; `--timeout` gives the
driver a longer one. The board here is the virtual board with a slow engine: the real
simulator behind the real protocol, each COMPUTE held back by SLOW seconds, so the
default run must fail with a one-line message and a run with --timeout must succeed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

NVNMD = os.path.join(os.path.dirname(sys.executable), "nvnmd")
# s per COMPUTE: beyond the default window (9 attempts x (1 s + 2 µs per request byte) ≈ 9.4 s for
# this 50-atom cell's list) with a margin for a loaded machine, well inside --timeout 16
SLOW = 12.0


class SlowModel:
    """The simulator of the image, answering each frame `delay` seconds late (a slow board)."""

    def __init__(self, sim, delay: float):
        self.sim, self.delay = sim, delay
        self.profile = getattr(sim, "profile", "nvq1")
        self.type_map, self.rcut, self.sel = sim.type_map, sim.rcut, sim.sel
        self.computes = 0

    def compute(self, request):
        time.sleep(self.delay)
        self.computes += 1
        return self.sim.compute(request)


class SlowEngine:
    name = "nvnmd virtual board (simulator, slowed down)"

    def __init__(self, delay: float):
        self.delay = delay
        self.loaded = None

    def load(self, image):
        from nvnmd.host.server import SimEngine

        self.loaded = SlowModel(SimEngine().load(image), self.delay)
        return self.loaded


@pytest.fixture()
def image_path(quantized, tmp_path):
    path = tmp_path / "lgps.nvq"
    quantized[0].to_image().write(path)
    return path


def _md(url, image_path, out, *extra):
    return subprocess.run([NVNMD, "md", "--backend", "board", "--url", url, "--image", str(image_path),
                           "--supercell", "1,1,1", "--steps", "1", "--quiet", "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=300)


def test_slow_board_fails_at_default_timeout_and_runs_with_timeout(image_path, tmp_path):
    from nvnmd.host.server import BoardCore, VirtualBoard

    engine = SlowEngine(SLOW)
    vb = VirtualBoard(BoardCore(engine=engine))
    url = vb.start_tcp()
    try:
        bad = _md(url, image_path, tmp_path / "default")
        assert bad.returncode == 2, bad.stderr[-2000:]
        err = bad.stderr.strip()
        assert "\n" not in err and "Traceback" not in bad.stderr, bad.stderr
        assert "no valid reply to COMPUTE after 9 attempts (1 s timeout)" in err and "--timeout" in err, err
        print("default timeout:", err)
        ok = _md(url, image_path, tmp_path / "long", "--timeout", "16")
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert "1 steps, 50 atoms" in ok.stdout and "16 s per-request timeout" in ok.stdout, ok.stdout
        assert (tmp_path / "long" / "traj.extxyz").exists()
    finally:
        vb.stop()


@pytest.mark.parametrize("value", ["0", "-3", "nan"])
def test_timeout_must_be_positive(value, tmp_path):
    out = subprocess.run([NVNMD, "md", "--backend", "board", "--url", "socket://127.0.0.1:9", "--timeout", value,
                          "-o", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "--timeout must be a positive number of seconds" in out.stderr


def test_timeout_needs_the_board_backend(tmp_path):
    out = subprocess.run([NVNMD, "md", "--backend", "sim", "--timeout", "5", "-o", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "needs --backend board" in out.stderr
