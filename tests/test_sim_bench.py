"""`nvnmd bench`: the registry other parts extend, and its one-line refusal of unknown names."""

import os
import subprocess
import sys


def test_registry_has_sim():
    from nvnmd.bench import BENCHES

    module, func = BENCHES["sim"].split(":")
    import importlib

    assert callable(getattr(importlib.import_module(module), func))


def test_unknown_bench_refused():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "nvnmd.cli", "bench", "nope"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["nvnmd: error: unknown benchmark 'nope' (known: fpga, host, link, sim, tf64)"]


def test_interleaved_timer_separates_wall_and_cpu_time():
    """Contenders run in turn within every repeat; a sleeping one costs wall time but no CPU
    time, a spinning one both (so the CPU column is the per-core cost, immune to time slices
    given to other processes)."""
    import time
    from types import SimpleNamespace

    from nvnmd.bench.sim import _time_interleaved

    calls = []

    def sleeper(fr):
        calls.append("sleep")
        time.sleep(0.004)

    def spinner(fr):
        calls.append("spin")
        t0 = time.process_time()
        while time.process_time() - t0 < 0.004:
            pass

    frames = [SimpleNamespace(natoms=4), SimpleNamespace(natoms=4)]
    out = _time_interleaved({"sleep": sleeper, "spin": spinner}, frames, repeat=3)
    assert calls[:2] == ["sleep", "spin"]  # warm-up
    assert calls[2:] == ["sleep", "spin"] * 6  # in turn: 2 frames x 3 repeats
    wall, cpu = out["sleep"]
    assert wall >= 0.004 / 4 * 1e6 and cpu < 0.5 * wall
    wall, cpu = out["spin"]
    assert cpu >= 0.004 / 4 * 1e6 and wall >= cpu * 0.9
